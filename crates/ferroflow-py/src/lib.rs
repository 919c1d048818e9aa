//! `ferroflow._native`: the Python extension module behind the `ferroflow` package
//! (`import ferroflow as tf`). The package's Python files give it TensorFlow's and
//! Keras's names and signatures; everything computes here, without the GIL.

mod autodiff;
mod callbacks;
mod convert;
mod custom;
mod data;
mod distribute;
mod errors;
mod function;
mod keras;
mod lite;
mod ops;
mod tensor;
mod variable;

use ferroflow_core::DType;
use pyo3::prelude::*;

/// A shape as a tuple of ints.
pub(crate) fn py_shape<'py>(py: Python<'py>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    Ok(pyo3::types::PyTuple::new(py, shape)?.into_any())
}

/// A dtype as the package's `DType` (a `str` with TensorFlow's name).
pub(crate) fn py_dtype<'py>(py: Python<'py>, d: DType) -> PyResult<Bound<'py, PyAny>> {
    py.import("ferroflow._dtypes")?
        .call_method1("as_dtype", (d.name(),))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<tensor::PyTensor>()?;
    m.add_class::<variable::PyVariable>()?;
    m.add_class::<autodiff::PyGradientTape>()?;
    m.add_class::<autodiff::PyIndexedSlices>()?;
    m.add_class::<function::PyTracedFunction>()?;
    m.add_class::<distribute::PyMirroredStrategy>()?;
    m.add(
        "InvalidArgumentError",
        m.py().get_type::<errors::InvalidArgumentError>(),
    )?;
    ops::register(m)?;
    keras::register(m)?;
    data::register(m)?;
    lite::register(m)?;
    custom::register(m)?;
    Ok(())
}
