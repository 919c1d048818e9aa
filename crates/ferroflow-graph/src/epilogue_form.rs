//! A fused kernel after a convolution that is only a per-channel affine map and an
//! activation, in the form the convolution kernels apply themselves ([`ConvEpilogue`]):
//! scale, bias and ReLU/ReLU6 in registers, other activations on each finished block. An
//! inference BatchNormalization traces as `sub`, `mul`, `add` with per-channel values
//! read from its variables, so it folds here, at call time, into one scale and one bias.
//! The general form, a tile function that interprets the kernel's program on each tile,
//! also makes the convolution hand out whole rows of output channels per block.

use crate::fused::{Access, FusedKernel, Instr};
use ferroflow_core::ops::conv_epilogue::ConvEpilogue;
use ferroflow_core::{BinaryOp, DType, Tensor, UnaryOp};

/// A scale and a bias per output channel, a residual added element by element, and an
/// activation.
pub(crate) struct AffineActivation {
    scale: Option<Tensor>,
    bias: Option<Tensor>,
    residual: Option<Tensor>,
    activation: Option<UnaryOp>,
}

impl AffineActivation {
    /// As a convolution's epilogue.
    pub(crate) fn epilogue(&self) -> ConvEpilogue<'_> {
        ConvEpilogue {
            scale: self.scale.as_ref(),
            residual: self.residual.as_ref(),
            ..ConvEpilogue::new(self.bias.as_ref(), self.activation)
        }
    }
}

impl FusedKernel {
    /// This kernel, run after a convolution of `cout` output channels whose output is
    /// input 0 (`rest`: inputs 1..), as `x * scale + bias` per channel, plus at most one
    /// input of the output's shape (a residual connection), followed by an optional
    /// activation; `None` when it computes anything else.
    pub(crate) fn affine_activation(
        &self,
        rest: &[Tensor],
        cout: usize,
    ) -> Option<AffineActivation> {
        if self.reduce.is_some() || self.access.first() != Some(&Access::Same) || cout == 0 {
            return None;
        }
        let inputs = self.access.len();
        let mut current = 0;
        let (mut scale, mut shift) = (vec![1.0f32; cout], vec![0.0f32; cout]);
        let mut activation = None;
        let mut residual: Option<Tensor> = None;
        // Bounds of a clamp built from maximum/minimum with constants.
        let (mut lo, mut hi) = (f32::NEG_INFINITY, f32::INFINITY);
        for (j, step) in self.program.iter().enumerate() {
            let affine = activation.is_none() && lo == f32::NEG_INFINITY && hi == f32::INFINITY;
            match *step {
                Instr::Unary(op, src) if src == current && affine => activation = Some(op),
                Instr::Binary(op, a, b)
                    if activation.is_none() && (a == current) != (b == current) =>
                {
                    let other = if a == current { b } else { a };
                    if other == 0 || other >= inputs {
                        return None;
                    }
                    if self.access[other] == Access::Same {
                        let r = rest.get(other - 1)?;
                        // Added once, and never scaled after (the kernels add it last).
                        let once = op == BinaryOp::Add && affine && residual.is_none();
                        if !once || r.dtype() != DType::F32 {
                            return None;
                        }
                        residual = Some(r.clone());
                        current = inputs + j;
                        continue;
                    }
                    let k = per_channel(rest.get(other - 1)?, &self.access[other], cout)?;
                    let scalar = || (self.access[other] == Access::Scalar).then_some(k[0]);
                    match op {
                        BinaryOp::Add if affine => {
                            shift.iter_mut().zip(&k).for_each(|(b, k)| *b += k)
                        }
                        BinaryOp::Sub if affine && a == current => {
                            shift.iter_mut().zip(&k).for_each(|(b, k)| *b -= k)
                        }
                        BinaryOp::Mul if affine && residual.is_none() => {
                            for ((s, b), k) in scale.iter_mut().zip(&mut shift).zip(&k) {
                                *s *= k;
                                *b *= k;
                            }
                        }
                        BinaryOp::Div if affine && a == current && residual.is_none() => {
                            for ((s, b), k) in scale.iter_mut().zip(&mut shift).zip(&k) {
                                *s /= k;
                                *b /= k;
                            }
                        }
                        BinaryOp::Maximum => lo = lo.max(scalar()?),
                        BinaryOp::Minimum => hi = hi.min(scalar()?),
                        _ => return None,
                    }
                }
                _ => return None,
            }
            current = inputs + j;
        }
        if lo > f32::NEG_INFINITY || hi < f32::INFINITY {
            activation = Some(match (lo, hi) {
                (0.0, f32::INFINITY) => UnaryOp::Relu,
                (0.0, 6.0) => UnaryOp::Relu6,
                _ => return None,
            });
        }
        let channels = |v: Vec<f32>, unit: f32| {
            (v.iter().any(|&x| x != unit))
                .then(|| Tensor::from_vec(v, &[cout]).ok())
                .flatten()
        };
        Some(AffineActivation {
            scale: channels(scale, 1.0),
            bias: channels(shift, 0.0),
            residual,
            activation,
        })
    }
}

/// The values of a constant operand for each of `cout` channels: one broadcast to all,
/// or one per channel repeating along the output; `None` for anything else.
fn per_channel(t: &Tensor, access: &Access, cout: usize) -> Option<Vec<f32>> {
    if t.dtype() != DType::F32 {
        return None;
    }
    let values = t.contiguous().to_vec::<f32>().ok()?;
    match access {
        Access::Scalar if values.len() == 1 => Some(vec![values[0]; cout]),
        Access::Periodic(p) if *p == cout && values.len() == cout => Some(values),
        _ => None,
    }
}
