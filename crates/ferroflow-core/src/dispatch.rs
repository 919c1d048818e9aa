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

/// Binds `$T` to the Rust type of any plain-data dtype (numbers, bool, half floats) and
/// runs `$body`; strings return `Error::UnsupportedDType` from the enclosing function.
macro_rules! with_any {
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
            $crate::DType::String => {
                return Err($crate::Error::UnsupportedDType {
                    op: $op,
                    dtype: $crate::DType::String,
                })
            }
        }
    };
}

/// Binds `$T` to the Rust type of any dtype, strings included (`T: Stored`), and runs
/// `$body`: for structural kernels that move elements without reading them. (Their generic
/// code clones elements, which is a copy for plain data: hence the lint allowance.)
macro_rules! with_stored {
    ($dt:expr, $T:ident => $body:expr) => {
        match $dt {
            #[allow(clippy::clone_on_copy)]
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            #[allow(clippy::clone_on_copy)]
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            #[allow(clippy::clone_on_copy)]
            $crate::DType::I32 => {
                type $T = i32;
                $body
            }
            #[allow(clippy::clone_on_copy)]
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            #[allow(clippy::clone_on_copy)]
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
            #[allow(clippy::clone_on_copy)]
            $crate::DType::I8 => {
                type $T = i8;
                $body
            }
            #[allow(clippy::clone_on_copy)]
            $crate::DType::Bool => {
                type $T = bool;
                $body
            }
            #[allow(clippy::clone_on_copy)]
            $crate::DType::F16 => {
                type $T = half::f16;
                $body
            }
            #[allow(clippy::clone_on_copy)]
            $crate::DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            #[allow(clippy::clone_on_copy)]
            $crate::DType::String => {
                type $T = $crate::TfString;
                $body
            }
        }
    };
}

pub(crate) use {with_any, with_float, with_numeric, with_stored};
