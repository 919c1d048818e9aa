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
    /// Plain elements in memory owned elsewhere (a NumPy array's buffer), read in place.
    Foreign(ForeignBuffer),
}

/// Plain elements (numbers or booleans) in memory that another runtime owns, such as a
/// NumPy array handed to `ff.constant`: tensors read it in place instead of copying it.
/// `owner` keeps the memory alive for as long as any tensor uses it. Ops never write it:
/// an op that would reuse an input's buffer for its output copies a foreign one instead.
#[derive(Clone)]
pub struct ForeignBuffer {
    dtype: DType,
    /// The first element's address (an integer, so the buffer is `Send`).
    addr: usize,
    len: usize,
    _owner: std::sync::Arc<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for ForeignBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ForeignBuffer({} x {})", self.len, self.dtype)
    }
}

impl ForeignBuffer {
    /// Wraps `len` elements of `dtype` at `ptr`, kept alive by `owner`.
    ///
    /// Refuses strings (their elements are reference-counted handles, not plain data) and
    /// addresses not aligned for `dtype`.
    ///
    /// # Safety
    /// `ptr` must point to `len` initialised elements of `dtype` that stay valid for as
    /// long as `owner` lives and that nobody writes while a tensor may read them.
    pub unsafe fn new(
        dtype: DType,
        ptr: *const u8,
        len: usize,
        owner: std::sync::Arc<dyn std::any::Any + Send + Sync>,
    ) -> crate::Result<Self> {
        if dtype == DType::String {
            return Err(crate::Error::invalid(
                "ForeignBuffer",
                "string elements cannot be borrowed",
            ));
        }
        if !(ptr as usize).is_multiple_of(dtype.size_in_bytes()) {
            return Err(crate::Error::invalid(
                "ForeignBuffer",
                format!("address {ptr:p} is not aligned for {dtype}"),
            ));
        }
        Ok(ForeignBuffer {
            dtype,
            addr: ptr as usize,
            len,
            _owner: owner,
        })
    }

    /// The elements, when `T` is the buffer's dtype.
    pub fn slice<T: crate::Stored>(&self) -> Option<&[T]> {
        // SAFETY: `new`'s contract: `len` initialised, aligned elements of this dtype,
        // alive while `_owner` (held by `self`) is.
        (T::DTYPE == self.dtype)
            .then(|| unsafe { std::slice::from_raw_parts(self.addr as *const T, self.len) })
    }

    /// An owned copy of the elements.
    pub fn to_owned_storage(&self) -> CpuStorage {
        crate::dispatch::with_stored!(self.dtype, T => {
            <T as crate::Stored>::into_storage(self.slice::<T>().map(<[T]>::to_vec).unwrap_or_default())
        })
    }
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
            CpuStorage::Foreign(_) => unreachable!("foreign buffers are matched first"),
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
            CpuStorage::Foreign(f) => f.dtype,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::Foreign(f) => f.len,
            owned => map_storage!(owned, v => v.len()),
        }
    }

    /// Whether the elements live in memory owned elsewhere ([`ForeignBuffer`]).
    pub fn is_foreign(&self) -> bool {
        matches!(self, CpuStorage::Foreign(_))
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
            Storage::Cpu(CpuStorage::Foreign(_)) => {}
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
