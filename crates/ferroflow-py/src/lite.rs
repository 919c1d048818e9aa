//! `ferroflow.lite` natively: Keras model to `.tflite` bytes (float, dynamic-range or
//! full-integer int8) and the interpreter behind LiteRT's `Interpreter` methods.

use crate::convert::to_tensor;
use crate::errors::IntoPy;
use crate::keras::{without_gil, PyModel};
use crate::tensor::PyTensor;
use ferroflow_core::{DType, Tensor};
use ferroflow_lite::ir::LiteTensor;
use ferroflow_lite::quantize::{self, IoType};
use ferroflow_lite::{core_dtype, Interpreter};
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::cell::RefCell;
use std::collections::HashMap;

/// Converts a Keras model to a `.tflite` flatbuffer. `quantize` is None (float32),
/// `"dynamic"` (int8 weights) or `"int8"` (full integer, calibrated on `samples`: each one
/// list of input batches in the model's input order), with int8 or float inputs/outputs.
#[pyfunction]
#[pyo3(signature = (model, quantize=None, samples=None, int8_io=false))]
pub fn convert<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyModel>,
    quantize: Option<&str>,
    samples: Option<Vec<Vec<Bound<'py, PyAny>>>>,
    int8_io: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let samples: Vec<Vec<Tensor>> = samples
        .unwrap_or_default()
        .iter()
        .map(|s| {
            s.iter()
                .map(|t| to_tensor(t, Some(DType::F32)))
                .collect::<PyResult<_>>()
        })
        .collect::<PyResult<_>>()?;
    let m = model.borrow();
    let bytes = m.with(|m| {
        without_gil(py, || -> ferroflow_core::Result<Vec<u8>> {
            let float = ferroflow_lite::convert::from_keras(m)?;
            let lite = match quantize {
                None => float,
                Some("dynamic") => quantize::dynamic_range(&float),
                Some("int8") => {
                    let io = if int8_io { IoType::Int8 } else { IoType::Float };
                    quantize::full_integer(&float, &samples, io)?
                }
                Some(other) => {
                    return Err(ferroflow_core::Error::invalid(
                        "TFLiteConverter",
                        format!("unknown quantization '{other}'"),
                    ))
                }
            };
            Ok(ferroflow_lite::write::to_bytes(&lite))
        })
        .py()
    })?;
    Ok(PyBytes::new(py, &bytes))
}

/// Runs `.tflite` models (the engine behind `ferroflow.lite.Interpreter`).
#[pyclass(name = "LiteInterpreter", module = "ferroflow._native", unsendable)]
pub struct PyLiteInterpreter {
    interp: Interpreter,
    /// Inputs set with `set_tensor`, by tensor index.
    inputs: RefCell<HashMap<usize, Tensor>>,
    /// Outputs of the last `invoke`, by tensor index.
    outputs: RefCell<HashMap<usize, Tensor>>,
}

type Detail = (
    String,
    usize,
    Vec<i32>,
    Vec<i32>,
    String,
    Vec<f32>,
    Vec<i64>,
    usize,
);

fn detail(index: usize, t: &LiteTensor) -> Detail {
    let (scales, zps, axis) = match &t.quant {
        Some(q) => (q.scale.clone(), q.zero_point.clone(), q.axis),
        None => (Vec::new(), Vec::new(), 0),
    };
    let sig = if t.signature.is_empty() {
        t.shape.clone()
    } else {
        t.signature.clone()
    };
    (
        t.name.clone(),
        index,
        t.shape.clone(),
        sig,
        core_dtype(t.dtype).name().to_string(),
        scales,
        zps,
        axis,
    )
}

#[pymethods]
impl PyLiteInterpreter {
    /// From a file path or the file's bytes.
    #[new]
    #[pyo3(signature = (model_path=None, model_content=None, num_threads=None))]
    fn py_new(
        model_path: Option<&str>,
        model_content: Option<&[u8]>,
        num_threads: Option<usize>,
    ) -> PyResult<Self> {
        let interp = match (model_path, model_content) {
            (Some(p), None) => Interpreter::from_file(p).py()?,
            (None, Some(b)) => Interpreter::from_bytes(b).py()?,
            _ => {
                return Err(PyValueError::new_err(
                    "give exactly one of model_path or model_content",
                ))
            }
        };
        let interp = match num_threads {
            Some(n) if n > 0 => interp.with_threads(n).py()?,
            _ => interp,
        };
        Ok(PyLiteInterpreter {
            interp,
            inputs: RefCell::default(),
            outputs: RefCell::default(),
        })
    }

    /// `(name, index, shape, shape_signature, dtype, scales, zero_points, axis)` per input.
    fn input_details(&self) -> Vec<Detail> {
        let m = self.interp.model();
        m.inputs.iter().map(|&i| detail(i, &m.tensors[i])).collect()
    }

    /// The same per output.
    fn output_details(&self) -> Vec<Detail> {
        let m = self.interp.model();
        m.outputs
            .iter()
            .map(|&i| detail(i, &m.tensors[i]))
            .collect()
    }

    /// Sets input tensor `index` (checked against the input's dtype and rank).
    fn set_tensor(&self, index: usize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let m = self.interp.model();
        let pos = m.inputs.iter().position(|&i| i == index).ok_or_else(|| {
            PyIndexError::new_err(format!(
                "tensor {index} is not an input (inputs: {:?})",
                m.inputs
            ))
        })?;
        let want = core_dtype(m.tensors[m.inputs[pos]].dtype);
        let t = to_tensor(value, None)?;
        if t.dtype() != want {
            return Err(PyValueError::new_err(format!(
                "Cannot set tensor: Got value of type {} but expected type {} for input {index}, name: {}",
                t.dtype().name().to_uppercase(),
                want.name().to_uppercase(),
                m.tensors[index].name
            )));
        }
        self.inputs.borrow_mut().insert(index, t);
        Ok(())
    }

    /// Runs the model on the inputs set.
    fn invoke(&self, py: Python<'_>) -> PyResult<()> {
        let m = self.interp.model();
        let given = self.inputs.borrow();
        let args: Vec<Tensor> = m
            .inputs
            .iter()
            .map(|i| {
                given.get(i).cloned().ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "input tensor {i} ('{}') was not set",
                        m.tensors[*i].name
                    ))
                })
            })
            .collect::<PyResult<_>>()?;
        let interp = &self.interp;
        let outs = without_gil(py, || interp.run(&args)).py()?;
        let mut o = self.outputs.borrow_mut();
        o.clear();
        for (i, t) in m.outputs.iter().zip(outs) {
            o.insert(*i, t);
        }
        Ok(())
    }

    /// Output (or input) tensor `index` after `invoke`.
    fn get_tensor(&self, index: usize) -> PyResult<PyTensor> {
        if let Some(t) = self.outputs.borrow().get(&index) {
            return Ok(PyTensor(t.clone()));
        }
        if let Some(t) = self.inputs.borrow().get(&index) {
            return Ok(PyTensor(t.clone()));
        }
        Err(PyValueError::new_err(format!(
            "tensor {index} has no value: it is not an output of the last invoke() nor a set input"
        )))
    }
}

/// Registers the TFLite functions and classes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_class::<PyLiteInterpreter>()?;
    Ok(())
}
