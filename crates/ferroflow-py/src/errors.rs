//! ferroflow errors as Python exceptions, each carrying ferroflow's message.

use ferroflow_core::Error;
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::PyErr;

pyo3::create_exception!(
    _native,
    InvalidArgumentError,
    PyValueError,
    "An op or layer was given arguments it cannot take (TensorFlow's `tf.errors.InvalidArgumentError`)."
);

/// The Python exception for a ferroflow error: shapes and arguments raise
/// `InvalidArgumentError` (a `ValueError`), dtypes `TypeError`, files `OSError` or
/// `ValueError` (bad contents). The message is ferroflow's, context lines included.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    let mut root = &e;
    while let Error::Context { inner, .. } = root {
        root = inner;
    }
    match root {
        Error::DTypeMismatch { .. } | Error::UnsupportedDType { .. } => PyTypeError::new_err(msg),
        Error::Io { .. } => PyOSError::new_err(msg),
        Error::Format { .. } => PyValueError::new_err(msg),
        _ => InvalidArgumentError::new_err(msg),
    }
}

/// `?` on ferroflow results inside Python-facing functions.
pub trait IntoPy<T> {
    /// The result with a ferroflow error turned into its Python exception.
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPy<T> for ferroflow_core::Result<T> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
