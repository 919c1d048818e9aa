//! `ff.Variable`: mutable state that tapes watch and optimisers update.

use crate::convert::{dtype_arg, to_numpy, to_tensor};
use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use ferroflow_core::Variable;
use pyo3::prelude::*;

/// A mutable tensor (`tf.Variable`). Reading it inside a `GradientTape` is recorded, so
/// gradients with respect to it can be taken; arithmetic reads its current value.
#[pyclass(name = "Variable", module = "ferroflow", frozen)]
#[derive(Clone)]
pub struct PyVariable(pub Variable);

#[pymethods]
impl PyVariable {
    #[new]
    #[pyo3(signature = (initial_value, trainable=true, name=None, dtype=None))]
    fn py_new(
        initial_value: &Bound<'_, PyAny>,
        trainable: bool,
        name: Option<&str>,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let d = dtype.map(dtype_arg).transpose()?;
        let init = if initial_value.is_callable() {
            initial_value.call0()?
        } else {
            initial_value.clone()
        };
        let t = to_tensor(&init, d)?;
        Ok(PyVariable(Variable::with_options(
            t,
            name.unwrap_or("Variable"),
            trainable,
        )))
    }

    /// The current value, as a tensor (recorded by active tapes).
    fn value(&self) -> PyTensor {
        PyTensor(self.0.value())
    }

    /// `v.read_value()`: the same as [`value`](Self::value).
    fn read_value(&self) -> PyTensor {
        self.value()
    }

    /// Replaces the value (same shape and dtype); returns the variable.
    fn assign(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<Py<Self>> {
        let v = &slf.get().0;
        v.assign(&to_tensor(value, Some(v.dtype()))?).py()?;
        Ok(slf.clone().unbind())
    }

    /// Adds `delta` in place; returns the variable.
    fn assign_add(slf: &Bound<'_, Self>, delta: &Bound<'_, PyAny>) -> PyResult<Py<Self>> {
        let v = &slf.get().0;
        v.assign_add(&to_tensor(delta, Some(v.dtype()))?).py()?;
        Ok(slf.clone().unbind())
    }

    /// Subtracts `delta` in place; returns the variable.
    fn assign_sub(slf: &Bound<'_, Self>, delta: &Bound<'_, PyAny>) -> PyResult<Py<Self>> {
        let v = &slf.get().0;
        v.assign_sub(&to_tensor(delta, Some(v.dtype()))?).py()?;
        Ok(slf.clone().unbind())
    }

    /// A NumPy copy of the current value.
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PyTensor(self.0.read_untracked()).numpy(py)
    }

    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = copy;
        // A variable changes, so NumPy always gets a copy.
        crate::tensor::array_hook(py, &self.0.read_untracked(), dtype, true)
    }

    /// The variable's name.
    #[getter]
    fn name(&self) -> String {
        self.0.name().to_string()
    }

    /// The variable's dimensions.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::py_shape(py, self.0.shape())
    }

    /// The element type.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::py_dtype(py, self.0.dtype())
    }

    /// Whether optimisers and `trainable_variables` include it.
    #[getter]
    fn trainable(&self) -> bool {
        self.0.trainable()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let a = to_numpy(py, &self.0.read_untracked(), false)?;
        Ok(format!(
            "<ff.Variable '{}' shape={} dtype={}, numpy={}>",
            self.0.name(),
            crate::tensor::shape_repr(self.0.shape()),
            self.0.dtype(),
            a.repr()?
        ))
    }

    fn __hash__(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&self.0.id(), &mut h);
        std::hash::Hasher::finish(&h)
    }

    // Operators act on the current value (Python looks them up on the type, so each is
    // spelled out rather than found through `__getattr__`).
    fn __add__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__add__", (o,))
    }
    fn __radd__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__radd__", (o,))
    }
    fn __sub__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__sub__", (o,))
    }
    fn __rsub__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__rsub__", (o,))
    }
    fn __mul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__mul__", (o,))
    }
    fn __rmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__rmul__", (o,))
    }
    fn __truediv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__truediv__", (o,))
    }
    fn __rtruediv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__rtruediv__", (o,))
    }
    fn __floordiv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__floordiv__", (o,))
    }
    fn __mod__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__mod__", (o,))
    }
    fn __matmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__matmul__", (o,))
    }
    fn __rmatmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__rmatmul__", (o,))
    }
    fn __getitem__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__getitem__", (o,))
    }
    fn __pow__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.forward(py, "__pow__", (o,))
    }
    fn __neg__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__neg__", ())
    }
    fn __richcmp__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        op: pyo3::basic::CompareOp,
    ) -> PyResult<Py<PyAny>> {
        if let (pyo3::basic::CompareOp::Eq | pyo3::basic::CompareOp::Ne, Ok(other)) =
            (op, o.cast::<PyVariable>())
        {
            let same = other.get().0.same_as(&self.0);
            return Ok(pyo3::types::PyBool::new(
                py,
                same == matches!(op, pyo3::basic::CompareOp::Eq),
            )
            .to_owned()
            .into_any()
            .unbind());
        }
        let t = Bound::new(py, self.value())?;
        Ok(t.rich_compare(o, op)?.unbind())
    }
    fn __float__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.forward(py, "__float__", ())
    }
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.forward(py, "__len__", ())?.extract(py)
    }

    fn __getattr__(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        // Everything else (operators, numpy-like methods) acts on the current value.
        let t = Bound::new(py, self.value())?;
        Ok(t.getattr(name)?.unbind())
    }
}

impl PyVariable {
    fn forward<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) -> PyResult<Py<PyAny>> {
        let t = Bound::new(py, self.value())?;
        Ok(t.call_method1(name, args)?.unbind())
    }
}
