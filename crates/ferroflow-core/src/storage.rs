//! Owned, typed element buffers and the device they live on.

use crate::{DType, Device, TfString};
use half::{bf16, f16};

/// A CPU buffer: one typed vector per dtype.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
    /// i32 elements.
    I32(Vec<i32>),
    /// i64 elements.
    I64(Vec<i64>),
    /// bool elements.
    Bool(Vec<bool>),
    /// u8 elements.
    U8(Vec<u8>),
    /// i8 elements.
    I8(Vec<i8>),
    /// f16 elements.
    F16(Vec<f16>),
    /// bf16 elements.
    BF16(Vec<bf16>),
    /// Byte-string elements.
    String(Vec<TfString>),
}

/// Runs `$body` with `$v` bound to the typed vector inside a [`CpuStorage`].
macro_rules! map_storage {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            CpuStorage::F32($v) => $body,
            CpuStorage::F64($v) => $body,
            CpuStorage::I32($v) => $body,
            CpuStorage::I64($v) => $body,
            CpuStorage::Bool($v) => $body,
            CpuStorage::U8($v) => $body,
            CpuStorage::I8($v) => $body,
            CpuStorage::F16($v) => $body,
            CpuStorage::BF16($v) => $body,
            CpuStorage::String($v) => $body,
        }
    };
}

impl CpuStorage {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::I32(_) => DType::I32,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::Bool(_) => DType::Bool,
            CpuStorage::U8(_) => DType::U8,
            CpuStorage::I8(_) => DType::I8,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::String(_) => DType::String,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        map_storage!(self, v => v.len())
    }

    /// True when the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A zero-filled buffer of `len` elements of `dtype` (empty strings for strings).
    pub fn zeros(dtype: DType, len: usize) -> Self {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; len]),
            DType::F64 => CpuStorage::F64(vec![0.0; len]),
            DType::I32 => CpuStorage::I32(vec![0; len]),
            DType::I64 => CpuStorage::I64(vec![0; len]),
            DType::Bool => CpuStorage::Bool(vec![false; len]),
            DType::U8 => CpuStorage::U8(vec![0; len]),
            DType::I8 => CpuStorage::I8(vec![0; len]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; len]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; len]),
            DType::String => CpuStorage::String(vec![TfString::new(); len]),
        }
    }
}

/// A buffer on some device. Only the CPU exists today; `Cuda` joins behind a feature.
#[derive(Clone, Debug)]
pub enum Storage {
    /// Host memory.
    Cpu(CpuStorage),
}

impl Drop for Storage {
    /// Hands large CPU buffers back to the allocation cache for the next kernel.
    fn drop(&mut self) {
        match self {
            Storage::Cpu(s) => map_storage!(s, v => crate::alloc::recycle(std::mem::take(v))),
        }
    }
}

impl Storage {
    /// The device holding the buffer.
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
        }
    }

    /// The CPU buffer.
    pub fn cpu(&self) -> &CpuStorage {
        match self {
            Storage::Cpu(s) => s,
        }
    }
}
