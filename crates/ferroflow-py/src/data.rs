//! `ferroflow.data.Dataset`: ferroflow's input pipelines with Python elements (nested
//! tuples and dicts of tensors) and Python functions in `map` and `filter`.

use crate::convert::to_tensor;
use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use ferroflow_core::{Error, Result};
use ferroflow_data::{Cardinality, Dataset, Element, ElementIter, AUTOTUNE};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A dataset (`tf.data.Dataset`).
#[pyclass(name = "Dataset", module = "ferroflow._native", frozen)]
#[derive(Clone)]
pub struct PyDataset(pub Dataset);

/// An element from Python: a tensor-like, or a tuple/list/dict of elements.
pub fn element_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Element> {
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = BTreeMap::new();
        for (k, v) in d.iter() {
            m.insert(k.extract::<String>()?, element_from_py(&v)?);
        }
        return Ok(Element::Map(m));
    }
    if obj.is_instance_of::<PyTuple>() {
        return Ok(Element::Tuple(
            obj.try_iter()?
                .map(|o| element_from_py(&o?))
                .collect::<PyResult<_>>()?,
        ));
    }
    Ok(Element::Tensor(to_tensor(obj, None)?))
}

/// An element for Python: tensors, tuples and dicts.
pub fn element_to_py(py: Python<'_>, e: &Element) -> PyResult<Py<PyAny>> {
    Ok(match e {
        Element::Tensor(t) => Bound::new(py, PyTensor(t.clone()))?.into_any().unbind(),
        Element::Tuple(v) => {
            let items: Vec<Py<PyAny>> = v
                .iter()
                .map(|e| element_to_py(py, e))
                .collect::<PyResult<_>>()?;
            PyTuple::new(py, items)?.into_any().unbind()
        }
        Element::Map(m) => {
            let d = PyDict::new(py);
            for (k, v) in m {
                d.set_item(k, element_to_py(py, v)?)?;
            }
            d.into_any().unbind()
        }
    })
}

/// Calls a Python function on an element as `tf.data` does: a tuple's parts are its
/// positional arguments.
fn call_on<'py>(py: Python<'py>, f: &Py<PyAny>, e: &Element) -> PyResult<Bound<'py, PyAny>> {
    let arg = element_to_py(py, e)?;
    let arg = arg.bind(py);
    match arg.cast::<PyTuple>() {
        Ok(t) => f.bind(py).call1(t.clone()),
        Err(_) => f.bind(py).call1((arg,)),
    }
}

fn py_error(e: PyErr) -> Error {
    Error::invalid("Dataset.map", e.to_string())
}

fn parallelism(n: Option<i64>) -> usize {
    match n {
        None => 1,
        Some(n) if n < 0 => AUTOTUNE,
        Some(n) => n.max(1) as usize,
    }
}

#[pymethods]
impl PyDataset {
    /// `Dataset.from_tensor_slices(x)`: the rows of a tensor, or of each part of a tuple
    /// or dict.
    #[staticmethod]
    fn from_tensor_slices(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyDataset(
            Dataset::from_tensor_slices(element_from_py(data)?).py()?,
        ))
    }

    /// `Dataset.from_tensors(x)`: one element.
    #[staticmethod]
    fn from_tensors(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyDataset(Dataset::from_tensors(element_from_py(data)?)))
    }

    /// `Dataset.range(start, stop, step)`.
    #[staticmethod]
    fn range(start: i64, stop: i64, step: i64) -> PyResult<Self> {
        Ok(PyDataset(Dataset::range(start, stop, step).py()?))
    }

    /// `Dataset.zip(datasets)`.
    #[staticmethod]
    fn zip(datasets: Vec<PyRef<'_, PyDataset>>) -> PyResult<Self> {
        let ds: Vec<Dataset> = datasets.iter().map(|d| d.0.clone()).collect();
        Ok(PyDataset(Dataset::zip(&ds).py()?))
    }

    /// Lines of text files (`tf.data.TextLineDataset`).
    #[staticmethod]
    fn text_lines(paths: Vec<String>) -> Self {
        PyDataset(ferroflow_data::text_line_dataset(&paths))
    }

    /// Records of TFRecord files (`tf.data.TFRecordDataset`).
    #[staticmethod]
    fn tfrecords(paths: Vec<String>) -> Self {
        PyDataset(ferroflow_data::tfrecord_dataset(&paths))
    }

    /// `map(f, num_parallel_calls=None, deterministic=None)`; `num_parallel_calls=-1` is
    /// AUTOTUNE. `f` is Python, so its calls take turns holding the GIL.
    #[pyo3(signature = (f, num_parallel_calls=None, deterministic=None))]
    fn map(
        &self,
        f: Py<PyAny>,
        num_parallel_calls: Option<i64>,
        deterministic: Option<bool>,
    ) -> Self {
        let mapped = move |e: Element| -> Result<Element> {
            Python::attach(|py| {
                let out = call_on(py, &f, &e).map_err(py_error)?;
                element_from_py(&out).map_err(py_error)
            })
        };
        PyDataset(self.0.map_parallel(
            mapped,
            parallelism(num_parallel_calls),
            deterministic.unwrap_or(true),
        ))
    }

    /// `filter(predicate)`.
    fn filter(&self, predicate: Py<PyAny>) -> Self {
        PyDataset(self.0.filter(move |e: &Element| {
            Python::attach(|py| {
                let out = call_on(py, &predicate, e).map_err(py_error)?;
                out.is_truthy().map_err(py_error)
            })
        }))
    }

    /// `shuffle(buffer_size, seed=None, reshuffle_each_iteration=True)`.
    #[pyo3(signature = (buffer_size, seed=None, reshuffle_each_iteration=true))]
    fn shuffle(
        &self,
        buffer_size: usize,
        seed: Option<u64>,
        reshuffle_each_iteration: bool,
    ) -> Self {
        PyDataset(self.0.shuffle(buffer_size, seed, reshuffle_each_iteration))
    }

    /// `batch(batch_size, drop_remainder=False)`.
    #[pyo3(signature = (batch_size, drop_remainder=false))]
    fn batch(&self, batch_size: usize, drop_remainder: bool) -> PyResult<Self> {
        Ok(PyDataset(self.0.batch(batch_size, drop_remainder).py()?))
    }

    /// `unbatch()`.
    fn unbatch(&self) -> Self {
        PyDataset(self.0.unbatch())
    }

    /// `prefetch(buffer_size)`; AUTOTUNE (-1) picks a size.
    fn prefetch(&self, buffer_size: i64) -> Self {
        let n = if buffer_size < 0 {
            2
        } else {
            buffer_size as usize
        };
        PyDataset(self.0.prefetch(n))
    }

    /// `repeat(count=None)`: forever without a count.
    #[pyo3(signature = (count=None))]
    fn repeat(&self, count: Option<i64>) -> Self {
        PyDataset(self.0.repeat(count.filter(|&c| c >= 0).map(|c| c as u64)))
    }

    /// `take(count)`.
    fn take(&self, count: u64) -> Self {
        PyDataset(self.0.take(count))
    }

    /// `skip(count)`.
    fn skip(&self, count: u64) -> Self {
        PyDataset(self.0.skip(count))
    }

    /// `cache(filename="")`: in memory, or in a file.
    #[pyo3(signature = (filename=""))]
    fn cache(&self, filename: &str) -> Self {
        PyDataset(if filename.is_empty() {
            self.0.cache()
        } else {
            self.0.cache_file(filename)
        })
    }

    /// `concatenate(other)`.
    fn concatenate(&self, other: &PyDataset) -> Self {
        PyDataset(self.0.concatenate(&other.0))
    }

    /// `shard(num_shards, index)`.
    fn shard(&self, num_shards: u64, index: u64) -> PyResult<Self> {
        Ok(PyDataset(self.0.shard(num_shards, index).py()?))
    }

    /// `enumerate(start=0)`.
    #[pyo3(signature = (start=0))]
    fn enumerate(&self, start: u64) -> Self {
        PyDataset(self.0.enumerate(start))
    }

    /// The number of elements: >= 0, -1 for infinite, -2 for unknown (TensorFlow's
    /// `INFINITE_CARDINALITY` and `UNKNOWN_CARDINALITY`).
    fn cardinality(&self) -> i64 {
        match self.0.cardinality() {
            Cardinality::Known(n) => n as i64,
            Cardinality::Infinite => -1,
            Cardinality::Unknown => -2,
        }
    }

    fn __iter__(&self) -> PyResult<PyDatasetIterator> {
        Ok(PyDatasetIterator(Mutex::new(self.0.iter().py()?)))
    }
}

/// An iterator over a dataset's elements.
#[pyclass(name = "DatasetIterator", module = "ferroflow._native")]
pub struct PyDatasetIterator(Mutex<ElementIter>);

#[pymethods]
impl PyDatasetIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let it = &self.0;
        let next = py.detach(|| it.lock().ok().and_then(|mut i| i.next()));
        match next {
            None => Err(PyStopIteration::new_err(())),
            Some(e) => element_to_py(py, &e.py()?),
        }
    }
}

/// Registers the data classes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDataset>()?;
    m.add_class::<PyDatasetIterator>()?;
    Ok(())
}
