//! `ferroflow.distribute.MirroredStrategy`: local replicas; `scope()` is a context manager.

use crate::errors::IntoPy;
use ferroflow_distribute::{MirroredStrategy, Strategy};
use ferroflow_keras::distribution::{self, Replicas};
use pyo3::prelude::*;
use std::sync::Arc;

/// Synchronous training on local replicas (`tf.distribute.MirroredStrategy`): models
/// compiled inside `scope()` split every batch across the replicas.
#[pyclass(name = "MirroredStrategy", module = "ferroflow._native", unsendable)]
pub struct PyMirroredStrategy(Arc<dyn Replicas>);

#[pymethods]
impl PyMirroredStrategy {
    #[new]
    fn py_new() -> PyResult<Self> {
        Ok(PyMirroredStrategy(MirroredStrategy::new().py()?.replicas()))
    }

    /// Replicas that train in sync.
    #[getter]
    fn num_replicas_in_sync(&self) -> usize {
        self.0.num_replicas_in_sync()
    }

    /// Makes the strategy current (the native half of `with strategy.scope():`).
    fn enter(&self) {
        distribution::enter_replicas(self.0.clone());
    }

    /// Ends the innermost scope.
    fn exit(&self) {
        distribution::exit_replicas();
    }
}
