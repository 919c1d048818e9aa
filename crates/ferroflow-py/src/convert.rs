//! Python values to tensors and back: NumPy arrays (every numeric dtype, bool, strings),
//! Python scalars and nested lists, ferroflow tensors and variables.

use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use crate::variable::PyVariable;
use ferroflow_core::storage::ForeignBuffer;
use ferroflow_core::{DType, Tensor};
use numpy::ndarray::{ArrayViewD, IxDyn};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString};
use std::sync::Arc;

/// Runs `$body` with `$T` bound to the Rust element type of each dtype NumPy shares with
/// ferroflow (bf16, which NumPy lacks, and strings are handled apart).
macro_rules! numpy_types {
    ($dtype:expr, $T:ident => $body:expr, $other:expr) => {
        match $dtype {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F64 => {
                type $T = f64;
                $body
            }
            DType::I32 => {
                type $T = i32;
                $body
            }
            DType::I64 => {
                type $T = i64;
                $body
            }
            DType::Bool => {
                type $T = bool;
                $body
            }
            DType::U8 => {
                type $T = u8;
                $body
            }
            DType::I8 => {
                type $T = i8;
                $body
            }
            DType::F16 => {
                type $T = half::f16;
                $body
            }
            _ => $other,
        }
    };
}

/// A dtype from its TensorFlow name (`"float32"`), a NumPy dtype or type, or a ferroflow
/// `DType` (a `str` subclass).
pub fn dtype_arg(obj: &Bound<'_, PyAny>) -> PyResult<DType> {
    let name: String = if let Ok(s) = obj.cast::<PyString>() {
        s.to_string()
    } else {
        let np = obj.py().import("numpy")?;
        np.getattr("dtype")?
            .call1((obj,))?
            .getattr("name")?
            .extract()?
    };
    let name = match name.as_str() {
        "str" | "bytes" | "object" => "string",
        n => n,
    };
    DType::from_name(name)
        .ok_or_else(|| PyTypeError::new_err(format!("ferroflow has no dtype '{name}'")))
}

/// The tensor of a C-contiguous NumPy array: it reads the array's buffer in place (the
/// tensor keeps the array alive), or copies it when the buffer is not aligned.
fn from_array(arr: &Bound<'_, PyUntypedArray>) -> PyResult<Option<Tensor>> {
    from_array_or_copy(arr, true)
}

fn from_array_or_copy(arr: &Bound<'_, PyUntypedArray>, may_copy: bool) -> PyResult<Option<Tensor>> {
    let shape = arr.shape().to_vec();
    let name: String = arr.getattr("dtype")?.getattr("name")?.extract()?;
    let Some(d) = DType::from_name(&name) else {
        return Ok(None);
    };
    numpy_types!(d, T => {
        // Not this dtype in native byte order: the caller converts it.
        let Ok(a) = arr.cast::<PyArrayDyn<T>>() else {
            return Ok(None);
        };
        let buf = if a.is_c_contiguous() {
            let owner: Arc<dyn std::any::Any + Send + Sync> = Arc::new(a.clone().into_any().unbind());
            // SAFETY: a C-contiguous array of `T` holds `len` initialised elements at
            // `data()`; `owner` holds a reference to the array, so NumPy keeps the buffer
            // (and refuses to resize it) while any tensor reads it.
            unsafe { ForeignBuffer::new(d, a.data() as *const u8, a.len(), owner) }
        } else {
            Err(ferroflow_core::Error::invalid("constant", "a strided NumPy array"))
        };
        match buf {
            Ok(buf) => Ok(Some(Tensor::from_foreign(buf, &shape).py()?)),
            // Strided, or misaligned (a view at an odd offset): a fresh copy, borrowed.
            Err(_) if may_copy => from_array_or_copy(a.call_method0("copy")?.cast::<PyUntypedArray>()?, false),
            Err(e) => Err(crate::errors::to_py(e)),
        }
    }, Ok(None))
}

/// A string tensor from a NumPy array of `str`, `bytes` or Python objects holding them.
fn strings_from_array(arr: &Bound<'_, PyAny>, shape: &[usize]) -> PyResult<Tensor> {
    let flat = arr.call_method0("ravel")?.call_method0("tolist")?;
    let list = flat.cast::<PyList>()?;
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        out.push(string_bytes(&item)?);
    }
    Tensor::from_vec(out, shape).py()
}

fn string_bytes(item: &Bound<'_, PyAny>) -> PyResult<ferroflow_core::TfString> {
    if let Ok(b) = item.cast::<PyBytes>() {
        Ok(b.as_bytes().to_vec().into())
    } else if let Ok(s) = item.cast::<PyString>() {
        Ok(s.extract::<String>()?.into_bytes().into())
    } else {
        Err(PyTypeError::new_err(format!(
            "a string tensor holds str or bytes, got {}",
            item.get_type().name()?
        )))
    }
}

/// Converts any tensor-like Python value (`tf.convert_to_tensor`). Python scalars and
/// lists become float32 / int32 as in TensorFlow; NumPy arrays keep their dtype. With
/// `dtype` the result is cast to it.
pub fn to_tensor(obj: &Bound<'_, PyAny>, dtype: Option<DType>) -> PyResult<Tensor> {
    let t = to_tensor_raw(obj, dtype)?;
    match dtype {
        Some(d) if d != t.dtype() => t.cast(d).py(),
        _ => Ok(t),
    }
}

fn to_tensor_raw(obj: &Bound<'_, PyAny>, dtype: Option<DType>) -> PyResult<Tensor> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        return Ok(t.borrow().0.clone());
    }
    if let Ok(v) = obj.cast::<PyVariable>() {
        return Ok(v.borrow().0.value());
    }
    let py = obj.py();
    let np = py.import("numpy")?;
    let is_array = obj.is_instance(&np.getattr("ndarray")?)?;
    let is_literal = !is_array
        && (obj.is_instance_of::<PyFloat>()
            || obj.is_instance_of::<PyInt>()
            || obj.is_instance_of::<PyBool>()
            || obj.is_instance_of::<PyList>()
            || obj.is_instance_of::<pyo3::types::PyTuple>());
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Ok(Tensor::scalar(string_bytes(obj)?));
    }
    // `asarray` keeps 0-d arrays 0-d (`ascontiguousarray` would make them 1-d).
    let arr = np.call_method1("asarray", (obj,))?;
    let arr = if arr
        .getattr("flags")?
        .getattr("c_contiguous")?
        .extract::<bool>()?
    {
        arr
    } else {
        np.call_method1("ascontiguousarray", (arr,))?
    };
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
    if matches!(kind.as_str(), "U" | "S" | "O") {
        return strings_from_array(&arr, &shape);
    }
    let arr = arr.cast::<PyUntypedArray>()?;
    let t = match from_array(arr)? {
        Some(t) => t,
        None => {
            // Other widths (uint16, int16, float128...): through float64 or int64.
            let wide = if kind == "f" { "float64" } else { "int64" };
            let a = arr.call_method1("astype", (wide,))?;
            from_array(a.cast::<PyUntypedArray>()?)?.ok_or_else(|| {
                PyTypeError::new_err(format!("cannot convert a NumPy array of kind '{kind}'"))
            })?
        }
    };
    // Python literals take TensorFlow's default widths unless a dtype was asked for.
    if is_literal && dtype.is_none() {
        return match t.dtype() {
            DType::F64 => t.cast(DType::F32).py(),
            DType::I64 => t.cast(DType::I32).py(),
            _ => Ok(t),
        };
    }
    Ok(t)
}

/// A NumPy array viewing `t`'s buffer (no copy), kept alive by a tensor object; read-only,
/// since tensors are immutable. Strings become an object array of `bytes`, bf16 float32.
pub fn to_numpy<'py>(py: Python<'py>, t: &Tensor, copy: bool) -> PyResult<Bound<'py, PyAny>> {
    let t = t.contiguous();
    let shape = t.shape().to_vec();
    if t.dtype() == DType::String {
        let items = t.to_vec::<ferroflow_core::TfString>().py()?;
        let list = PyList::empty(py);
        for s in &items {
            list.append(PyBytes::new(py, &s[..]))?;
        }
        let np = py.import("numpy")?;
        let kwargs = [("dtype", "O")].into_py_dict(py)?;
        let arr = np.getattr("array")?.call((list,), Some(&kwargs))?;
        return arr.call_method1("reshape", (shape,));
    }
    if t.dtype() == DType::BF16 {
        return to_numpy(py, &t.cast(DType::F32).py()?, copy);
    }
    numpy_types!(t.dtype(), T => {
        if copy {
            let v = t.to_vec::<T>().py()?;
            return Ok(numpy::PyArray1::<T>::from_vec(py, v).reshape(shape)?.into_any());
        }
        let ptr = match t.data::<T>().py()? {
            std::borrow::Cow::Borrowed(s) => s.as_ptr(),
            std::borrow::Cow::Owned(v) => {
                return Ok(numpy::PyArray1::<T>::from_vec(py, v).reshape(shape)?.into_any())
            }
        };
        let container = Bound::new(py, PyTensor(t.clone()))?;
        // SAFETY: `ptr` points into `t`'s storage (the data was borrowed, not copied), and
        // `container` holds a reference to that storage for as long as the array lives.
        // Tensors never write a buffer another handle shares, and the array is made
        // read-only below, so nothing mutates the memory while it is viewed.
        let arr = unsafe {
            let view = ArrayViewD::<T>::from_shape_ptr(IxDyn(&shape), ptr);
            PyArrayDyn::<T>::borrow_from_array(&view, container.into_any())
        };
        arr.call_method("setflags", (), Some(&[("write", false)].into_py_dict(py)?))?;
        Ok(arr.into_any())
    }, Err(PyTypeError::new_err(format!("no NumPy dtype for {}", t.dtype()))))
}

use pyo3::types::IntoPyDict;
