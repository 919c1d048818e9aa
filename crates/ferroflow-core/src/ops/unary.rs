//! Elementwise unary ops: one table row per op (float rule, and integer rule where TF has one).

use crate::autodiff::record::Recorder;
use crate::dispatch::{with_float, with_numeric};
use crate::elementwise::map;
use crate::trace::OpKind;
use crate::{DType, Error, Float, Numeric, Result, Tensor};

/// An elementwise unary operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// -x
    Neg,
    /// |x|
    Abs,
    /// x²
    Square,
    /// -1, 0 or 1
    Sign,
    /// max(x, 0)
    Relu,
    /// min(max(x, 0), 6)
    Relu6,
    /// e^x
    Exp,
    /// ln x
    Log,
    /// ln(1 + x)
    Log1p,
    /// √x
    Sqrt,
    /// 1/√x
    Rsqrt,
    /// 1/x
    Reciprocal,
    /// tanh x
    Tanh,
    /// 1/(1 + e^-x)
    Sigmoid,
    /// x·Φ(x) with the exact normal CDF (erf)
    Gelu,
    /// the tanh approximation of GELU
    GeluTanh,
    /// x·sigmoid(x), also called swish
    Silu,
    /// ln(1 + e^x)
    Softplus,
    /// x if x > 0 else alpha·(e^x − 1)
    Elu(f64),
    /// scale·elu(x, alpha) with the SELU constants
    Selu,
    /// x if x > 0 else alpha·x
    LeakyRelu(f64),
    /// sin x
    Sin,
    /// cos x
    Cos,
    /// the error function
    Erf,
    /// round down
    Floor,
    /// round up
    Ceil,
    /// round half to even (like `tf.math.round`)
    Round,
}

pub(crate) const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
pub(crate) const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

impl UnaryOp {
    /// The op's name as it appears in errors and graph dumps.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Square => "square",
            UnaryOp::Sign => "sign",
            UnaryOp::Relu => "relu",
            UnaryOp::Relu6 => "relu6",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Reciprocal => "reciprocal",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Gelu => "gelu",
            UnaryOp::GeluTanh => "gelu_tanh",
            UnaryOp::Silu => "silu",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Elu(_) => "elu",
            UnaryOp::Selu => "selu",
            UnaryOp::LeakyRelu(_) => "leaky_relu",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Erf => "erf",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round",
        }
    }

    /// Relative cost per element, used to decide when to split across threads.
    fn cost(self) -> usize {
        match self {
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Square | UnaryOp::Relu | UnaryOp::Relu6 => 1,
            UnaryOp::Sign
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round
            | UnaryOp::LeakyRelu(_) => 1,
            UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Reciprocal => 2,
            _ => 8,
        }
    }

    fn run_float<T: Float>(self, x: &Tensor) -> Result<Tensor> {
        struct Map<'a>(&'a Tensor);
        impl<T: Float> ScalarFn<T> for Map<'_> {
            type Output = Result<Tensor>;
            fn apply<F: Fn(T) -> T + Send + Sync + Copy>(
                self,
                cost: usize,
                f: F,
            ) -> Result<Tensor> {
                map(self.0, cost, f)
            }
        }
        self.with_fn::<T, _>(Map(x))
    }

    /// Hands the op's float scalar function to `k` (monomorphised per op), so that eager
    /// kernels and fused graph kernels compute exactly the same thing.
    pub fn with_fn<T: Float, K: ScalarFn<T>>(self, k: K) -> K::Output {
        let (zero, one, half) = (T::ZERO, T::ONE, T::of(0.5));
        let p = match self {
            UnaryOp::Elu(a) | UnaryOp::LeakyRelu(a) => T::of(a),
            _ => zero,
        };
        let c = self.cost();
        match self {
            UnaryOp::Neg => k.apply(c, |v: T| -v),
            UnaryOp::Abs => k.apply(c, |v: T| Numeric::abs(v)),
            UnaryOp::Square => k.apply(c, |v: T| v * v),
            UnaryOp::Sign => k.apply(c, move |v: T| {
                if v > zero {
                    one
                } else if v < zero {
                    -one
                } else {
                    v
                }
            }),
            UnaryOp::Relu => k.apply(c, move |v: T| if v > zero { v } else { zero }),
            UnaryOp::Relu6 => {
                let six = T::of(6.0);
                k.apply(c, move |v: T| {
                    if v > six {
                        six
                    } else if v > zero {
                        v
                    } else {
                        zero
                    }
                })
            }
            UnaryOp::Exp => k.apply(c, |v: T| v.exp()),
            UnaryOp::Log => k.apply(c, |v: T| v.ln()),
            UnaryOp::Log1p => k.apply(c, |v: T| v.ln_1p()),
            UnaryOp::Sqrt => k.apply(c, |v: T| v.sqrt()),
            UnaryOp::Rsqrt => k.apply(c, move |v: T| one / v.sqrt()),
            UnaryOp::Reciprocal => k.apply(c, move |v: T| one / v),
            UnaryOp::Tanh => k.apply(c, |v: T| v.tanh()),
            UnaryOp::Sigmoid => k.apply(c, |v: T| v.sigmoid()),
            UnaryOp::Gelu => {
                let r = T::of(std::f64::consts::FRAC_1_SQRT_2);
                k.apply(c, move |v: T| half * v * (one + (v * r).erf()))
            }
            UnaryOp::GeluTanh => {
                let (kk, a) = (T::of((2.0 / std::f64::consts::PI).sqrt()), T::of(0.044715));
                k.apply(c, move |v: T| {
                    half * v * (one + (kk * (v + a * v * v * v)).tanh())
                })
            }
            UnaryOp::Silu => k.apply(c, |v: T| v * v.sigmoid()),
            UnaryOp::Softplus => k.apply(c, move |v: T| {
                // max(v, 0) + log1p(exp(-|v|)) never overflows.
                let m = if v > zero { v } else { zero };
                m + (-Numeric::abs(v)).exp().ln_1p()
            }),
            UnaryOp::Elu(_) => k.apply(
                c,
                move |v: T| if v > zero { v } else { p * (v.exp() - one) },
            ),
            UnaryOp::Selu => {
                let (a, s) = (T::of(SELU_ALPHA), T::of(SELU_SCALE));
                k.apply(c, move |v: T| {
                    s * if v > zero { v } else { a * (v.exp() - one) }
                })
            }
            UnaryOp::LeakyRelu(_) => k.apply(c, move |v: T| if v > zero { v } else { p * v }),
            UnaryOp::Sin => k.apply(c, |v: T| v.sin()),
            UnaryOp::Cos => k.apply(c, |v: T| v.cos()),
            UnaryOp::Erf => k.apply(c, |v: T| v.erf()),
            UnaryOp::Floor => k.apply(c, |v: T| T::of(v.to_f64().floor())),
            UnaryOp::Ceil => k.apply(c, |v: T| T::of(v.to_f64().ceil())),
            UnaryOp::Round => k.apply(c, |v: T| T::of(v.to_f64().round_ties_even())),
        }
    }

    fn run_int<T: Numeric>(self, x: &Tensor) -> Result<Tensor> {
        let c = self.cost();
        match self {
            UnaryOp::Neg => map(x, c, |v: T| v.neg()),
            UnaryOp::Abs => map(x, c, |v: T| v.abs()),
            UnaryOp::Square => map(x, c, |v: T| v * v),
            UnaryOp::Sign => map(x, c, |v: T| {
                if v > T::ZERO {
                    T::ONE
                } else if v < T::ZERO {
                    T::ONE.neg()
                } else {
                    T::ZERO
                }
            }),
            UnaryOp::Relu => map(x, c, |v: T| if v > T::ZERO { v } else { T::ZERO }),
            UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => Ok(x.clone()),
            _ => Err(Error::UnsupportedDType {
                op: self.name(),
                dtype: x.dtype(),
            }),
        }
    }
}

/// Receives an elementwise function of one argument (see [`UnaryOp::with_fn`]).
pub trait ScalarFn<T> {
    /// What the receiver makes of the function.
    type Output;
    /// Called once with the op's per-element cost and its function.
    fn apply<F: Fn(T) -> T + Send + Sync + Copy>(self, cost: usize, f: F) -> Self::Output;
}

impl Tensor {
    /// Applies an elementwise [`UnaryOp`]. Float ops on f16/bf16 compute in f32.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        self.in_compute_dtype(|x| {
            let y = if x.dtype().is_float() {
                let y = with_float!(x.dtype(), op.name(), T => op.run_float::<T>(x))?;
                if let Some(r) = Recorder::new(&[x]) {
                    if op.is_differentiable() {
                        let (x, y2) = (x.clone(), y.clone());
                        r.finish(&y, move |g, _| Ok(vec![Some(op.gradient(&x, &y2, g)?)]));
                    }
                }
                y
            } else if x.dtype() == DType::Bool {
                return Err(Error::UnsupportedDType {
                    op: op.name(),
                    dtype: DType::Bool,
                });
            } else {
                with_numeric!(x.dtype(), op.name(), T => op.run_int::<T>(x))?
            };
            crate::trace::record(
                op.name(),
                OpKind::Unary(op),
                || format!("{op:?}"),
                &[x],
                &y,
                move |x| x[0].unary(op),
            );
            Ok(y)
        })
    }
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $method:ident => $op:expr;)*) => {
        impl Tensor {
            $($(#[$doc])* pub fn $method(&self) -> Result<Tensor> { self.unary($op) })*
        }
    };
}

unary_methods! {
    /// Elementwise negation.
    neg => UnaryOp::Neg;
    /// Elementwise absolute value.
    abs => UnaryOp::Abs;
    /// Elementwise square.
    square => UnaryOp::Square;
    /// Elementwise sign (-1, 0, 1).
    sign => UnaryOp::Sign;
    /// Rectified linear unit.
    relu => UnaryOp::Relu;
    /// ReLU capped at 6.
    relu6 => UnaryOp::Relu6;
    /// Elementwise e^x.
    exp => UnaryOp::Exp;
    /// Elementwise natural logarithm.
    log => UnaryOp::Log;
    /// Elementwise ln(1 + x).
    log1p => UnaryOp::Log1p;
    /// Elementwise square root.
    sqrt => UnaryOp::Sqrt;
    /// Elementwise 1/√x.
    rsqrt => UnaryOp::Rsqrt;
    /// Elementwise 1/x.
    reciprocal => UnaryOp::Reciprocal;
    /// Elementwise hyperbolic tangent.
    tanh => UnaryOp::Tanh;
    /// Elementwise logistic sigmoid.
    sigmoid => UnaryOp::Sigmoid;
    /// GELU with the exact normal CDF (`tf.nn.gelu(approximate=False)`).
    gelu => UnaryOp::Gelu;
    /// GELU with the tanh approximation (`tf.nn.gelu(approximate=True)`).
    gelu_tanh => UnaryOp::GeluTanh;
    /// x·sigmoid(x) (`tf.nn.silu`, swish).
    silu => UnaryOp::Silu;
    /// ln(1 + e^x), computed without overflow.
    softplus => UnaryOp::Softplus;
    /// SELU with the standard constants.
    selu => UnaryOp::Selu;
    /// Elementwise sine.
    sin => UnaryOp::Sin;
    /// Elementwise cosine.
    cos => UnaryOp::Cos;
    /// Elementwise error function.
    erf => UnaryOp::Erf;
    /// Elementwise floor.
    floor => UnaryOp::Floor;
    /// Elementwise ceiling.
    ceil => UnaryOp::Ceil;
    /// Round half to even.
    round => UnaryOp::Round;
}

impl Tensor {
    /// ELU with slope `alpha` for negative inputs (Keras default 1.0).
    pub fn elu(&self, alpha: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Elu(alpha))
    }

    /// Leaky ReLU with slope `alpha` for negative inputs (TF default 0.2).
    pub fn leaky_relu(&self, alpha: f64) -> Result<Tensor> {
        self.unary(UnaryOp::LeakyRelu(alpha))
    }

    /// Alias of [`Tensor::silu`].
    pub fn swish(&self) -> Result<Tensor> {
        self.silu()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_and_int_rules() {
        let x = Tensor::from_vec(vec![-2.0f32, -0.5, 0.0, 3.0, 7.0], &[5]).unwrap();
        assert_eq!(
            x.relu6().unwrap().to_vec::<f32>().unwrap(),
            vec![0.0, 0.0, 0.0, 3.0, 6.0]
        );
        assert_eq!(
            x.sign().unwrap().to_vec::<f32>().unwrap(),
            vec![-1.0, -1.0, 0.0, 1.0, 1.0]
        );
        let l = x.leaky_relu(0.2).unwrap().to_vec::<f32>().unwrap();
        assert!((l[0] + 0.4).abs() < 1e-7);
        let i = Tensor::from_vec(vec![-3i64, 0, 4], &[3]).unwrap();
        assert_eq!(i.abs().unwrap().to_vec::<i64>().unwrap(), vec![3, 0, 4]);
        assert_eq!(i.neg().unwrap().to_vec::<i64>().unwrap(), vec![3, 0, -4]);
        let e = i.exp().unwrap_err().to_string();
        assert_eq!(e, "exp: unsupported dtype int64");
        let h = Tensor::from_vec(vec![half::f16::from_f32(1.0)], &[1])
            .unwrap()
            .exp()
            .unwrap();
        assert_eq!(h.dtype(), DType::F16);
        assert!((h.to_f64_vec()[0] - std::f64::consts::E).abs() < 2e-3);
        let r = Tensor::from_vec(vec![0.5f64, 1.5, 2.5, -0.5], &[4])
            .unwrap()
            .round()
            .unwrap();
        assert_eq!(r.to_vec::<f64>().unwrap(), vec![0.0, 2.0, 2.0, -0.0]);
    }

    #[test]
    fn strided_input_is_read_in_logical_order() {
        let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        let t = x.transpose(&[1, 0]).unwrap().neg().unwrap();
        assert_eq!(t.shape(), &[3, 2]);
        assert_eq!(
            t.to_vec::<f32>().unwrap(),
            vec![-1.0, -4.0, -2.0, -5.0, -3.0, -6.0]
        );
    }
}
