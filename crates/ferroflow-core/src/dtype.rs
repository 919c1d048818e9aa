//! Element types: the [`DType`] enum and the traits kernels are generic over.

use crate::storage::CpuStorage;
use half::{bf16, f16};
use std::fmt::Debug;

/// One element of a [`DType::String`] tensor: immutable bytes behind a reference count, so
/// that gathers, reshapes and batches of strings copy handles, never text.
pub type TfString = bytes::Bytes;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float, the default for parameters and activations.
    F32,
    /// 64-bit float.
    F64,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer (indices, argmax results).
    I64,
    /// Boolean (comparison results, masks).
    Bool,
    /// 8-bit unsigned integer (images).
    U8,
    /// 8-bit signed integer (quantised values).
    I8,
    /// IEEE half precision (storage; math runs in f32).
    F16,
    /// bfloat16 (storage; math runs in f32).
    BF16,
    /// Byte strings, as TensorFlow's `tf.string`: each element is an immutable,
    /// reference-counted run of bytes (text ops read them as UTF-8).
    String,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Bool | DType::U8 | DType::I8 => 1,
            // The handle each element holds (its bytes are shared and counted apart).
            DType::String => std::mem::size_of::<TfString>(),
        }
    }

    /// True for f16, bf16, f32 and f64.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// True for the signed and unsigned integer types.
    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::I64 | DType::U8 | DType::I8)
    }

    /// The dtype arithmetic runs in: f16/bf16 compute in f32, everything else in itself.
    pub fn compute_dtype(self) -> DType {
        match self {
            DType::F16 | DType::BF16 => DType::F32,
            d => d,
        }
    }

    /// The dtype with TensorFlow name `name` (the inverse of [`DType::name`]).
    pub fn from_name(name: &str) -> Option<DType> {
        [
            DType::F32,
            DType::F64,
            DType::I32,
            DType::I64,
            DType::Bool,
            DType::U8,
            DType::I8,
            DType::F16,
            DType::BF16,
            DType::String,
        ]
        .into_iter()
        .find(|d| d.name() == name)
    }

    /// The TensorFlow name of the dtype (`float32`, `int64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::String => "string",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type a tensor's buffer holds: every [`Element`] and [`TfString`]. Structural ops
/// (gather, concat, slice, reshape, pad, ...) are generic over it.
pub trait Stored: Clone + Send + Sync + Debug + 'static {
    /// The dtype tag of this type.
    const DTYPE: DType;
    /// The value a constant fill of `v` gives in this type (strings: the empty string).
    fn filled(v: f64) -> Self;
    /// Borrows the typed vector out of a storage of the same dtype.
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    /// Wraps a typed vector as storage.
    fn into_storage(v: Vec<Self>) -> CpuStorage;
    /// Moves the typed vector out of a storage of the same dtype (leaving it empty).
    fn take_vec(s: &mut CpuStorage) -> Option<Vec<Self>>;
    /// Copies the elements of the strided view `layout` of `buf` into a row-major vector
    /// (plain data takes the tiled transposing path).
    #[doc(hidden)]
    fn gather_strided(buf: &[Self], layout: &crate::layout::Layout) -> Vec<Self> {
        crate::tensor::gather_runs(buf, layout)
    }
}

/// A plain-data element type (numbers and booleans).
pub trait Element: Stored + Copy + PartialOrd + Default {
    /// Converts to f64 (booleans become 0 or 1).
    fn to_f64(self) -> f64;
    /// Converts from f64 (saturating for integers, `!= 0` for booleans).
    fn from_f64(v: f64) -> Self;
}

/// Implements [`Stored`]'s buffer access for the storage variant `$variant` holding `$t`.
macro_rules! stored {
    ($t:ty, $variant:ident, $filled:expr $(, $gather:path)?) => {
        impl Stored for $t {
            const DTYPE: DType = DType::$variant;
            fn filled(v: f64) -> Self {
                #[allow(clippy::redundant_closure_call)]
                ($filled)(v)
            }
            fn slice(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    CpuStorage::Foreign(f) => f.slice::<Self>(),
                    _ => None,
                }
            }
            fn into_storage(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(v)
            }
            fn take_vec(s: &mut CpuStorage) -> Option<Vec<Self>> {
                match s {
                    CpuStorage::$variant(v) => Some(std::mem::take(v)),
                    _ => None,
                }
            }
            $(
                fn gather_strided(buf: &[Self], layout: &crate::layout::Layout) -> Vec<Self> {
                    $gather(buf, layout)
                }
            )?
        }
    };
}

stored!(TfString, String, |_| TfString::new());

/// Element types with arithmetic (all but bool and the half floats).
pub trait Numeric:
    Element
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// The smallest value (negative infinity for floats).
    const MIN_VALUE: Self;
    /// The largest value (infinity for floats).
    const MAX_VALUE: Self;
    /// Division; `None` for an integer division by zero.
    fn checked_div(self, rhs: Self) -> Option<Self>;
    /// Remainder with the sign of the divisor (Python/TF `floormod`); `None` on zero.
    fn floor_mod(self, rhs: Self) -> Option<Self>;
    /// Negation (wrapping for integers).
    fn neg(self) -> Self;
    /// Absolute value (wrapping for integers).
    fn abs(self) -> Self;
    /// The larger of two values; NaN propagates for floats.
    fn max_of(self, rhs: Self) -> Self;
    /// The smaller of two values; NaN propagates for floats.
    fn min_of(self, rhs: Self) -> Self;
    /// Integer power or float power.
    fn pow(self, rhs: Self) -> Self;
}

macro_rules! element {
    ($t:ty, $variant:ident, $to:expr, $from:expr) => {
        stored!($t, $variant, $from, crate::tensor::gather_strided);
        impl Element for $t {
            #[inline(always)]
            fn to_f64(self) -> f64 {
                #[allow(clippy::redundant_closure_call)]
                ($to)(self)
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                #[allow(clippy::redundant_closure_call)]
                ($from)(v)
            }
        }
    };
}

element!(f32, F32, |x: f32| x as f64, |v: f64| v as f32);
element!(f64, F64, |x: f64| x, |v: f64| v);
element!(i32, I32, |x: i32| x as f64, |v: f64| v as i32);
element!(i64, I64, |x: i64| x as f64, |v: f64| v as i64);
element!(u8, U8, |x: u8| x as f64, |v: f64| v as u8);
element!(i8, I8, |x: i8| x as f64, |v: f64| v as i8);
element!(bool, Bool, |x: bool| x as u8 as f64, |v: f64| v != 0.0);
element!(f16, F16, |x: f16| x.to_f64(), f16::from_f64);
element!(bf16, BF16, |x: bf16| x.to_f64(), bf16::from_f64);

macro_rules! numeric_float {
    ($t:ty) => {
        impl Numeric for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const MIN_VALUE: Self = <$t>::NEG_INFINITY;
            const MAX_VALUE: Self = <$t>::INFINITY;
            #[inline(always)]
            fn checked_div(self, rhs: Self) -> Option<Self> {
                Some(self / rhs)
            }
            #[inline(always)]
            fn floor_mod(self, rhs: Self) -> Option<Self> {
                let r = self % rhs;
                Some(if r != 0.0 && ((r < 0.0) != (rhs < 0.0)) {
                    r + rhs
                } else {
                    r
                })
            }
            #[inline(always)]
            fn neg(self) -> Self {
                -self
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn max_of(self, rhs: Self) -> Self {
                if self.is_nan() || self > rhs {
                    self
                } else {
                    rhs
                }
            }
            #[inline(always)]
            fn min_of(self, rhs: Self) -> Self {
                if self.is_nan() || self < rhs {
                    self
                } else {
                    rhs
                }
            }
            #[inline(always)]
            fn pow(self, rhs: Self) -> Self {
                self.powf(rhs)
            }
        }
    };
}
numeric_float!(f32);
numeric_float!(f64);

macro_rules! numeric_int {
    ($t:ty) => {
        impl Numeric for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const MIN_VALUE: Self = <$t>::MIN;
            const MAX_VALUE: Self = <$t>::MAX;
            #[inline(always)]
            fn checked_div(self, rhs: Self) -> Option<Self> {
                // Truncating division like TensorFlow's integer `Div`.
                if rhs == 0 {
                    None
                } else {
                    Some(self.wrapping_div(rhs))
                }
            }
            #[inline(always)]
            fn floor_mod(self, rhs: Self) -> Option<Self> {
                if rhs == 0 {
                    return None;
                }
                let r = self.wrapping_rem(rhs);
                #[allow(unused_comparisons)]
                let fix = r != 0 && ((r < 0) != (rhs < 0));
                Some(if fix { r.wrapping_add(rhs) } else { r })
            }
            #[inline(always)]
            fn neg(self) -> Self {
                (0 as $t).wrapping_sub(self)
            }
            #[inline(always)]
            #[allow(unused_comparisons)]
            fn abs(self) -> Self {
                if self < 0 {
                    (0 as $t).wrapping_sub(self)
                } else {
                    self
                }
            }
            #[inline(always)]
            fn max_of(self, rhs: Self) -> Self {
                if self > rhs {
                    self
                } else {
                    rhs
                }
            }
            #[inline(always)]
            fn min_of(self, rhs: Self) -> Self {
                if self < rhs {
                    self
                } else {
                    rhs
                }
            }
            #[inline(always)]
            #[allow(unused_comparisons)]
            fn pow(self, rhs: Self) -> Self {
                if rhs < 0 {
                    // Integer power with a negative exponent: 1/x^n truncates to 0 unless |x| = 1.
                    return match self as i64 {
                        1 => 1,
                        -1 => {
                            if (rhs as i64) % 2 == 0 {
                                1
                            } else {
                                self
                            }
                        }
                        _ => 0,
                    };
                }
                self.wrapping_pow(rhs as u32)
            }
        }
    };
}
numeric_int!(i32);
numeric_int!(i64);
numeric_int!(u8);
numeric_int!(i8);

/// Floating-point element types (f32, f64) with the transcendental functions ops need.
///
/// The f32 implementations are branch-free polynomial approximations (within 2 ulp) that the
/// compiler vectorises; f64 uses the standard library.
pub trait Float: Numeric + std::ops::Div<Output = Self> + std::ops::Neg<Output = Self> {
    /// e^x.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// ln(1 + x), accurate near zero.
    fn ln_1p(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Logistic sigmoid 1 / (1 + e^-x).
    fn sigmoid(self) -> Self;
    /// Gauss error function.
    fn erf(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// Converts from f64.
    fn of(v: f64) -> Self;
    /// True when NaN.
    fn is_nan_value(self) -> bool;
}

impl Float for f32 {
    #[inline(always)]
    fn exp(self) -> Self {
        crate::math::exp_f32(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        crate::math::ln_f32(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        crate::math::ln_1p_f32(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        crate::math::tanh_f32(self)
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        crate::math::sigmoid_f32(self)
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erff(self)
    }
    #[inline(always)]
    fn sin(self) -> Self {
        f32::sin(self)
    }
    #[inline(always)]
    fn cos(self) -> Self {
        f32::cos(self)
    }
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn is_nan_value(self) -> bool {
        self.is_nan()
    }
}

impl Float for f64 {
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f64::ln(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        if self >= 0.0 {
            1.0 / (1.0 + (-self).exp())
        } else {
            let e = self.exp();
            e / (1.0 + e)
        }
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erf(self)
    }
    #[inline(always)]
    fn sin(self) -> Self {
        f64::sin(self)
    }
    #[inline(always)]
    fn cos(self) -> Self {
        f64::cos(self)
    }
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn is_nan_value(self) -> bool {
        self.is_nan()
    }
}
