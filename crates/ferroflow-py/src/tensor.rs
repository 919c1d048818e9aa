//! `ff.Tensor`: an immutable ferroflow tensor with NumPy interop, Python operators
//! (broadcasting, TensorFlow's dtype rules) and indexing.

use crate::convert::{to_numpy, to_tensor};
use crate::errors::IntoPy;
use ferroflow_core::ops::slice::SliceArg;
use ferroflow_core::{BinaryOp, CmpOp, DType, Tensor, UnaryOp};
use pyo3::basic::CompareOp;
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyEllipsis, PyInt, PySlice, PyTuple};

/// An immutable n-dimensional array (`tf.Tensor`).
#[pyclass(name = "Tensor", module = "ferroflow", frozen)]
#[derive(Clone)]
pub struct PyTensor(pub Tensor);

/// The other operand of an operator: tensors as they are, Python values and arrays in
/// the tensor's dtype (as TensorFlow converts literals).
fn operand(t: &Tensor, other: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    if let Ok(o) = other.cast::<PyTensor>() {
        return Ok(o.get().0.clone());
    }
    to_tensor(other, Some(t.dtype()))
}

fn binary(a: &Tensor, op: BinaryOp, b: &Tensor) -> PyResult<PyTensor> {
    Ok(PyTensor(a.binary(op, b).py()?))
}

/// One index of `t[...]`.
fn slice_arg(k: &Bound<'_, PyAny>) -> PyResult<SliceArg> {
    if k.is_none() {
        return Ok(SliceArg::NewAxis);
    }
    if k.is_instance_of::<PyEllipsis>() {
        return Ok(SliceArg::Ellipsis);
    }
    if let Ok(s) = k.cast::<PySlice>() {
        let get = |name: &str| -> PyResult<Option<isize>> { s.getattr(name)?.extract() };
        let step = get("step")?.unwrap_or(1);
        if step == 0 {
            return Err(PyValueError::new_err("slice step cannot be zero"));
        }
        return Ok(SliceArg::Range(get("start")?, get("stop")?, step));
    }
    if k.is_instance_of::<PyInt>() || k.hasattr("__index__")? {
        return Ok(SliceArg::Index(k.call_method0("__index__")?.extract()?));
    }
    Err(PyTypeError::new_err(format!(
        "tensor indices are ints, slices, None or ..., got {}",
        k.get_type().name()?
    )))
}

/// The indices of `t[key]`.
pub fn slice_args(key: &Bound<'_, PyAny>) -> PyResult<Vec<SliceArg>> {
    match key.cast::<PyTuple>() {
        Ok(t) => t.iter().map(|k| slice_arg(&k)).collect(),
        Err(_) => Ok(vec![slice_arg(key)?]),
    }
}

/// `(2, 3)` for a shape.
pub fn shape_repr(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[pymethods]
impl PyTensor {
    /// `tf.Tensor(value, dtype=None)`: the same as `ff.constant`.
    #[new]
    #[pyo3(signature = (value, dtype=None))]
    fn py_new(value: &Bound<'_, PyAny>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let d = dtype.map(crate::convert::dtype_arg).transpose()?;
        Ok(PyTensor(to_tensor(value, d)?))
    }

    /// The dimensions, as a tuple.
    #[getter(shape)]
    fn shape_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::py_shape(py, self.0.shape())
    }

    /// The element type, by its TensorFlow name (`ff.float32 == "float32"`).
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::py_dtype(py, self.0.dtype())
    }

    /// The number of dimensions.
    #[getter]
    fn ndim(&self) -> usize {
        self.0.rank()
    }

    /// The element count.
    #[getter]
    fn size(&self) -> usize {
        self.0.numel()
    }

    /// The device holding the buffer.
    #[getter]
    fn device(&self) -> String {
        format!("{:?}", self.0.device())
    }

    /// A writable NumPy copy (`t.numpy()`); scalars come back as NumPy scalars.
    pub(crate) fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let a = to_numpy(py, &self.0, true)?;
        if self.0.rank() == 0 {
            return a.call_method1("__getitem__", (PyTuple::empty(py),));
        }
        Ok(a)
    }

    /// NumPy's hook: a read-only view of the buffer, no copy (`np.asarray(t)`).
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        array_hook(py, &self.0, dtype, copy.unwrap_or(false))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let a = to_numpy(py, &self.0, false)?;
        let body: String = a.repr()?.extract()?;
        Ok(format!(
            "<ff.Tensor: shape={}, dtype={}, numpy={}>",
            shape_repr(self.0.shape()),
            self.0.dtype(),
            body
        ))
    }

    fn __str__(&self, py: Python<'_>) -> PyResult<String> {
        let a = to_numpy(py, &self.0, false)?;
        Ok(format!(
            "ff.Tensor({}, shape={}, dtype={})",
            a.str()?,
            shape_repr(self.0.shape()),
            self.0.dtype()
        ))
    }

    fn __len__(&self) -> PyResult<usize> {
        self.0
            .shape()
            .first()
            .copied()
            .ok_or_else(|| PyTypeError::new_err("len() of a scalar tensor"))
    }

    fn __float__(&self) -> PyResult<f64> {
        scalar_value(&self.0)
    }

    fn __int__(&self) -> PyResult<i64> {
        Ok(scalar_value(&self.0)? as i64)
    }

    fn __index__(&self) -> PyResult<i64> {
        if self.0.dtype().is_float() || matches!(self.0.dtype(), DType::Bool | DType::String) {
            return Err(PyTypeError::new_err(
                "only integer tensors can be used as an index",
            ));
        }
        Ok(scalar_value(&self.0)? as i64)
    }

    fn __bool__(&self) -> PyResult<bool> {
        Ok(scalar_value(&self.0)? != 0.0)
    }

    fn __hash__(slf: &Bound<'_, Self>) -> isize {
        slf.as_ptr() as isize
    }

    fn __getitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let args = slice_args(key)?;
        self.0
            .strided_slice(&args)
            .map(PyTensor)
            .map_err(|e| PyIndexError::new_err(e.to_string()))
    }

    fn __iter__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let t = &slf.get().0;
        if t.rank() == 0 {
            return Err(PyTypeError::new_err("iterating over a scalar tensor"));
        }
        let rows: Vec<PyTensor> = t.unstack(0).py()?.into_iter().map(PyTensor).collect();
        let list = pyo3::types::PyList::new(slf.py(), rows)?;
        Ok(list.call_method0("__iter__")?.unbind())
    }

    fn __neg__(&self) -> PyResult<PyTensor> {
        Ok(PyTensor(self.0.unary(UnaryOp::Neg).py()?))
    }

    fn __abs__(&self) -> PyResult<PyTensor> {
        Ok(PyTensor(self.0.unary(UnaryOp::Abs).py()?))
    }

    fn __invert__(&self) -> PyResult<PyTensor> {
        Ok(PyTensor(self.0.logical_not().py()?))
    }

    fn __add__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary(&self.0, BinaryOp::Add, &operand(&self.0, o)?)
    }
    fn __radd__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary(&operand(&self.0, o)?, BinaryOp::Add, &self.0)
    }
    fn __sub__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary(&self.0, BinaryOp::Sub, &operand(&self.0, o)?)
    }
    fn __rsub__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary(&operand(&self.0, o)?, BinaryOp::Sub, &self.0)
    }
    fn __mul__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary(&self.0, BinaryOp::Mul, &operand(&self.0, o)?)
    }
    fn __rmul__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary(&operand(&self.0, o)?, BinaryOp::Mul, &self.0)
    }
    fn __truediv__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary(&self.0, BinaryOp::Div, &operand(&self.0, o)?)
    }
    fn __rtruediv__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary(&operand(&self.0, o)?, BinaryOp::Div, &self.0)
    }
    fn __floordiv__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary(&self.0, BinaryOp::FloorDiv, &operand(&self.0, o)?)
    }
    fn __rfloordiv__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary(&operand(&self.0, o)?, BinaryOp::FloorDiv, &self.0)
    }
    fn __mod__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary(&self.0, BinaryOp::FloorMod, &operand(&self.0, o)?)
    }
    fn __rmod__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary(&operand(&self.0, o)?, BinaryOp::FloorMod, &self.0)
    }
    fn __pow__(
        &self,
        o: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        binary(&self.0, BinaryOp::Pow, &operand(&self.0, o)?)
    }
    fn __rpow__(
        &self,
        o: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        binary(&operand(&self.0, o)?, BinaryOp::Pow, &self.0)
    }
    fn __matmul__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        Ok(PyTensor(self.0.matmul(&operand(&self.0, o)?).py()?))
    }
    fn __rmatmul__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        Ok(PyTensor(operand(&self.0, o)?.matmul(&self.0).py()?))
    }
    fn __and__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        Ok(PyTensor(self.0.logical_and(&operand(&self.0, o)?).py()?))
    }
    fn __or__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        Ok(PyTensor(self.0.logical_or(&operand(&self.0, o)?).py()?))
    }
    fn __xor__(&self, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        Ok(PyTensor(self.0.logical_xor(&operand(&self.0, o)?).py()?))
    }

    /// Elementwise comparisons, as in TensorFlow 2 (`==` included).
    fn __richcmp__(&self, o: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<PyTensor> {
        let b = operand(&self.0, o)?;
        let op = match op {
            CompareOp::Lt => CmpOp::Less,
            CompareOp::Le => CmpOp::LessEqual,
            CompareOp::Eq => CmpOp::Equal,
            CompareOp::Ne => CmpOp::NotEqual,
            CompareOp::Gt => CmpOp::Greater,
            CompareOp::Ge => CmpOp::GreaterEqual,
        };
        Ok(PyTensor(self.0.compare(op, &b).py()?))
    }

    /// `t.T`: the transpose (axes reversed).
    #[getter(T)]
    fn transposed(&self) -> PyResult<PyTensor> {
        let perm: Vec<usize> = (0..self.0.rank()).rev().collect();
        Ok(PyTensor(self.0.transpose(&perm).py()?))
    }

    /// `t.get_shape()` (TF 1 spelling of `t.shape`).
    fn get_shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.shape_tuple(py)
    }
}

/// The value of a one-element tensor as a float.
fn scalar_value(t: &Tensor) -> PyResult<f64> {
    if t.numel() != 1 {
        return Err(PyValueError::new_err(format!(
            "only one-element tensors convert to Python scalars, got shape {}",
            shape_repr(t.shape())
        )));
    }
    if t.dtype() == DType::String {
        return Err(PyTypeError::new_err("a string tensor is not a number"));
    }
    Ok(t.to_f64_vec()[0])
}

/// NumPy's `__array__(dtype, copy)` for a tensor value.
pub fn array_hook<'py>(
    py: Python<'py>,
    t: &Tensor,
    dtype: Option<&Bound<'py, PyAny>>,
    copy: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let a = to_numpy(py, t, copy)?;
    match dtype {
        Some(d) if !d.is_none() => a.call_method1("astype", (d,)),
        _ => Ok(a),
    }
}
