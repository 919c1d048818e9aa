//! Gradient rules of the elementwise unary ops, written with recorded ops so that
//! higher derivatives work; the hot activations use fused kernels when no tape records.

use crate::autodiff::record::any_recording;
use crate::dispatch::with_float;
use crate::elementwise::zip;
use crate::ops::unary::{UnaryOp, SELU_ALPHA, SELU_SCALE};
use crate::{Float, Numeric, Result, Tensor};

impl UnaryOp {
    /// Whether the op has a gradient (rounding ops have none, as in TF).
    pub(crate) fn is_differentiable(self) -> bool {
        !matches!(self, UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round)
    }

    /// dL/dx given the input `x`, the output `y` and the upstream gradient `g`.
    pub(crate) fn gradient(self, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
        if !any_recording() {
            if let Some(d) = self.fused_gradient(x, y, g)? {
                let op = self;
                crate::trace::record(
                    "unary_grad",
                    crate::trace::OpKind::Other,
                    move || format!("{op:?}"),
                    &[x, y, g],
                    &d,
                    move |t| op.gradient(&t[0], &t[1], &t[2]),
                );
                return Ok(d);
            }
        }
        let c = |v: f64| x.scalar_like(v);
        let mask = |m: Tensor| m.cast(x.dtype());
        match self {
            UnaryOp::Neg => g.neg(),
            UnaryOp::Abs => g.mul(&x.sign()?),
            UnaryOp::Square => g.mul(&x.mul_scalar(2.0)?),
            UnaryOp::Sign => g.zeros_like(),
            UnaryOp::Relu => g.mul(&mask(x.greater(&c(0.0)?)?)?),
            UnaryOp::Relu6 => {
                let inside = x.greater(&c(0.0)?)?.logical_and(&x.less(&c(6.0)?)?)?;
                g.mul(&mask(inside)?)
            }
            UnaryOp::Exp => g.mul(y),
            UnaryOp::Log => g.div(x),
            UnaryOp::Log1p => g.div(&x.add_scalar(1.0)?),
            UnaryOp::Sqrt => g.mul_scalar(0.5)?.div(y),
            UnaryOp::Rsqrt => g.mul(&y.pow_scalar(3.0)?.mul_scalar(-0.5)?),
            UnaryOp::Reciprocal => g.mul(&y.square()?)?.neg(),
            UnaryOp::Tanh => g.mul(&c(1.0)?.sub(&y.square()?)?),
            UnaryOp::Sigmoid => g.mul(&y.mul(&c(1.0)?.sub(y)?)?),
            UnaryOp::Gelu => {
                // Φ(x) + x·φ(x)
                let cdf = x
                    .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)?
                    .erf()?
                    .add_scalar(1.0)?
                    .mul_scalar(0.5)?;
                let pdf = x
                    .square()?
                    .mul_scalar(-0.5)?
                    .exp()?
                    .mul_scalar(1.0 / (2.0 * std::f64::consts::PI).sqrt())?;
                g.mul(&cdf.add(&x.mul(&pdf)?)?)
            }
            UnaryOp::GeluTanh => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                let x2 = x.square()?;
                let u = x
                    .mul(&x2.mul_scalar(0.044715)?.add_scalar(1.0)?)?
                    .mul_scalar(k)?;
                let t = u.tanh()?;
                let du = x2
                    .mul_scalar(3.0 * 0.044715)?
                    .add_scalar(1.0)?
                    .mul_scalar(k)?;
                let d = t.add_scalar(1.0)?.mul_scalar(0.5)?.add(
                    &x.mul(&c(1.0)?.sub(&t.square()?)?)?
                        .mul(&du)?
                        .mul_scalar(0.5)?,
                )?;
                g.mul(&d)
            }
            UnaryOp::Silu => {
                let s = x.sigmoid()?;
                let d = s.mul(&x.mul(&c(1.0)?.sub(&s)?)?.add_scalar(1.0)?)?;
                g.mul(&d)
            }
            UnaryOp::Softplus => g.mul(&x.sigmoid()?),
            UnaryOp::Elu(a) => {
                let pos = x.greater(&c(0.0)?)?;
                let d = Tensor::where_(&pos, &x.ones_like()?, &y.add_scalar(a)?)?;
                g.mul(&d)
            }
            UnaryOp::Selu => {
                // TF's SeluGrad picks the negative branch only where the output is < 0.
                let neg = y.less(&c(0.0)?)?;
                let d = Tensor::where_(
                    &neg,
                    &y.add_scalar(SELU_SCALE * SELU_ALPHA)?,
                    &x.full_like(SELU_SCALE)?,
                )?;
                g.mul(&d)
            }
            UnaryOp::LeakyRelu(a) => {
                let pos = x.greater(&c(0.0)?)?;
                g.mul(&Tensor::where_(&pos, &x.ones_like()?, &x.full_like(a)?)?)
            }
            UnaryOp::Sin => g.mul(&x.cos()?),
            UnaryOp::Cos => g.mul(&x.sin()?)?.neg(),
            UnaryOp::Erf => g.mul(
                &x.square()?
                    .neg()?
                    .exp()?
                    .mul_scalar(2.0 / std::f64::consts::PI.sqrt())?,
            ),
            UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => g.zeros_like(),
        }
    }

    /// One-pass kernels for the common activations (first derivatives only).
    fn fused_gradient(self, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let n = self.name();
        Ok(Some(match self {
            UnaryOp::Relu => {
                with_float!(x.dtype(), n, T => zip(n, g, x, 1, |g: T, x: T| if x > T::ZERO { g } else { T::ZERO }))
            }
            UnaryOp::Tanh => {
                with_float!(x.dtype(), n, T => zip(n, g, y, 1, |g: T, y: T| g * (T::ONE - y * y)))
            }
            UnaryOp::Sigmoid => {
                with_float!(x.dtype(), n, T => zip(n, g, y, 1, |g: T, y: T| g * y * (T::ONE - y)))
            }
            UnaryOp::Exp => with_float!(x.dtype(), n, T => zip(n, g, y, 1, |g: T, y: T| g * y)),
            UnaryOp::LeakyRelu(a) => with_float!(x.dtype(), n, T => {
                let a = T::of(a);
                zip(n, g, x, 1, move |g: T, x: T| if x > T::ZERO { g } else { a * g })
            }),
            _ => return Ok(None),
        }?))
    }
}
