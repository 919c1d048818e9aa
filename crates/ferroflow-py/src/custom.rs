//! Python subclasses of `keras.layers.Layer` and `keras.Model`: a ferroflow layer whose
//! `build`, `call` and config are the Python object's. Its ops run on ferroflow tensors,
//! so `fit` traces a Python `call` into its compiled train step like any other layer.

use crate::keras::{to_json, PyLayer, PyModel};
use crate::tensor::PyTensor;
use ferroflow_core::{Error, Result, Tensor};
use ferroflow_keras::config::Map;
use ferroflow_keras::layer::{CallContext, Layer, LayerBase, LayerRef, TensorSpec};
use ferroflow_keras::models::Model;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// A layer implemented by a Python object (the `_ff_*` methods of the package's `Layer`).
pub struct PyCustomLayer {
    base: LayerBase,
    obj: Py<PyAny>,
    class: &'static str,
}

/// Class names live as long as the program (the `Layer` trait hands out `&'static str`);
/// each distinct name is stored once.
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    names
        .entry(name.to_string())
        .or_insert_with(|| Box::leak(name.to_string().into_boxed_str()))
}

impl PyCustomLayer {
    fn new(obj: Py<PyAny>, class: &str, name: Option<&str>) -> Self {
        PyCustomLayer {
            base: LayerBase::new(class, name),
            obj,
            class: intern(class),
        }
    }

    /// Calls `method` on the Python object, with ferroflow's error for a Python one.
    fn with_py<R>(
        &self,
        what: &str,
        f: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<R>,
    ) -> Result<R> {
        Python::attach(|py| {
            f(self.obj.bind(py)).map_err(|e| {
                Error::invalid(
                    "Layer",
                    format!("{} '{}': {what}: {e}", self.class, self.base.name()),
                )
            })
        })
    }
}

fn shape_obj<'py>(py: Python<'py>, spec: &TensorSpec) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, spec.shape.clone())
}

impl Layer for PyCustomLayer {
    fn class_name(&self) -> &'static str {
        self.class
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn build(&self, inputs: &[TensorSpec]) -> Result<()> {
        self.with_py("build", |o| {
            let shapes: Vec<Bound<'_, PyTuple>> = inputs
                .iter()
                .map(|s| shape_obj(o.py(), s))
                .collect::<PyResult<_>>()?;
            o.call_method1("_ff_build", (shapes,))?;
            Ok(())
        })
    }

    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
        self.with_py("call", |o| {
            let args: Vec<PyTensor> = inputs.iter().cloned().map(PyTensor).collect();
            let out = o.call_method1("_ff_call", (PyList::new(o.py(), args)?, ctx.training))?;
            out.try_iter()?
                .map(|t| crate::convert::to_tensor(&t?, None))
                .collect()
        })
    }

    fn config(&self) -> Map {
        self.with_py("get_config", |o| {
            let cfg = to_json(&o.call_method0("_ff_config")?)?;
            Ok(cfg.as_object().cloned().unwrap_or_default())
        })
        .unwrap_or_default()
    }

    fn sublayers(&self) -> Vec<LayerRef> {
        self.with_py("sublayers", |o| {
            let subs = o.call_method0("_ff_sublayers")?;
            subs.try_iter()?
                .map(|l| Ok(l?.cast::<PyLayer>()?.get().0.clone()))
                .collect()
        })
        .unwrap_or_default()
    }

    fn number_of_inputs(&self) -> Option<usize> {
        None
    }
}

/// The ferroflow layer of a Python `keras.layers.Layer` subclass instance.
#[pyfunction]
#[pyo3(signature = (obj, class_name, name=None))]
pub fn custom_layer(obj: Py<PyAny>, class_name: &str, name: Option<&str>) -> PyLayer {
    PyLayer(Arc::new(PyCustomLayer::new(obj, class_name, name)))
}

/// The ferroflow model of a Python `keras.Model` subclass instance.
#[pyfunction]
#[pyo3(signature = (obj, class_name, name=None))]
pub fn custom_model(obj: Py<PyAny>, class_name: &str, name: Option<&str>) -> PyModel {
    PyModel::new(Model::from_layer(PyCustomLayer::new(obj, class_name, name)))
}

/// Registers the subclassing functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(custom_layer, m)?)?;
    m.add_function(wrap_pyfunction!(custom_model, m)?)?;
    Ok(())
}
