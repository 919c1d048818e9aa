//! A fused kernel after a convolution that is only a bias and an activation, in the form
//! the convolution kernels apply themselves ([`ConvEpilogue`]): bias and ReLU/ReLU6 in
//! registers, other activations on each finished block. The general form, a tile
//! function that interprets the kernel's program on each tile, also makes the
//! convolution hand out whole rows of output channels per block.

use crate::fused::{Access, FusedKernel, Instr};
use ferroflow_core::ops::conv_epilogue::ConvEpilogue;
use ferroflow_core::{BinaryOp, DType, Tensor, UnaryOp};

/// A bias tensor and an activation.
pub(crate) struct BiasActivation {
    bias: Option<Tensor>,
    activation: Option<UnaryOp>,
}

impl BiasActivation {
    /// As a convolution's epilogue.
    pub(crate) fn epilogue(&self) -> ConvEpilogue<'_> {
        ConvEpilogue::new(self.bias.as_ref(), self.activation)
    }
}

impl FusedKernel {
    /// This kernel, run after a convolution of `cout` output channels whose output is
    /// input 0 (`rest`: inputs 1..), as an optional bias per channel followed by an
    /// optional activation; `None` when it computes anything else.
    pub(crate) fn bias_activation(&self, rest: &[Tensor], cout: usize) -> Option<BiasActivation> {
        if self.reduce.is_some() || self.access.first() != Some(&Access::Same) {
            return None;
        }
        let inputs = self.access.len();
        let mut current = 0;
        let mut bias = None;
        let mut activation = None;
        // Bounds of a clamp built from maximum/minimum with constants.
        let (mut lo, mut hi) = (f32::NEG_INFINITY, f32::INFINITY);
        for (j, step) in self.program.iter().enumerate() {
            let clamping = lo > f32::NEG_INFINITY || hi < f32::INFINITY;
            match *step {
                Instr::Unary(op, src) if src == current && activation.is_none() && !clamping => {
                    activation = Some(op);
                }
                Instr::Binary(op, a, b)
                    if activation.is_none() && (a == current) != (b == current) =>
                {
                    let other = if a == current { b } else { a };
                    let t = other.checked_sub(1).and_then(|i| rest.get(i))?;
                    if other == 0 || other >= inputs || t.dtype() != DType::F32 {
                        return None;
                    }
                    match (op, &self.access[other]) {
                        (BinaryOp::Add, Access::Periodic(p))
                            if *p == cout && bias.is_none() && !clamping && t.numel() == cout =>
                        {
                            bias = Some(t.reshape(&[cout as isize]).ok()?);
                        }
                        (BinaryOp::Maximum, Access::Scalar) => lo = lo.max(scalar(t)?),
                        (BinaryOp::Minimum, Access::Scalar) => hi = hi.min(scalar(t)?),
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
        Some(BiasActivation { bias, activation })
    }
}

/// The one value of a scalar operand.
fn scalar(t: &Tensor) -> Option<f32> {
    (t.numel() == 1).then(|| t.to_f64_vec()[0] as f32)
}
