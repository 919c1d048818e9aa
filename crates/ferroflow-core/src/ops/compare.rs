//! Comparisons, logical ops, `where` (select) and `clip_by_value`.

use crate::autodiff::record::Recorder;
use crate::dispatch::{with_any, with_numeric};
use crate::elementwise::{map, zip, zip3};
use crate::ops::binary::same_dtype;
use crate::trace::OpKind;
use crate::{DType, Element, Error, Result, Tensor};

/// An elementwise comparison producing a bool tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// a == b
    Equal,
    /// a != b
    NotEqual,
    /// a < b
    Less,
    /// a <= b
    LessEqual,
    /// a > b
    Greater,
    /// a >= b
    GreaterEqual,
}

/// A logical op on bool tensors (`not` takes one operand, the others two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogicOp {
    /// a && b
    And,
    /// a || b
    Or,
    /// a != b
    Xor,
    /// !a
    Not,
}

impl LogicOp {
    /// The op's name (`logical_and`...).
    pub fn name(self) -> &'static str {
        match self {
            LogicOp::And => "logical_and",
            LogicOp::Or => "logical_or",
            LogicOp::Xor => "logical_xor",
            LogicOp::Not => "logical_not",
        }
    }

    /// The binary function (`Not` ignores its second operand).
    fn function(self) -> fn(bool, bool) -> bool {
        match self {
            LogicOp::And => |a, b| a && b,
            LogicOp::Or => |a, b| a || b,
            LogicOp::Xor => |a, b| a != b,
            LogicOp::Not => |a, _| !a,
        }
    }
}

impl CmpOp {
    /// The op's name as it appears in errors.
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Equal => "equal",
            CmpOp::NotEqual => "not_equal",
            CmpOp::Less => "less",
            CmpOp::LessEqual => "less_equal",
            CmpOp::Greater => "greater",
            CmpOp::GreaterEqual => "greater_equal",
        }
    }

    fn run<T: Element>(self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let n = self.name();
        match self {
            CmpOp::Equal => zip(n, a, b, 1, |x: T, y: T| x == y),
            CmpOp::NotEqual => zip(n, a, b, 1, |x: T, y: T| x != y),
            CmpOp::Less => zip(n, a, b, 1, |x: T, y: T| x < y),
            CmpOp::LessEqual => zip(n, a, b, 1, |x: T, y: T| x <= y),
            CmpOp::Greater => zip(n, a, b, 1, |x: T, y: T| x > y),
            CmpOp::GreaterEqual => zip(n, a, b, 1, |x: T, y: T| x >= y),
        }
    }
}

impl Tensor {
    /// Elementwise comparison with broadcasting; the result is a bool tensor.
    pub fn compare(&self, op: CmpOp, other: &Tensor) -> Result<Tensor> {
        let dt = same_dtype(op.name(), self, other)?;
        let out = if dt == DType::String {
            crate::strings::compare(op, self, other)
        } else {
            with_any!(dt, op.name(), T => op.run::<T>(self, other))
        }?;
        crate::trace::record(
            op.name(),
            OpKind::Compare(op),
            String::new,
            &[self, other],
            &out,
            move |x| x[0].compare(op, &x[1]),
        );
        Ok(out)
    }

    /// Elementwise `a == b`.
    pub fn equal(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CmpOp::Equal, other)
    }
    /// Elementwise `a != b`.
    pub fn not_equal(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CmpOp::NotEqual, other)
    }
    /// Elementwise `a < b`.
    pub fn less(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CmpOp::Less, other)
    }
    /// Elementwise `a <= b`.
    pub fn less_equal(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CmpOp::LessEqual, other)
    }
    /// Elementwise `a > b`.
    pub fn greater(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CmpOp::Greater, other)
    }
    /// Elementwise `a >= b`.
    pub fn greater_equal(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CmpOp::GreaterEqual, other)
    }

    fn logical(&self, op: LogicOp, other: &Tensor) -> Result<Tensor> {
        for t in [self, other] {
            if t.dtype() != DType::Bool {
                return Err(Error::UnsupportedDType {
                    op: op.name(),
                    dtype: t.dtype(),
                });
            }
        }
        let f = op.function();
        let out = zip(op.name(), self, other, 1, f)?;
        crate::trace::record(
            op.name(),
            OpKind::Logic(op),
            String::new,
            &[self, other],
            &out,
            move |x| x[0].logical(op, &x[1]),
        );
        Ok(out)
    }

    /// Elementwise logical and of bool tensors.
    pub fn logical_and(&self, other: &Tensor) -> Result<Tensor> {
        self.logical(LogicOp::And, other)
    }
    /// Elementwise logical or of bool tensors.
    pub fn logical_or(&self, other: &Tensor) -> Result<Tensor> {
        self.logical(LogicOp::Or, other)
    }
    /// Elementwise logical xor of bool tensors.
    pub fn logical_xor(&self, other: &Tensor) -> Result<Tensor> {
        self.logical(LogicOp::Xor, other)
    }
    /// Elementwise logical not of a bool tensor.
    pub fn logical_not(&self) -> Result<Tensor> {
        if self.dtype() != DType::Bool {
            return Err(Error::UnsupportedDType {
                op: LogicOp::Not.name(),
                dtype: self.dtype(),
            });
        }
        let out = map(self, 1, |a: bool| !a)?;
        crate::trace::record(
            LogicOp::Not.name(),
            OpKind::Logic(LogicOp::Not),
            String::new,
            &[self],
            &out,
            |x| x[0].logical_not(),
        );
        Ok(out)
    }

    /// `tf.where(cond, x, y)`: picks from `x` where `cond` is true, else from `y`; all three
    /// broadcast together.
    pub fn where_(cond: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        if cond.dtype() != DType::Bool {
            return Err(Error::UnsupportedDType {
                op: "where",
                dtype: cond.dtype(),
            });
        }
        let dt = same_dtype("where", x, y)?;
        let out = if dt == DType::String {
            crate::strings::select(cond, x, y)
        } else {
            with_any!(dt, "where", T => zip3("where", cond, x, y, |c: bool, a: T, b: T| if c { a } else { b }))
        }?;
        if let Some(r) = Recorder::new(&[x, y]) {
            let (c, xs, ys) = (cond.clone(), x.shape().to_vec(), y.shape().to_vec());
            r.finish(&out, move |g, needs| {
                let zero = g.zeros_like()?;
                let gx = needs[0]
                    .then(|| Tensor::where_(&c, g, &zero)?.sum_to_shape(&xs))
                    .transpose()?;
                let gy = needs[1]
                    .then(|| Tensor::where_(&c, &zero, g)?.sum_to_shape(&ys))
                    .transpose()?;
                Ok(vec![gx, gy])
            });
        }
        crate::trace::record(
            "where",
            OpKind::Select,
            String::new,
            &[cond, x, y],
            &out,
            |x| Tensor::where_(&x[0], &x[1], &x[2]),
        );
        Ok(out)
    }

    /// `tf.clip_by_value`: clamps into `[lo, hi]` (tensors broadcast with `self`).
    pub fn clip(&self, lo: &Tensor, hi: &Tensor) -> Result<Tensor> {
        same_dtype("clip", self, lo)?;
        let dt = same_dtype("clip", self, hi)?;
        if dt.compute_dtype() != dt {
            let c = dt.compute_dtype();
            return self.cast(c)?.clip(&lo.cast(c)?, &hi.cast(c)?)?.cast(dt);
        }
        let out = with_numeric!(dt, "clip", T => zip3("clip", self, lo, hi, |v: T, l: T, h: T| {
            let v = if v < l { l } else { v };
            if v > h { h } else { v }
        }))?;
        if let Some(r) = Recorder::new(&[self, lo, hi]) {
            // As TF's ClipByValue: x gets the gradient where lo <= x <= hi, the bounds where
            // x falls below / above them.
            let (x, l, h) = (self.clone(), lo.clone(), hi.clone());
            r.finish(&out, move |g, needs| {
                let zero = g.zeros_like()?;
                let below = x.less(&l)?;
                let above = x.greater(&h)?;
                let gx = needs[0]
                    .then(|| {
                        let outside = below.logical_or(&above)?;
                        Tensor::where_(&outside, &zero, g)?.sum_to_shape(x.shape())
                    })
                    .transpose()?;
                let gl = needs[1]
                    .then(|| Tensor::where_(&below, g, &zero)?.sum_to_shape(l.shape()))
                    .transpose()?;
                let gh = needs[2]
                    .then(|| Tensor::where_(&above, g, &zero)?.sum_to_shape(h.shape()))
                    .transpose()?;
                Ok(vec![gx, gl, gh])
            });
        }
        crate::trace::record(
            "clip",
            OpKind::Clip,
            String::new,
            &[self, lo, hi],
            &out,
            |x| x[0].clip(&x[1], &x[2]),
        );
        Ok(out)
    }

    /// [`Tensor::clip`] with Rust numbers as bounds.
    pub fn clip_scalar(&self, lo: f64, hi: f64) -> Result<Tensor> {
        self.clip(&self.scalar_like(lo)?, &self.scalar_like(hi)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_select_clip() {
        let a = Tensor::from_vec(vec![1.0f32, 5.0, 3.0], &[3]).unwrap();
        let b = Tensor::scalar(3.0f32);
        let m = a.greater_equal(&b).unwrap();
        assert_eq!(m.to_vec::<bool>().unwrap(), vec![false, true, true]);
        let w = Tensor::where_(&m, &a, &b).unwrap();
        assert_eq!(w.to_vec::<f32>().unwrap(), vec![3.0, 5.0, 3.0]);
        assert_eq!(
            a.clip_scalar(2.0, 4.0).unwrap().to_vec::<f32>().unwrap(),
            vec![2.0, 4.0, 3.0]
        );
        let n = m.logical_not().unwrap().logical_or(&m).unwrap();
        assert_eq!(n.to_vec::<bool>().unwrap(), vec![true; 3]);
        assert!(a.logical_not().is_err());
        assert!(Tensor::where_(&a, &a, &a).is_err());
    }
}
