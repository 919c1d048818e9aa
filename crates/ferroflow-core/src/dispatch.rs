//! Macros that turn a run-time [`DType`](crate::DType) into a Rust type for generic kernels.

/// Binds `$T` to the Rust type of a numeric dtype (f32, f64, i32, i64, u8, i8) and runs `$body`;
/// other dtypes return `Error::UnsupportedDType` from the enclosing function.
macro_rules! with_numeric {
    ($dt:expr, $op:expr, $T:ident => $body:expr) => {
        match $dt {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::DType::I8 => {
                type $T = i8;
                $body
            }
            d => return Err($crate::Error::UnsupportedDType { op: $op, dtype: d }),
        }
    };
}

/// Binds `$T` to f32 or f64; other dtypes are an `UnsupportedDType` error.
macro_rules! with_float {
    ($dt:expr, $op:expr, $T:ident => $body:expr) => {
        match $dt {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            d => return Err($crate::Error::UnsupportedDType { op: $op, dtype: d }),
        }
    };
}

/// Binds `$T` to the Rust type of any dtype and runs `$body`.
macro_rules! with_any {
    ($dt:expr, $T:ident => $body:expr) => {
        match $dt {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::DType::I8 => {
                type $T = i8;
                $body
            }
            $crate::DType::Bool => {
                type $T = bool;
                $body
            }
            $crate::DType::F16 => {
                type $T = half::f16;
                $body
            }
            $crate::DType::BF16 => {
                type $T = half::bf16;
                $body
            }
        }
    };
}

pub(crate) use {with_any, with_float, with_numeric};
