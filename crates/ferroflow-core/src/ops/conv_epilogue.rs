//! What a convolution applies to its output while each tile of it is still in cache: a
//! bias per output channel, then an activation (TFLite's fused activations, Keras's
//! `Conv2D(activation=...)` at inference). Applied separately, the bias add and the
//! activation are two more passes over the whole feature map, each with an allocation.

use crate::ops::unary::{ScalarFn, UnaryOp};
use crate::parallel::with_best_isa;
use crate::{DType, Tensor};
use std::borrow::Cow;

/// The bias and activation [`Tensor::conv2d_fused`] applies to a convolution's output.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvEpilogue<'a> {
    /// Added per output channel (`[cout]`; another shape broadcasts as `add` does).
    pub bias: Option<&'a Tensor>,
    /// Applied after the bias.
    pub activation: Option<UnaryOp>,
}

impl<'a> ConvEpilogue<'a> {
    /// Bias `bias` (if any), then activation `activation` (if any).
    pub fn new(bias: Option<&'a Tensor>, activation: Option<UnaryOp>) -> Self {
        ConvEpilogue { bias, activation }
    }

    /// The kernel-side form when the bias is one f32 per channel of `cout`; `None` when the
    /// epilogue has to run as separate ops (another dtype or a broadcasting bias).
    pub(crate) fn kernel_form(&self, cout: usize) -> Option<Epilogue<'a>> {
        let bias = match self.bias {
            None => None,
            Some(b) if b.dtype() == DType::F32 && b.shape() == [cout] => {
                Some(b.contiguous_data::<f32>().ok()?)
            }
            Some(_) => return None,
        };
        Some(Epilogue {
            bias,
            act: self.activation,
        })
    }

    /// The same result by separate ops (recorded by tapes and tracers like any op).
    pub(crate) fn apply_separately(&self, y: Tensor) -> crate::Result<Tensor> {
        let y = match self.bias {
            Some(b) => y.add(b)?,
            None => y,
        };
        match self.activation {
            Some(a) => y.unary(a),
            None => Ok(y),
        }
    }
}

/// An epilogue as the kernels apply it: the bias as a slice of `cout` floats.
#[derive(Default)]
pub(crate) struct Epilogue<'a> {
    bias: Option<Cow<'a, [f32]>>,
    act: Option<UnaryOp>,
}

impl Epilogue<'_> {
    /// Nothing to apply.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        act: None,
    };

    /// True when applying it changes nothing.
    pub fn is_identity(&self) -> bool {
        self.bias.is_none() && self.act.is_none()
    }

    /// Applies it in place to `rows`, consecutive rows of `cout` channels.
    pub fn apply(&self, rows: &mut [f32], cout: usize) {
        if self.is_identity() || cout == 0 {
            return;
        }
        let rows = Rows {
            rows,
            bias: self.bias.as_deref(),
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
    bias: Option<&'b [f32]>,
    cout: usize,
}

impl ScalarFn<f32> for Rows<'_, '_> {
    type Output = ();

    fn apply<F: Fn(f32) -> f32 + Send + Sync + Copy>(self, _cost: usize, f: F) {
        let Rows { rows, bias, cout } = self;
        // `move`: the kernel gets its own copy of `f`'s captures, which LLVM then keeps in
        // registers; through a reference it reloads them per element (a masked gather).
        with_best_isa(
            #[inline(always)]
            move || match bias {
                Some(b) => {
                    for row in rows.chunks_exact_mut(cout) {
                        for (v, &b) in row.iter_mut().zip(b) {
                            *v = f(*v + b);
                        }
                    }
                }
                None => {
                    for v in rows.iter_mut() {
                        *v = f(*v);
                    }
                }
            },
        )
    }
}
