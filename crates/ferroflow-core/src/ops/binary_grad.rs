//! Gradient rules of the elementwise binary ops (broadcast operands get their gradient
//! summed back to their own shape).

use crate::ops::binary::BinaryOp;
use crate::{Result, Tensor};

impl BinaryOp {
    /// Whether the op has a gradient (`floor_div` has none, as in TF).
    pub(crate) fn is_differentiable(self) -> bool {
        !matches!(self, BinaryOp::FloorDiv)
    }

    /// Gradients for `a` and `b` of `y = a op b`, given the upstream gradient `g`.
    pub(crate) fn gradient(
        self,
        a: &Tensor,
        b: &Tensor,
        y: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (ga, gb) = match self {
            BinaryOp::Add => (Some(g.clone()), Some(g.clone())),
            BinaryOp::Sub => (Some(g.clone()), needs[1].then(|| g.neg()).transpose()?),
            BinaryOp::Mul => (
                needs[0].then(|| g.mul(b)).transpose()?,
                needs[1].then(|| g.mul(a)).transpose()?,
            ),
            BinaryOp::Div => (
                needs[0].then(|| g.div(b)).transpose()?,
                needs[1]
                    .then(|| g.mul(a)?.div(&b.square()?)?.neg())
                    .transpose()?,
            ),
            BinaryOp::Pow => {
                let ga = needs[0]
                    .then(|| g.mul(b)?.mul(&a.pow(&b.sub(&b.ones_like()?)?)?))
                    .transpose()?;
                let gb = needs[1]
                    .then(|| {
                        // d/db a^b = a^b·ln a, taken as 0 where a <= 0 (as TF does).
                        let pos = a.greater(&a.zeros_like()?)?;
                        let safe = Tensor::where_(&pos, a, &a.ones_like()?)?;
                        let log_a = Tensor::where_(&pos, &safe.log()?, &a.zeros_like()?)?;
                        g.mul(y)?.mul(&log_a)
                    })
                    .transpose()?;
                (ga, gb)
            }
            BinaryOp::Maximum | BinaryOp::Minimum => {
                // Ties send the gradient to `a`, as TF does.
                let pick_a = if self == BinaryOp::Maximum {
                    a.greater_equal(b)?
                } else {
                    a.less_equal(b)?
                };
                let zero = g.zeros_like()?;
                (
                    needs[0]
                        .then(|| Tensor::where_(&pick_a, g, &zero))
                        .transpose()?,
                    needs[1]
                        .then(|| Tensor::where_(&pick_a, &zero, g))
                        .transpose()?,
                )
            }
            BinaryOp::SquaredDifference => {
                let d = g.mul(&a.sub(b)?)?.mul_scalar(2.0)?;
                (Some(d.clone()), needs[1].then(|| d.neg()).transpose()?)
            }
            BinaryOp::FloorMod => (
                Some(g.clone()),
                needs[1]
                    .then(|| g.mul(&a.floor_div(b)?)?.neg())
                    .transpose()?,
            ),
            BinaryOp::FloorDiv => (None, None),
        };
        let fit = |d: Option<Tensor>, need: bool, like: &Tensor| -> Result<Option<Tensor>> {
            match d {
                Some(d) if need => Ok(Some(d.sum_to_shape(like.shape())?)),
                _ => Ok(None),
            }
        };
        Ok(vec![fit(ga, needs[0], a)?, fit(gb, needs[1], b)?])
    }
}
