//! Python callbacks (`keras.callbacks.Callback` subclasses) run from ferroflow's training
//! loop: each hook takes the GIL, gets Keras's arguments and a logs dict, and may set
//! `self.model.stop_training`.

use crate::keras::PyModel;
use ferroflow_core::{Error, Result};
use ferroflow_keras::callbacks::Callback;
use ferroflow_keras::models::Model;
use ferroflow_keras::training::Logs;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a hook's Python exception waits until `fit` returns, to be raised as it was.
#[derive(Clone, Default)]
pub struct PyErrSlot(Arc<Mutex<Option<PyErr>>>);

impl PyErrSlot {
    fn keep(&self, e: PyErr) -> Error {
        let msg = e.to_string();
        if let Ok(mut s) = self.0.lock() {
            s.get_or_insert(e);
        }
        Error::invalid("callback", msg)
    }

    /// Raises the kept exception, if any.
    pub fn take(&self) -> PyResult<()> {
        match self.0.lock().ok().and_then(|mut s| s.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A Python callback object seen as a ferroflow [`Callback`].
pub struct PyCallbackAdapter {
    obj: Py<PyAny>,
    model: Py<PyModel>,
    errors: PyErrSlot,
    /// Whether the object defines `on_train_batch_end` (the base class's does nothing),
    /// and how often it wants it (a progress bar needs it at most every few ms).
    batch_hook: Option<Duration>,
    last_batch: Option<Instant>,
}

impl PyCallbackAdapter {
    /// Wraps `obj`, which will see `model` as `self.model`.
    pub fn new(obj: Py<PyAny>, model: Py<PyModel>, errors: PyErrSlot) -> Self {
        let batch_hook = Python::attach(|py| {
            let o = obj.bind(py);
            let wants = o
                .getattr("_ff_wants_batches")
                .and_then(|v| v.extract::<bool>())
                .unwrap_or(true);
            let every = o
                .getattr("_ff_batch_interval")
                .and_then(|v| v.extract::<f64>())
                .unwrap_or(0.0);
            wants.then(|| Duration::from_secs_f64(every.max(0.0)))
        });
        PyCallbackAdapter {
            obj,
            model,
            errors,
            batch_hook,
            last_batch: None,
        }
    }

    fn hook(
        &self,
        model: &mut Model,
        name: &str,
        args: impl FnOnce(Python<'_>) -> PyResult<Vec<Py<PyAny>>>,
    ) -> Result<()> {
        Python::attach(|py| {
            let pm = self.model.bind(py).borrow();
            pm.stop.set(model.stop_training);
            let r = pm.lend(model, || -> PyResult<()> {
                let o = self.obj.bind(py);
                if !o.hasattr(name)? {
                    return Ok(());
                }
                let a = args(py)?;
                o.call_method1(name, pyo3::types::PyTuple::new(py, a)?)?;
                Ok(())
            });
            model.stop_training = pm.stop.get();
            r.map_err(|e| self.errors.keep(e))
        })
    }
}

fn logs_obj(py: Python<'_>, logs: &Logs) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    for (k, v) in logs {
        d.set_item(k, v)?;
    }
    Ok(d.into_any().unbind())
}

impl Callback for PyCallbackAdapter {
    fn on_train_begin(&mut self, model: &mut Model) -> Result<()> {
        self.hook(model, "on_train_begin", |py| {
            Ok(vec![PyDict::new(py).into_any().unbind()])
        })
    }

    fn on_epoch_begin(&mut self, epoch: usize, model: &mut Model) -> Result<()> {
        self.hook(model, "on_epoch_begin", |py| {
            Ok(vec![
                epoch.into_pyobject(py)?.into_any().unbind(),
                PyDict::new(py).into_any().unbind(),
            ])
        })
    }

    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, model: &mut Model) -> Result<()> {
        let Some(every) = self.batch_hook else {
            return Ok(());
        };
        let now = Instant::now();
        if let Some(last) = self.last_batch {
            if now.duration_since(last) < every {
                return Ok(());
            }
        }
        self.last_batch = Some(now);
        self.hook(model, "on_train_batch_end", |py| {
            Ok(vec![
                batch.into_pyobject(py)?.into_any().unbind(),
                logs_obj(py, logs)?,
            ])
        })
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut Model) -> Result<()> {
        self.last_batch = None;
        self.hook(model, "on_epoch_end", |py| {
            Ok(vec![
                epoch.into_pyobject(py)?.into_any().unbind(),
                logs_obj(py, logs)?,
            ])
        })
    }

    fn on_train_end(&mut self, model: &mut Model) -> Result<()> {
        self.hook(model, "on_train_end", |py| {
            Ok(vec![PyDict::new(py).into_any().unbind()])
        })
    }
}
