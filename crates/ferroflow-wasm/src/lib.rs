//! ferroflow in the browser: the inference runtime (core kernels, the Keras model runtime
//! and the TFLite interpreter) compiled to `wasm32-unknown-unknown`, exported to
//! JavaScript with `wasm-bindgen`.
//!
//! The exported class is low level (bytes in, typed arrays out, one input at a time);
//! `js/ferroflow.js` wraps it in the public API (`loadModel`, `model.predict`). Build the
//! bundle with `tools/build_wasm.sh`.

pub mod runner;

use ferroflow_core::{DType, Tensor};
use runner::LoadedModel;
use std::sync::Mutex;
use wasm_bindgen::prelude::*;

/// The message of the last Rust panic, kept for the JavaScript side: a panic traps the
/// call (`RuntimeError: unreachable`), and the wrapper reports this text instead.
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// Installs the panic hook that records messages for [`last_panic`] (called by the
/// wrapper once, right after instantiation).
#[wasm_bindgen(js_name = installPanicHook)]
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let mut last = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner());
        *last = info.to_string();
    }));
}

/// The message of the last panic, empty if none happened.
#[wasm_bindgen(js_name = lastPanic)]
pub fn last_panic() -> String {
    LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn js_err(e: ferroflow_core::Error) -> JsError {
    JsError::new(&e.to_string())
}

/// A loaded model with the inputs staged for the next run and the last run's outputs.
#[wasm_bindgen]
pub struct WasmModel {
    model: LoadedModel,
    staged: Vec<Option<Tensor>>,
    outputs: Vec<Tensor>,
}

#[wasm_bindgen]
impl WasmModel {
    fn wrap(model: LoadedModel) -> WasmModel {
        WasmModel {
            staged: vec![None; model.inputs().len()],
            model,
            outputs: Vec::new(),
        }
    }

    /// Loads a `.keras`, `.h5` or `.tflite` file from its bytes.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<WasmModel, JsError> {
        LoadedModel::from_bytes(bytes)
            .map(Self::wrap)
            .map_err(js_err)
    }

    /// Loads a ferroflow model directory from its `config.json` and
    /// `model.weights.safetensors`.
    #[wasm_bindgen(js_name = fromSavedModel)]
    pub fn from_saved_model(config: &[u8], weights: &[u8]) -> Result<WasmModel, JsError> {
        LoadedModel::from_saved_model(config, weights)
            .map(Self::wrap)
            .map_err(js_err)
    }

    /// The format, inputs, outputs (names, dtypes, shapes) and summary, as JSON text.
    pub fn info(&self) -> String {
        self.model.info().to_string()
    }

    /// Stages input `index` from float32 values with `shape`.
    #[wasm_bindgen(js_name = setInputF32)]
    pub fn set_input_f32(
        &mut self,
        index: usize,
        data: &[f32],
        shape: &[u32],
    ) -> Result<(), JsError> {
        self.stage(index, data, shape)
    }

    /// Stages input `index` from int32 values with `shape`.
    #[wasm_bindgen(js_name = setInputI32)]
    pub fn set_input_i32(
        &mut self,
        index: usize,
        data: &[i32],
        shape: &[u32],
    ) -> Result<(), JsError> {
        self.stage(index, data, shape)
    }

    fn stage<T: ferroflow_core::Element>(
        &mut self,
        index: usize,
        data: &[T],
        shape: &[u32],
    ) -> Result<(), JsError> {
        let n = self.staged.len();
        let slot = self.staged.get_mut(index).ok_or_else(|| {
            JsError::new(&format!("input {index} does not exist (the model has {n})"))
        })?;
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        *slot = Some(Tensor::from_slice(data, &shape).map_err(js_err)?);
        Ok(())
    }

    /// Runs the model on the staged inputs (all must be staged; they are consumed) and
    /// returns the number of outputs.
    pub fn run(&mut self) -> Result<usize, JsError> {
        let staged = std::mem::replace(&mut self.staged, vec![None; self.model.inputs().len()]);
        let xs: Option<Vec<Tensor>> = staged.into_iter().collect();
        let xs = xs.ok_or_else(|| JsError::new("every input must be set before run()"))?;
        self.outputs = self.model.predict(xs).map_err(js_err)?;
        Ok(self.outputs.len())
    }

    fn output(&self, index: usize) -> Result<&Tensor, JsError> {
        self.outputs.get(index).ok_or_else(|| {
            JsError::new(&format!(
                "output {index} does not exist (the last run gave {})",
                self.outputs.len()
            ))
        })
    }

    /// The shape of output `index` of the last run.
    #[wasm_bindgen(js_name = outputShape)]
    pub fn output_shape(&self, index: usize) -> Result<Vec<u32>, JsError> {
        Ok(self
            .output(index)?
            .shape()
            .iter()
            .map(|&d| d as u32)
            .collect())
    }

    /// Whether output `index` comes back as floats (`float32`) or integers (`int32`).
    #[wasm_bindgen(js_name = outputKind)]
    pub fn output_kind(&self, index: usize) -> Result<String, JsError> {
        let kind = if self.output(index)?.dtype().is_float() {
            "float32"
        } else {
            "int32"
        };
        Ok(kind.to_string())
    }

    /// Output `index` of the last run as float32 values.
    #[wasm_bindgen(js_name = outputF32)]
    pub fn output_f32(&self, index: usize) -> Result<Vec<f32>, JsError> {
        let t = self.output(index)?.cast(DType::F32).map_err(js_err)?;
        t.to_vec::<f32>().map_err(js_err)
    }

    /// Output `index` of the last run as int32 values.
    #[wasm_bindgen(js_name = outputI32)]
    pub fn output_i32(&self, index: usize) -> Result<Vec<i32>, JsError> {
        let t = self.output(index)?.cast(DType::I32).map_err(js_err)?;
        t.to_vec::<i32>().map_err(js_err)
    }
}
