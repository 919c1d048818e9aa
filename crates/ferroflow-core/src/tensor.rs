//! The [`Tensor`] handle: shared storage plus a layout.

use crate::dispatch::{with_any, with_stored};
use crate::layout::{collapse, for_each_run, Layout};
use crate::shape::numel;
use crate::storage::{CpuStorage, Storage};
use crate::transpose_copy::transpose_into;
use crate::{DType, Device, Element, Error, Result, Stored};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A unique identifier of a tensor value (used by tapes and graphs to track values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

struct TensorInner {
    id: TensorId,
    storage: Arc<Storage>,
    layout: Layout,
    dtype: DType,
}

/// An immutable n-dimensional array.
///
/// Cloning is cheap (a reference count). Views such as [`Tensor::transpose`],
/// [`Tensor::broadcast_to`] or [`Tensor::slice`] share the buffer and only change the layout.
///
/// ```
/// use ferroflow_core::Tensor;
/// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
/// let b = a.add(&Tensor::scalar(1.0f32))?;
/// assert_eq!(b.to_vec::<f32>()?, vec![2.0, 3.0, 4.0, 5.0]);
/// # Ok::<(), ferroflow_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Tensor(Arc<TensorInner>);

impl Tensor {
    pub(crate) fn from_parts(storage: Arc<Storage>, layout: Layout) -> Tensor {
        let dtype = storage.cpu().dtype();
        Tensor(Arc::new(TensorInner {
            id: TensorId::fresh(),
            storage,
            layout,
            dtype,
        }))
    }

    /// A tensor that owns `storage`, laid out row-major as `shape` (sizes must agree).
    pub(crate) fn from_storage(storage: CpuStorage, shape: &[usize]) -> Tensor {
        debug_assert_eq!(storage.len(), numel(shape));
        Tensor::from_parts(Arc::new(Storage::Cpu(storage)), Layout::contiguous(shape))
    }

    /// A view of the same buffer with another layout.
    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor::from_parts(self.0.storage.clone(), layout)
    }

    /// A tensor reading `buffer` in place, row-major as `shape` (sizes must agree).
    pub fn from_foreign(buffer: crate::storage::ForeignBuffer, shape: &[usize]) -> Result<Tensor> {
        let storage = CpuStorage::Foreign(buffer);
        if storage.len() != numel(shape) {
            return Err(Error::invalid(
                "from_foreign",
                format!("{} elements for shape {shape:?}", storage.len()),
            ));
        }
        Ok(Tensor::from_storage(storage, shape))
    }

    /// Builds a tensor from row-major data; `data.len()` must equal the product of `shape`.
    pub fn from_vec<T: Stored>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        if data.len() != numel(shape) {
            return Err(Error::invalid(
                "from_vec",
                format!(
                    "{} values cannot have shape {shape:?} ({} elements)",
                    data.len(),
                    numel(shape)
                ),
            ));
        }
        Ok(Tensor::from_storage(T::into_storage(data), shape))
    }

    /// Builds a tensor by copying a slice (into a cached buffer when a large one is free,
    /// so a copy made every step does not fault in fresh pages every step).
    pub fn from_slice<T: Stored>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        let mut v = crate::alloc::with_capacity(data.len());
        v.extend_from_slice(data);
        Tensor::from_vec(v, shape)
    }

    /// A rank-0 tensor.
    pub fn scalar<T: Stored>(value: T) -> Tensor {
        Tensor::from_storage(T::into_storage(vec![value]), &[])
    }

    /// The identity of this tensor value.
    pub fn id(&self) -> TensorId {
        self.0.id
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        self.0.layout.shape()
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// The device holding the buffer.
    pub fn device(&self) -> Device {
        self.0.storage.device()
    }

    /// The layout (shape, strides, offset) of this view.
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    /// True when this view is row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }

    /// True when both handles view the same buffer.
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    pub(crate) fn cpu_storage(&self) -> &CpuStorage {
        self.0.storage.cpu()
    }

    /// The whole typed buffer (apply [`Tensor::layout`] to read it).
    pub(crate) fn buffer<T: Stored>(&self) -> Result<&[T]> {
        T::slice(self.cpu_storage()).ok_or(Error::DTypeMismatch {
            op: "buffer",
            lhs: self.dtype(),
            rhs: T::DTYPE,
        })
    }

    /// The elements in row-major order without copying when the tensor is contiguous
    /// (`T` must match the dtype). For fused kernels outside this crate.
    pub fn data<T: Stored>(&self) -> Result<Cow<'_, [T]>> {
        self.contiguous_data()
    }

    /// The elements in row-major order: borrowed when contiguous, gathered otherwise.
    pub(crate) fn contiguous_data<T: Stored>(&self) -> Result<Cow<'_, [T]>> {
        let buf = self.buffer::<T>()?;
        let layout = self.layout();
        if layout.is_contiguous() {
            let start = layout.offset();
            return Ok(Cow::Borrowed(&buf[start..start + layout.numel()]));
        }
        Ok(Cow::Owned(T::gather_strided(buf, layout)))
    }

    /// A contiguous tensor with the same values (this tensor itself when already contiguous
    /// and starting at offset 0).
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous()
            && self.layout().offset() == 0
            && self.cpu_storage().len() == self.numel()
        {
            return self.clone();
        }
        let storage = with_stored!(self.dtype(), T => {
            let data = self.contiguous_data::<T>().map(|c| c.into_owned()).unwrap_or_default();
            T::into_storage(data)
        });
        let out = Tensor::from_storage(storage, self.shape());
        if let Some(r) = crate::autodiff::record::Recorder::new(&[self]) {
            r.finish(&out, |g, _| Ok(vec![Some(g.clone())]));
        }
        crate::trace::record(
            "contiguous",
            crate::trace::OpKind::Identity,
            String::new,
            &[self],
            &out,
            |t| Ok(t[0].contiguous()),
        );
        out
    }

    /// The buffer itself when this handle is its only owner and it is laid out row-major
    /// from its start (so an op may write its output over it); the tensor back otherwise.
    pub fn try_into_vec<T: Stored>(self) -> std::result::Result<Vec<T>, Tensor> {
        let whole = T::DTYPE == self.dtype()
            && !self.cpu_storage().is_foreign()
            && self.is_contiguous()
            && self.layout().offset() == 0
            && self.cpu_storage().len() == self.numel();
        if !whole {
            return Err(self);
        }
        let inner = Arc::try_unwrap(self.0).map_err(Tensor)?;
        match Arc::try_unwrap(inner.storage) {
            Ok(mut storage) => {
                let Storage::Cpu(cpu) = &mut storage;
                Ok(T::take_vec(cpu).unwrap_or_default())
            }
            Err(storage) => Err(Tensor(Arc::new(TensorInner { storage, ..inner }))),
        }
    }

    /// Copies the elements out in row-major order; `T` must match the dtype.
    pub fn to_vec<T: Stored>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "to_vec",
                lhs: self.dtype(),
                rhs: T::DTYPE,
            });
        }
        Ok(self.contiguous_data::<T>()?.into_owned())
    }

    /// Copies the elements out as f64, whatever the dtype (strings, which hold no number,
    /// give NaN: parse them with [`Tensor::string_to_number`]).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let numbers = || -> Result<Vec<f64>> {
            Ok(with_any!(self.dtype(), "to_f64_vec", T => {
                self.contiguous_data::<T>()?.iter().map(|v| v.to_f64()).collect()
            }))
        };
        numbers().unwrap_or_else(|_| vec![f64::NAN; self.numel()])
    }

    /// The single value of a one-element tensor.
    pub fn to_scalar<T: Stored>(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "to_scalar",
                format!(
                    "tensor of shape {:?} has {} elements, not 1",
                    self.shape(),
                    self.numel()
                ),
            ));
        }
        Ok(self.to_vec::<T>()?.swap_remove(0))
    }
}

/// Copies the elements of a strided view of plain data into a new row-major vector.
pub(crate) fn gather_strided<T: Copy + Send + Sync>(buf: &[T], layout: &Layout) -> Vec<T> {
    let (shape, [strides]) = collapse(layout.shape(), [layout.strides()]);
    let nd = shape.len();
    if nd >= 2 && strides[nd - 2] == 1 && strides[nd - 1] != 1 && layout.numel() >= 256 {
        return gather_transposed(buf, layout.offset(), &shape, &strides);
    }
    gather_runs(buf, layout)
}

/// Copies the elements of a strided view into a new row-major vector, run by run (any
/// element type: strings clone their handles).
pub(crate) fn gather_runs<T: Clone>(buf: &[T], layout: &Layout) -> Vec<T> {
    let (shape, [strides]) = collapse(layout.shape(), [layout.strides()]);
    let n = layout.numel();
    let mut out = crate::alloc::with_capacity(n);
    let inner = strides.last().copied().unwrap_or(1);
    for_each_run(
        &shape,
        std::array::from_ref(&strides),
        [layout.offset()],
        0,
        n,
        |[o], _, len| {
            if inner == 1 {
                out.extend_from_slice(&buf[o..o + len]);
            } else {
                out.extend((0..len).map(|i| buf[o + i * inner].clone()));
            }
        },
    );
    out
}

/// [`gather_strided`] for a view whose last two axes are transposed (unit stride on the
/// second-to-last): each `rows × cols` plane is copied in cache-sized tiles.
fn gather_transposed<T: Copy + Send + Sync>(
    buf: &[T],
    offset: usize,
    shape: &[usize],
    strides: &[usize],
) -> Vec<T> {
    let nd = shape.len();
    let (rows, cols) = (shape[nd - 2], shape[nd - 1]);
    let plane = rows * cols;
    let n = plane * numel(&shape[..nd - 2]);
    let mut out: Vec<T> = crate::alloc::with_capacity(n);
    let dst = &mut out.spare_capacity_mut()[..n];
    let mut planes = dst.chunks_mut(plane);
    let outer = &shape[..nd - 2];
    let outer_strides = strides[..nd - 2].to_vec();
    for_each_run(
        outer,
        std::array::from_ref(&outer_strides),
        [offset],
        0,
        numel(outer),
        |[o], _, len| {
            let step = outer_strides.last().copied().unwrap_or(0);
            for p in 0..len {
                let d = planes
                    .next()
                    .expect("one destination plane per source plane");
                transpose_into(buf, o + p * step, rows, cols, strides[nd - 1], d);
            }
        },
    );
    // SAFETY: the planes cover `out[..n]` and `transpose_into` wrote each of their elements.
    unsafe { out.set_len(n) };
    out
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Tensor {
    /// Prints like TensorFlow: `tf.Tensor([[1. 2.] [3. 4.]], shape=(2, 2), dtype=float32)`,
    /// eliding the middle of long dimensions.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values: Vec<String> = match self.contiguous_data::<crate::TfString>() {
            Ok(strings) => strings
                .iter()
                .map(|s| crate::strings::bytes_repr(s))
                .collect(),
            Err(_) => self
                .to_f64_vec()
                .into_iter()
                .map(|v| format_value(v, self.dtype()))
                .collect(),
        };
        write!(f, "Tensor(")?;
        write_nested(f, self.shape(), &values, 0)?;
        let dims: Vec<String> = self.shape().iter().map(|d| d.to_string()).collect();
        let comma = if dims.len() == 1 { "," } else { "" };
        write!(
            f,
            ", shape=({}{comma}), dtype={})",
            dims.join(", "),
            self.dtype()
        )
    }
}

fn format_value(v: f64, dtype: DType) -> String {
    match dtype {
        DType::Bool => (if v != 0.0 { "True" } else { "False" }).to_string(),
        d if d.is_float() => {
            if v.fract() == 0.0 && v.abs() < 1e16 {
                format!("{v:.0}.")
            } else {
                format!("{v:.6}").trim_end_matches('0').to_string()
            }
        }
        _ => format!("{v}"),
    }
}

fn write_nested(
    f: &mut std::fmt::Formatter<'_>,
    shape: &[usize],
    values: &[String],
    start: usize,
) -> std::fmt::Result {
    const EDGE: usize = 3;
    let Some((&n, rest)) = shape.split_first() else {
        return write!(f, "{}", values.get(start).map(String::as_str).unwrap_or(""));
    };
    let step = numel(rest);
    write!(f, "[")?;
    for i in 0..n {
        if n > 2 * EDGE + 1 && i == EDGE {
            write!(f, "... ")?;
        }
        if n > 2 * EDGE + 1 && i >= EDGE && i < n - EDGE {
            continue;
        }
        write_nested(f, rest, values, start + i * step)?;
        if i + 1 < n {
            write!(f, " ")?;
        }
    }
    write!(f, "]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_checks_sizes() {
        let t = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], &[2, 3]).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.dtype(), DType::I32);
        let e = Tensor::from_vec(vec![1.0f32; 5], &[2, 3]).unwrap_err();
        assert!(e.to_string().contains("from_vec"), "{e}");
        assert!(t.to_vec::<f32>().is_err());
        assert_eq!(Tensor::scalar(3.5f64).to_scalar::<f64>().unwrap(), 3.5);
    }

    #[test]
    fn display_like_tensorflow() {
        let t = Tensor::from_vec(vec![1.0f32, 2.5, 3.0, 4.0], &[2, 2]).unwrap();
        assert_eq!(
            t.to_string(),
            "Tensor([[1. 2.5] [3. 4.]], shape=(2, 2), dtype=float32)"
        );
        let v = Tensor::from_vec(vec![true, false], &[2]).unwrap();
        assert_eq!(
            v.to_string(),
            "Tensor([True False], shape=(2,), dtype=bool)"
        );
    }
}
