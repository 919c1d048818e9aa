//! `ff.GradientTape` (a context manager) and sparse gradients (`IndexedSlices`).

use crate::convert::to_tensor;
use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use crate::variable::PyVariable;
use ferroflow_core::autodiff::{Gradient, GradientTape, Source, UnconnectedGradients, VariableId};
use ferroflow_core::{Tensor, TensorId};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::cell::RefCell;
use std::collections::HashMap;

/// Rows of a gradient (`tf.IndexedSlices`): what an embedding lookup's gradient is.
#[pyclass(name = "IndexedSlices", module = "ferroflow", frozen)]
pub struct PyIndexedSlices(pub Gradient);

#[pymethods]
impl PyIndexedSlices {
    /// The row indices.
    #[getter]
    fn indices(&self) -> PyResult<PyTensor> {
        match &self.0 {
            Gradient::Sparse(s) => Ok(PyTensor(s.indices.clone())),
            Gradient::Dense(_) => Err(PyValueError::new_err("a dense gradient has no indices")),
        }
    }

    /// The rows.
    #[getter]
    fn values(&self) -> PyResult<PyTensor> {
        match &self.0 {
            Gradient::Sparse(s) => Ok(PyTensor(s.values.clone())),
            Gradient::Dense(t) => Ok(PyTensor(t.clone())),
        }
    }

    /// The shape of the dense gradient.
    #[getter]
    fn dense_shape(&self) -> Vec<usize> {
        self.0.shape().to_vec()
    }

    /// The gradient scattered into a dense tensor (`tf.convert_to_tensor(slices)`).
    fn to_dense(&self) -> PyResult<PyTensor> {
        Ok(PyTensor(self.0.to_dense().py()?))
    }

    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = copy;
        crate::tensor::array_hook(py, &self.0.to_dense().py()?, dtype, true)
    }
}

/// A gradient for Python: a tensor, or `IndexedSlices` for row gradients.
pub fn gradient_to_py(py: Python<'_>, g: Option<Gradient>) -> PyResult<Py<PyAny>> {
    Ok(match g {
        None => py.None(),
        Some(Gradient::Dense(t)) => Bound::new(py, PyTensor(t))?.into_any().unbind(),
        Some(g) => Bound::new(py, PyIndexedSlices(g))?.into_any().unbind(),
    })
}

/// A gradient from Python (`None`, a tensor-like or `IndexedSlices`).
pub fn gradient_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Option<Gradient>> {
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(s) = obj.cast::<PyIndexedSlices>() {
        return Ok(Some(s.get().0.clone()));
    }
    Ok(Some(Gradient::Dense(to_tensor(obj, None)?)))
}

/// A source of `tape.gradient`: a variable or a watched tensor.
enum AnySource {
    Tensor(Tensor),
    Variable(ferroflow_core::Variable),
}

impl Source for AnySource {
    fn tape_ids(&self, reads: &HashMap<VariableId, Vec<TensorId>>) -> Vec<TensorId> {
        match self {
            AnySource::Tensor(t) => t.tape_ids(reads),
            AnySource::Variable(v) => v.tape_ids(reads),
        }
    }
    fn like(&self) -> Tensor {
        match self {
            AnySource::Tensor(t) => t.like(),
            AnySource::Variable(v) => v.like(),
        }
    }
}

fn source(obj: &Bound<'_, PyAny>) -> PyResult<AnySource> {
    if let Ok(v) = obj.cast::<PyVariable>() {
        return Ok(AnySource::Variable(v.get().0.clone()));
    }
    if let Ok(t) = obj.cast::<PyTensor>() {
        return Ok(AnySource::Tensor(t.get().0.clone()));
    }
    Err(PyValueError::new_err(format!(
        "tape.gradient sources are variables or watched tensors, got {}",
        obj.get_type().name()?
    )))
}

/// Records operations for automatic differentiation (`tf.GradientTape`):
///
/// ```python
/// with ff.GradientTape() as tape:
///     loss = ff.reduce_sum(w * x)
/// dw = tape.gradient(loss, w)
/// ```
#[pyclass(name = "GradientTape", module = "ferroflow", unsendable)]
pub struct PyGradientTape {
    tape: RefCell<Option<GradientTape>>,
    persistent: bool,
    watch_accessed_variables: bool,
    used: std::cell::Cell<bool>,
}

#[pymethods]
impl PyGradientTape {
    #[new]
    #[pyo3(signature = (persistent=false, watch_accessed_variables=true))]
    fn py_new(persistent: bool, watch_accessed_variables: bool) -> Self {
        PyGradientTape {
            tape: RefCell::new(None),
            persistent,
            watch_accessed_variables,
            used: std::cell::Cell::new(false),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        {
            let me = slf.borrow();
            *me.tape.borrow_mut() = Some(GradientTape::with_options(
                me.persistent,
                me.watch_accessed_variables,
            ));
            me.used.set(false);
        }
        slf
    }

    fn __exit__(
        &self,
        _ty: Option<&Bound<'_, PyAny>>,
        _value: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        if let Some(t) = self.tape.borrow().as_ref() {
            t.stop();
        }
        false
    }

    /// Watches tensors (or variables) so gradients with respect to them can be taken.
    fn watch(&self, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let tape = self.tape.borrow();
        let tape = tape
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("watch() outside the tape's `with` block"))?;
        let items: Vec<Bound<'_, PyAny>> =
            if x.is_instance_of::<PyList>() || x.is_instance_of::<PyTuple>() {
                x.try_iter()?.collect::<PyResult<_>>()?
            } else {
                vec![x.clone()]
            };
        for i in items {
            match source(&i)? {
                AnySource::Tensor(t) => tape.watch(&t),
                AnySource::Variable(v) => tape.watch_variable(&v),
            }
        }
        Ok(())
    }

    /// The variables read while recording.
    fn watched_variables(&self) -> Vec<PyVariable> {
        self.tape
            .borrow()
            .as_ref()
            .map(|t| t.watched_variables().into_iter().map(PyVariable).collect())
            .unwrap_or_default()
    }

    /// Gradients of `target` (summed if not a scalar; a list of targets is summed) with
    /// respect to `sources`: one source, or a list/tuple/dict of them, answered in the same
    /// structure. `None` where a source does not affect the target, unless
    /// `unconnected_gradients="zero"`.
    #[pyo3(signature = (target, sources, output_gradients=None, unconnected_gradients="none"))]
    fn gradient(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        sources: &Bound<'_, PyAny>,
        output_gradients: Option<&Bound<'_, PyAny>>,
        unconnected_gradients: &str,
    ) -> PyResult<Py<PyAny>> {
        let tape = self.tape.borrow();
        let tape = tape
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("gradient() of a tape that never recorded"))?;
        if self.used.get() && !self.persistent {
            return Err(PyRuntimeError::new_err(
                "a non-persistent GradientTape can only be used to compute one set of gradients; \
                 use GradientTape(persistent=True)",
            ));
        }
        let target = if target.is_instance_of::<PyList>() || target.is_instance_of::<PyTuple>() {
            let parts: Vec<Tensor> = target
                .try_iter()?
                .map(|t| to_tensor(&t?, None).and_then(|t| t.sum(Vec::<isize>::new(), false).py()))
                .collect::<PyResult<_>>()?;
            let mut acc = parts
                .first()
                .cloned()
                .ok_or_else(|| PyValueError::new_err("empty list of targets"))?;
            for p in &parts[1..] {
                acc = acc.add(p).py()?;
            }
            acc
        } else {
            to_tensor(target, None)?
        };
        let unconnected = match unconnected_gradients.to_ascii_lowercase().as_str() {
            "none" => UnconnectedGradients::None,
            "zero" => UnconnectedGradients::Zero,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unconnected_gradients '{other}'"
                )))
            }
        };
        let out_grad = output_gradients
            .map(|g| to_tensor(g, Some(target.dtype())))
            .transpose()?;
        // The structure of `sources`: one, a sequence, or a dict.
        let (items, rebuild): (Vec<Bound<'_, PyAny>>, &str) =
            if let Ok(d) = sources.cast::<pyo3::types::PyDict>() {
                (d.values().iter().collect(), "dict")
            } else if sources.is_instance_of::<PyTuple>() {
                (sources.try_iter()?.collect::<PyResult<_>>()?, "tuple")
            } else if sources.is_instance_of::<PyList>() {
                (sources.try_iter()?.collect::<PyResult<_>>()?, "list")
            } else {
                (vec![sources.clone()], "one")
            };
        let srcs: Vec<AnySource> = items.iter().map(source).collect::<PyResult<_>>()?;
        let grads = tape
            .gradient_with(&target, &srcs, out_grad.as_ref(), unconnected)
            .py()?;
        self.used.set(true);
        let grads: Vec<Py<PyAny>> = grads
            .into_iter()
            .map(|g| gradient_to_py(py, g))
            .collect::<PyResult<_>>()?;
        Ok(match rebuild {
            "one" => grads.into_iter().next().unwrap_or_else(|| py.None()),
            "tuple" => PyTuple::new(py, grads)?.into_any().unbind(),
            "dict" => {
                let d = pyo3::types::PyDict::new(py);
                for (k, g) in sources
                    .cast::<pyo3::types::PyDict>()?
                    .keys()
                    .iter()
                    .zip(grads)
                {
                    d.set_item(k, g)?;
                }
                d.into_any().unbind()
            }
            _ => PyList::new(py, grads)?.into_any().unbind(),
        })
    }

    /// Stops recording inside the block (`with tape.stop_recording():`).
    fn stop_recording(&self) -> PyRecordingPause {
        PyRecordingPause(RefCell::new(None))
    }

    /// Forgets what was recorded.
    fn reset(&self) {
        if let Some(t) = self.tape.borrow().as_ref() {
            t.reset();
        }
    }
}

/// The context manager of `tape.stop_recording()`.
#[pyclass(unsendable)]
pub struct PyRecordingPause(RefCell<Option<ferroflow_core::autodiff::RecordingPause>>);

#[pymethods]
impl PyRecordingPause {
    fn __enter__(&self) {
        *self.0.borrow_mut() = Some(ferroflow_core::autodiff::pause_recording());
    }

    fn __exit__(
        &self,
        _ty: Option<&Bound<'_, PyAny>>,
        _value: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.0.borrow_mut().take();
        false
    }
}
