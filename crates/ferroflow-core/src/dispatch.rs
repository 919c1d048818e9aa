//! Macros that turn a run-time [`DType`](crate::DType) into a Rust type for generic kernels.
//!
//! The dtype-to-type table is written once ([`dtype_table!`]); each macro takes the rows it
//! accepts from it and sends every other dtype to its own fallback.

/// Hands `$callback` its arguments followed by the table of dtypes and their Rust types,
/// in three groups: `[numeric] [other plain data] [strings]`.
macro_rules! dtype_table {
    ($callback:ident!($($args:tt)*)) => {
        $crate::dispatch::$callback!(
            $($args)*;
            [F32 => f32, F64 => f64, I32 => i32, I64 => i64, U8 => u8, I8 => i8]
            [Bool => bool, F16 => half::f16, BF16 => half::bf16]
            [String => $crate::TfString]
        )
    };
}

/// One `match` arm per listed dtype binding `$T` and running `$body`; any other dtype
/// `$d` runs `$other`. (Generic code clones elements, a copy for plain data: hence the
/// lint allowance.)
macro_rules! dispatch_arms {
    ($dt:expr, $T:ident, $body:expr, $d:ident => $other:expr, $($v:ident => $ty:ty),*) => {
        match $dt {
            $(
                #[allow(clippy::clone_on_copy)]
                $crate::DType::$v => {
                    type $T = $ty;
                    $body
                }
            )*
            #[allow(unreachable_patterns)]
            $d => $other,
        }
    };
}

/// `UnsupportedDType` from the enclosing function for `op` and dtype `d`.
macro_rules! unsupported {
    ($op:expr, $d:expr) => {
        return Err($crate::Error::UnsupportedDType { op: $op, dtype: $d })
    };
}

/// Binds `$T` to the Rust type of a numeric dtype (f32, f64, i32, i64, u8, i8) and runs `$body`;
/// other dtypes return `Error::UnsupportedDType` from the enclosing function.
macro_rules! with_numeric {
    ($dt:expr, $op:expr, $T:ident => $body:expr) => {
        $crate::dispatch::dtype_table!(numeric_rows!($dt, $op, $T, $body))
    };
}

macro_rules! numeric_rows {
    ($dt:expr, $op:expr, $T:ident, $body:expr; [$($n:tt)*] [$($p:tt)*] [$($s:tt)*]) => {
        $crate::dispatch::dispatch_arms!($dt, $T, $body, d => $crate::dispatch::unsupported!($op, d), $($n)*)
    };
}

/// Binds `$T` to f32 or f64; other dtypes are an `UnsupportedDType` error.
macro_rules! with_float {
    ($dt:expr, $op:expr, $T:ident => $body:expr) => {
        $crate::dispatch::dispatch_arms!(
            $dt, $T, $body, d => $crate::dispatch::unsupported!($op, d), F32 => f32, F64 => f64
        )
    };
}

/// Binds `$T` to the Rust type of any plain-data dtype (numbers, bool, half floats) and
/// runs `$body`; strings return `Error::UnsupportedDType` from the enclosing function.
macro_rules! with_any {
    ($dt:expr, $op:expr, $T:ident => $body:expr) => {
        $crate::dispatch::dtype_table!(plain_rows!($dt, $op, $T, $body))
    };
}

macro_rules! plain_rows {
    ($dt:expr, $op:expr, $T:ident, $body:expr; [$($n:tt)*] [$($p:tt)*] [$($s:tt)*]) => {
        $crate::dispatch::dispatch_arms!(
            $dt, $T, $body, d => $crate::dispatch::unsupported!($op, d), $($n)*, $($p)*
        )
    };
}

/// Binds `$T` to the Rust type of any dtype, strings included (`T: Stored`), and runs
/// `$body`: for structural kernels that move elements without reading them.
macro_rules! with_stored {
    ($dt:expr, $T:ident => $body:expr) => {
        $crate::dispatch::dtype_table!(stored_rows!($dt, $T, $body))
    };
}

macro_rules! stored_rows {
    ($dt:expr, $T:ident, $body:expr; [$($n:tt)*] [$($p:tt)*] [$($s:tt)*]) => {
        $crate::dispatch::dispatch_arms!(
            $dt, $T, $body, d => unreachable!("every dtype has a row: {d:?}"), $($n)*, $($p)*, $($s)*
        )
    };
}

pub(crate) use {
    dispatch_arms, dtype_table, numeric_rows, plain_rows, stored_rows, unsupported, with_any,
    with_float, with_numeric, with_stored,
};
