//! The native half of `ff.function`: a Python callable over tensors, traced into a graph
//! per input signature, optimised and run as a compiled plan. The Python half
//! (`ferroflow/_function.py`) flattens arguments and results around it.

use crate::convert::to_tensor;
use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use ferroflow_core::{Error, Result, Tensor};
use ferroflow_graph::Function;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::sync::{Arc, Mutex};

type Closure = Box<dyn FnMut(&[Tensor]) -> Result<Vec<Tensor>> + Send>;

/// A traced function over flat lists of tensors.
#[pyclass(name = "TracedFunction", module = "ferroflow._native")]
pub struct PyTracedFunction {
    inner: Mutex<Function<Closure>>,
    /// The Python exception the callable raised during the last trace, re-raised as is.
    error: Arc<Mutex<Option<PyErr>>>,
}

#[pymethods]
impl PyTracedFunction {
    /// `fn` takes tensors and returns a list of tensor-likes.
    #[new]
    #[pyo3(signature = (func, name="function"))]
    fn py_new(func: Py<PyAny>, name: &str) -> Self {
        let error: Arc<Mutex<Option<PyErr>>> = Arc::default();
        let slot = error.clone();
        let closure: Closure = Box::new(move |args: &[Tensor]| {
            Python::attach(|py| {
                let call = || -> PyResult<Vec<Tensor>> {
                    let args: Vec<PyTensor> = args.iter().cloned().map(PyTensor).collect();
                    let out = func.bind(py).call1(pyo3::types::PyTuple::new(py, args)?)?;
                    let out = out.cast::<PyList>()?;
                    out.iter().map(|o| to_tensor(&o, None)).collect()
                };
                call().map_err(|e| {
                    let msg = e.to_string();
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(e);
                    }
                    Error::invalid("function", msg)
                })
            })
        });
        PyTracedFunction {
            inner: Mutex::new(ferroflow_graph::function(closure).with_name(name)),
            error,
        }
    }

    /// Runs the compiled plan for these arguments (tracing it first for a new signature),
    /// without the GIL while the plan runs.
    fn __call__(&self, py: Python<'_>, args: Vec<PyRef<'_, PyTensor>>) -> PyResult<Vec<PyTensor>> {
        let args: Vec<Tensor> = args.iter().map(|a| a.0.clone()).collect();
        let inner = &self.inner;
        let r = py.detach(|| match inner.lock() {
            Ok(mut f) => f.call(&args),
            Err(_) => Err(Error::invalid("function", "an earlier call panicked")),
        });
        if let Some(e) = self.error.lock().ok().and_then(|mut s| s.take()) {
            return Err(e);
        }
        Ok(r.py()?.into_iter().map(PyTensor).collect())
    }

    /// How many signatures have been traced.
    #[getter]
    fn tracing_count(&self) -> usize {
        self.inner.lock().map(|f| f.tracing_count()).unwrap_or(0)
    }
}
