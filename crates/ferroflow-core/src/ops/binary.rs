//! Elementwise binary arithmetic with NumPy/TF broadcasting: one table row per op.

use crate::autodiff::record::Recorder;
use crate::dispatch::with_numeric;
use crate::elementwise::zip;
use crate::trace::OpKind;
use crate::{DType, Error, Numeric, Result, Tensor};

/// An elementwise binary arithmetic operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a − b
    Sub,
    /// a · b
    Mul,
    /// a / b (truncating for integers, like TF's integer `Div`)
    Div,
    /// a^b
    Pow,
    /// max(a, b), NaN-propagating
    Maximum,
    /// min(a, b), NaN-propagating
    Minimum,
    /// ⌊a / b⌋
    FloorDiv,
    /// a − b·⌊a / b⌋ (sign of the divisor)
    FloorMod,
    /// (a − b)²
    SquaredDifference,
}

impl BinaryOp {
    /// The op's name as it appears in errors and graph dumps.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::FloorDiv => "floor_div",
            BinaryOp::FloorMod => "floor_mod",
            BinaryOp::SquaredDifference => "squared_difference",
        }
    }

    fn run<T: Numeric>(self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let n = self.name();
        let is_float = T::DTYPE.is_float();
        if !is_float
            && matches!(
                self,
                BinaryOp::Div | BinaryOp::FloorDiv | BinaryOp::FloorMod
            )
        {
            let divisor = b.contiguous_data::<T>()?;
            if divisor.contains(&T::ZERO) {
                return Err(Error::invalid(n, "integer division by zero"));
            }
        }
        struct Zip<'a>(&'static str, &'a Tensor, &'a Tensor);
        impl<T: Numeric> ScalarFn2<T> for Zip<'_> {
            type Output = Result<Tensor>;
            fn apply<F: Fn(T, T) -> T + Send + Sync + Copy>(
                self,
                cost: usize,
                f: F,
            ) -> Result<Tensor> {
                zip(self.0, self.1, self.2, cost, f)
            }
        }
        self.with_fn::<T, _>(Zip(n, a, b))
    }

    /// Hands the op's scalar function to `k` (monomorphised per op), so that eager kernels
    /// and fused graph kernels compute exactly the same thing.
    pub fn with_fn<T: Numeric, K: ScalarFn2<T>>(self, k: K) -> K::Output {
        let is_float = T::DTYPE.is_float();
        match self {
            BinaryOp::Add => k.apply(1, |x: T, y: T| x + y),
            BinaryOp::Sub => k.apply(1, |x: T, y: T| x - y),
            BinaryOp::Mul => k.apply(1, |x: T, y: T| x * y),
            BinaryOp::Div => k.apply(2, |x: T, y: T| x.checked_div(y).unwrap_or(T::ZERO)),
            BinaryOp::Pow => k.apply(8, |x: T, y: T| x.pow(y)),
            BinaryOp::Maximum => k.apply(1, |x: T, y: T| x.max_of(y)),
            BinaryOp::Minimum => k.apply(1, |x: T, y: T| x.min_of(y)),
            BinaryOp::FloorDiv => k.apply(2, move |x: T, y: T| {
                if is_float {
                    T::from_f64((x.to_f64() / y.to_f64()).floor())
                } else {
                    let q = x.checked_div(y).unwrap_or(T::ZERO);
                    let r = x - q * y;
                    let adjust = r != T::ZERO && ((r < T::ZERO) != (y < T::ZERO));
                    if adjust {
                        q - T::ONE
                    } else {
                        q
                    }
                }
            }),
            BinaryOp::FloorMod => k.apply(2, |x: T, y: T| x.floor_mod(y).unwrap_or(T::ZERO)),
            BinaryOp::SquaredDifference => k.apply(1, |x: T, y: T| (x - y) * (x - y)),
        }
    }
}

/// Receives an elementwise function of two arguments (see [`BinaryOp::with_fn`]).
pub trait ScalarFn2<T> {
    /// What the receiver makes of the function.
    type Output;
    /// Called once with the op's per-element cost and its function.
    fn apply<F: Fn(T, T) -> T + Send + Sync + Copy>(self, cost: usize, f: F) -> Self::Output;
}

/// Checks that two operands share a dtype (TF never promotes implicitly).
pub(crate) fn same_dtype(op: &'static str, a: &Tensor, b: &Tensor) -> Result<DType> {
    if a.dtype() != b.dtype() {
        return Err(Error::DTypeMismatch {
            op,
            lhs: a.dtype(),
            rhs: b.dtype(),
        });
    }
    Ok(a.dtype())
}

impl Tensor {
    /// Applies an elementwise [`BinaryOp`] with broadcasting. Both operands must share a dtype.
    pub fn binary(&self, op: BinaryOp, other: &Tensor) -> Result<Tensor> {
        let dt = same_dtype(op.name(), self, other)?;
        if dt.compute_dtype() != dt {
            let c = dt.compute_dtype();
            return self.cast(c)?.binary(op, &other.cast(c)?)?.cast(dt);
        }
        let out = with_numeric!(dt, op.name(), T => op.run::<T>(self, other))?;
        if let Some(r) = Recorder::new(&[self, other]) {
            if op.is_differentiable() {
                let (a, b, y) = (self.clone(), other.clone(), out.clone());
                r.finish(&out, move |g, needs| op.gradient(&a, &b, &y, g, needs));
            }
        }
        crate::trace::record(
            op.name(),
            OpKind::Binary(op),
            String::new,
            &[self, other],
            &out,
            move |x| x[0].binary(op, &x[1]),
        );
        Ok(out)
    }

    /// A scalar of this tensor's dtype holding `value`.
    pub fn scalar_like(&self, value: f64) -> Result<Tensor> {
        Tensor::full(&[], value, self.dtype())
    }

    /// `self + value` for a Rust number, in this tensor's dtype.
    pub fn add_scalar(&self, value: f64) -> Result<Tensor> {
        self.add(&self.scalar_like(value)?)
    }

    /// `self * value` for a Rust number, in this tensor's dtype.
    pub fn mul_scalar(&self, value: f64) -> Result<Tensor> {
        self.mul(&self.scalar_like(value)?)
    }

    /// `self ^ value` for a Rust number, in this tensor's dtype.
    pub fn pow_scalar(&self, value: f64) -> Result<Tensor> {
        self.pow(&self.scalar_like(value)?)
    }
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $method:ident => $op:expr;)*) => {
        impl Tensor {
            $($(#[$doc])* pub fn $method(&self, other: &Tensor) -> Result<Tensor> { self.binary($op, other) })*
        }
    };
}

binary_methods! {
    /// Elementwise sum with broadcasting.
    add => BinaryOp::Add;
    /// Elementwise difference with broadcasting.
    sub => BinaryOp::Sub;
    /// Elementwise product with broadcasting.
    mul => BinaryOp::Mul;
    /// Elementwise quotient with broadcasting.
    div => BinaryOp::Div;
    /// Elementwise power with broadcasting.
    pow => BinaryOp::Pow;
    /// Elementwise maximum with broadcasting.
    maximum => BinaryOp::Maximum;
    /// Elementwise minimum with broadcasting.
    minimum => BinaryOp::Minimum;
    /// Elementwise floor division with broadcasting.
    floor_div => BinaryOp::FloorDiv;
    /// Elementwise floor modulo with broadcasting.
    floor_mod => BinaryOp::FloorMod;
    /// Elementwise (a − b)² with broadcasting.
    squared_difference => BinaryOp::SquaredDifference;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_and_errors() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        let b = Tensor::from_vec(vec![10.0f32, 20.0], &[2, 1]).unwrap();
        assert_eq!(
            a.add(&b).unwrap().to_vec::<f32>().unwrap(),
            vec![11.0, 12.0, 13.0, 24.0, 25.0, 26.0]
        );
        let c = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
        assert_eq!(
            a.add(&c).unwrap_err().to_string(),
            "add: shapes cannot be broadcast: [2, 3] x [2]"
        );
        let d = Tensor::from_vec(vec![1i32, 2], &[2]).unwrap();
        assert_eq!(
            c.mul(&d).unwrap_err().to_string(),
            "mul: dtypes differ: float32 vs int32"
        );
    }

    #[test]
    fn integer_division_rules() {
        let a = Tensor::from_vec(vec![7i32, -7, 7, -7], &[4]).unwrap();
        let b = Tensor::from_vec(vec![2i32, 2, -2, -2], &[4]).unwrap();
        assert_eq!(
            a.div(&b).unwrap().to_vec::<i32>().unwrap(),
            vec![3, -3, -3, 3]
        );
        assert_eq!(
            a.floor_div(&b).unwrap().to_vec::<i32>().unwrap(),
            vec![3, -4, -4, 3]
        );
        assert_eq!(
            a.floor_mod(&b).unwrap().to_vec::<i32>().unwrap(),
            vec![1, 1, -1, -1]
        );
        let z = Tensor::from_vec(vec![0i32], &[1]).unwrap();
        assert!(a
            .div(&z)
            .unwrap_err()
            .to_string()
            .contains("division by zero"));
        let p = Tensor::from_vec(vec![2i64, 3], &[2]).unwrap();
        assert_eq!(p.pow(&p).unwrap().to_vec::<i64>().unwrap(), vec![4, 27]);
    }

    #[test]
    fn nan_propagates_through_max_min() {
        let a = Tensor::from_vec(vec![f32::NAN, 1.0], &[2]).unwrap();
        let b = Tensor::from_vec(vec![0.0f32, f32::NAN], &[2]).unwrap();
        let m = a.maximum(&b).unwrap().to_vec::<f32>().unwrap();
        assert!(m[0].is_nan() && m[1].is_nan());
    }
}
