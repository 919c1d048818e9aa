//! What a convolution applies to its output while each tile of it is still in cache: a
//! scale and a bias per output channel (an inference BatchNormalization), a residual
//! connection's other branch, then an activation (TFLite's fused activations, Keras's
//! `Conv2D(activation=...)` at inference). Applied separately, each of them is one more
//! pass over the whole feature map, with an allocation.

use crate::ops::unary::{ScalarFn, UnaryOp};
use crate::parallel::with_best_isa;
use crate::{DType, Tensor};
use std::borrow::Cow;

/// A caller's own epilogue: called with each tile of a convolution's output as it is made
/// (in any order, from any thread), with the flat index of the tile's first element in
/// the whole output; it rewrites the tile in place. A graph's fused elementwise kernel
/// after a convolution runs this way, on the tile while it is still in cache.
pub type TileFn<'a> = dyn Fn(usize, &mut [f32]) + Sync + 'a;

/// The bias and activation [`Tensor::conv2d_fused`] applies to a convolution's output.
#[derive(Clone, Copy, Default)]
pub struct ConvEpilogue<'a> {
    /// Multiplies each output channel first (`[cout]`; another shape broadcasts as `mul`
    /// does).
    pub scale: Option<&'a Tensor>,
    /// Added per output channel (`[cout]`; another shape broadcasts as `add` does).
    pub bias: Option<&'a Tensor>,
    /// Added after the bias, element by element (a residual connection's other branch;
    /// the output's shape, or another shape that broadcasts as `add` does).
    pub residual: Option<&'a Tensor>,
    /// Applied after the bias and the residual.
    pub activation: Option<UnaryOp>,
    /// Applied last, tile by tile (see [`TileFn`]).
    pub tile: Option<&'a TileFn<'a>>,
}

impl std::fmt::Debug for ConvEpilogue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvEpilogue")
            .field("scale", &self.scale.map(|b| b.shape().to_vec()))
            .field("bias", &self.bias.map(|b| b.shape().to_vec()))
            .field("residual", &self.residual.map(|r| r.shape().to_vec()))
            .field("activation", &self.activation)
            .field("tile", &self.tile.is_some())
            .finish()
    }
}

impl<'a> ConvEpilogue<'a> {
    /// Bias `bias` (if any), then activation `activation` (if any).
    pub fn new(bias: Option<&'a Tensor>, activation: Option<UnaryOp>) -> Self {
        ConvEpilogue {
            bias,
            activation,
            ..ConvEpilogue::default()
        }
    }

    /// `tile` alone, applied to each tile of the output as it is made.
    pub fn tiled(tile: &'a TileFn<'a>) -> Self {
        ConvEpilogue {
            tile: Some(tile),
            ..ConvEpilogue::default()
        }
    }

    /// The kernel-side form for an output of shape `out` (channels last) when the scale and
    /// bias are one f32 per channel and the residual has the output's elements in its order;
    /// `None` when the epilogue has to run as separate ops (another dtype or broadcasting).
    pub(crate) fn kernel_form(&self, out: &[usize]) -> Option<Epilogue<'a>> {
        let cout = out.last().copied().unwrap_or(0);
        let f32_data = |t: &'a Tensor| match t.dtype() {
            DType::F32 => t.contiguous_data::<f32>().ok(),
            _ => None,
        };
        let per_channel = |t: Option<&'a Tensor>| match t {
            None => Some(None),
            Some(b) if b.shape() == [cout] => Some(Some(f32_data(b)?)),
            Some(_) => None,
        };
        let not_one = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
        let residual = match self.residual {
            None => None,
            Some(r)
                if r.numel() == crate::shape::numel(out) && not_one(r.shape()) == not_one(out) =>
            {
                Some(f32_data(r)?)
            }
            Some(_) => return None,
        };
        Some(Epilogue {
            scale: per_channel(self.scale)?,
            bias: per_channel(self.bias)?,
            residual,
            act: self.activation,
            tile: self.tile,
        })
    }

    /// The same result by separate ops (recorded by tapes and tracers like any op).
    pub(crate) fn apply_separately(&self, y: Tensor) -> crate::Result<Tensor> {
        let y = match self.scale {
            Some(s) => y.mul(s)?,
            None => y,
        };
        let y = match self.bias {
            Some(b) => y.add(b)?,
            None => y,
        };
        let y = match self.residual {
            Some(r) => y.add(r)?,
            None => y,
        };
        let y = match self.activation {
            Some(a) => y.unary(a)?,
            None => y,
        };
        let Some(tile) = self.tile else {
            return Ok(y);
        };
        // The tile works on f32 values; the result keeps the convolution's dtype.
        let (shape, dtype) = (y.shape().to_vec(), y.dtype());
        let mut data = y.cast(DType::F32)?.contiguous().to_vec::<f32>()?;
        tile(0, &mut data);
        Tensor::from_vec(data, &shape)?.cast(dtype)
    }
}

/// An epilogue as the kernels apply it: the scale and bias as slices of `cout` floats, the
/// residual as the whole output's.
#[derive(Default)]
pub(crate) struct Epilogue<'a> {
    scale: Option<Cow<'a, [f32]>>,
    bias: Option<Cow<'a, [f32]>>,
    residual: Option<Cow<'a, [f32]>>,
    act: Option<UnaryOp>,
    tile: Option<&'a TileFn<'a>>,
}

impl Epilogue<'_> {
    /// Nothing to apply.
    pub const NONE: Epilogue<'static> = Epilogue {
        scale: None,
        bias: None,
        residual: None,
        act: None,
        tile: None,
    };

    /// The scale, one per output channel, applied before the bias.
    pub(crate) fn scale(&self) -> Option<&[f32]> {
        self.scale.as_deref()
    }

    /// The bias, one per output channel.
    pub(crate) fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    /// The activation after the bias and the residual.
    pub(crate) fn activation(&self) -> Option<UnaryOp> {
        self.act
    }

    /// Whether a residual is added before the activation.
    pub(crate) fn has_residual(&self) -> bool {
        self.residual.is_some()
    }

    /// The caller's tile function, applied last.
    pub(crate) fn tile(&self) -> Option<&TileFn<'_>> {
        self.tile
    }

    /// True when applying it changes nothing.
    pub fn is_identity(&self) -> bool {
        self.scale.is_none()
            && self.bias.is_none()
            && self.residual.is_none()
            && self.act.is_none()
            && self.tile.is_none()
    }

    /// Applies it in place to `rows`, consecutive rows of `cout` channels that start at
    /// flat index `start` of the output.
    pub fn apply(&self, rows: &mut [f32], cout: usize, start: usize) {
        if self.is_identity() || cout == 0 {
            return;
        }
        self.apply_rows(
            rows,
            cout,
            start,
            self.scale.as_deref(),
            self.bias.as_deref(),
        );
        if let Some(tile) = self.tile {
            tile(start, rows);
        }
    }

    /// What is left after a kernel added the scale and bias itself: the residual and the
    /// activation, on a run `seg` of the output that starts at flat index `start`.
    pub(crate) fn apply_after_affine(&self, seg: &mut [f32], start: usize) {
        self.apply_rows(seg, seg.len(), start, None, None);
    }

    /// `rows = act(rows * scale + bias + residual)`, for whichever of them there are.
    fn apply_rows(
        &self,
        rows: &mut [f32],
        cout: usize,
        start: usize,
        scale: Option<&[f32]>,
        bias: Option<&[f32]>,
    ) {
        let residual = self
            .residual
            .as_deref()
            .map(|r| &r[start..start + rows.len()]);
        if scale.is_none() && bias.is_none() && residual.is_none() && self.act.is_none() {
            return;
        }
        let rows = Rows {
            rows,
            scale,
            bias,
            residual,
            cout,
        };
        match self.act {
            Some(act) => act.with_fn::<f32, _>(rows),
            None => rows.apply(1, |v| v),
        }
    }
}

/// Receives the activation's scalar function and runs it over the rows.
struct Rows<'r, 'b> {
    rows: &'r mut [f32],
    scale: Option<&'b [f32]>,
    bias: Option<&'b [f32]>,
    /// The residual's values at the rows' places.
    residual: Option<&'b [f32]>,
    cout: usize,
}

impl ScalarFn<f32> for Rows<'_, '_> {
    type Output = ();

    fn apply<F: Fn(f32) -> f32 + Send + Sync + Copy>(self, _cost: usize, f: F) {
        let Rows {
            rows,
            scale,
            bias,
            residual,
            cout,
        } = self;
        if let Some(res) = residual {
            with_best_isa(
                #[inline(always)]
                move || {
                    for (row, res) in rows.chunks_exact_mut(cout).zip(res.chunks_exact(cout)) {
                        for (c, (v, &r)) in row.iter_mut().zip(res).enumerate() {
                            let x = scale.map_or(*v, |s| *v * s[c]);
                            *v = f(bias.map_or(x, |b| x + b[c]) + r);
                        }
                    }
                },
            );
            return;
        }
        // `move`: the kernel gets its own copy of `f`'s captures, which LLVM then keeps in
        // registers; through a reference it reloads them per element (a masked gather).
        with_best_isa(
            #[inline(always)]
            move || match (scale, bias) {
                (Some(s), b) => {
                    for row in rows.chunks_exact_mut(cout) {
                        match b {
                            Some(b) => {
                                for ((v, &s), &b) in row.iter_mut().zip(s).zip(b) {
                                    *v = f(*v * s + b);
                                }
                            }
                            None => {
                                for (v, &s) in row.iter_mut().zip(s) {
                                    *v = f(*v * s);
                                }
                            }
                        }
                    }
                }
                (None, Some(b)) => {
                    for row in rows.chunks_exact_mut(cout) {
                        for (v, &b) in row.iter_mut().zip(b) {
                            *v = f(*v + b);
                        }
                    }
                }
                (None, None) => {
                    for v in rows.iter_mut() {
                        *v = f(*v);
                    }
                }
            },
        )
    }
}
