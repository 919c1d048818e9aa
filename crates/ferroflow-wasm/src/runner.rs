//! A model loaded from bytes (what a page fetches), behind one interface whatever its
//! format: its signature and a `predict` on tensors. Nothing here touches JavaScript, so it
//! is tested natively.

use ferroflow_core::{DType, Error, Result, Tensor};
use ferroflow_keras::models::Model;
use ferroflow_lite::Interpreter;
use serde_json::{json, Value};
use std::path::Path;

/// One named input or output: name, element type and dimensions (`None`: any size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The name the model gives it.
    pub name: String,
    /// The element type `predict` takes or returns (float32 for quantised TFLite edges,
    /// which are quantised and dequantised with the model's own parameters).
    pub dtype: DType,
    /// Dimensions; the first is usually the batch.
    pub shape: Vec<Option<usize>>,
}

impl TensorInfo {
    fn to_json(&self) -> Value {
        json!({"name": self.name, "dtype": self.dtype.name(), "shape": self.shape})
    }
}

/// The format a model was loaded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A ferroflow model directory (`config.json` and `model.weights.safetensors`).
    SavedModel,
    /// A Keras 3 `.keras` archive.
    Keras,
    /// A legacy Keras `.h5` file.
    KerasH5,
    /// A `.tflite` flatbuffer.
    Tflite,
}

impl Format {
    /// Recognises a single-file model by its magic bytes: a zip archive (`.keras`), an
    /// HDF5 signature (`.h5`) or the TFLite file identifier `TFL3` at offset 4.
    pub fn sniff(bytes: &[u8]) -> Result<Format> {
        if bytes.starts_with(b"PK\x03\x04") {
            Ok(Format::Keras)
        } else if bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
            Ok(Format::KerasH5)
        } else if bytes.get(4..8) == Some(b"TFL3") {
            Ok(Format::Tflite)
        } else {
            Err(Error::Format {
                path: "model bytes".into(),
                msg: format!(
                    "not a .keras, .h5 or .tflite file ({} bytes, starting {:02x?}); a \
                     ferroflow model directory is loaded from its URL ending in '/'",
                    bytes.len(),
                    &bytes[..bytes.len().min(8)]
                ),
            })
        }
    }

    /// The name the JavaScript API reports.
    pub fn name(self) -> &'static str {
        match self {
            Format::SavedModel => "ferroflow_saved_model",
            Format::Keras => "keras",
            Format::KerasH5 => "keras_h5",
            Format::Tflite => "tflite",
        }
    }
}

enum Engine {
    Keras(Box<Model>),
    Lite(Box<Interpreter>),
}

/// A loaded model, ready to predict.
pub struct LoadedModel {
    engine: Engine,
    format: Format,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    summary: String,
}

/// Rows predicted per call of a Keras model (its `predict` batch size).
const BATCH: usize = 256;

impl LoadedModel {
    /// Loads a single-file model (`.keras`, `.h5` or `.tflite`) recognised by its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<LoadedModel> {
        let label = Path::new("model");
        match Format::sniff(bytes)? {
            Format::Keras => Self::keras(
                ferroflow_keras::saving::keras_file::load_keras_bytes(bytes, label)?,
                Format::Keras,
            ),
            Format::KerasH5 => Self::keras(
                ferroflow_keras::saving::keras_file::load_legacy_h5_bytes(bytes.to_vec(), label)?,
                Format::KerasH5,
            ),
            Format::Tflite => Self::tflite(Interpreter::from_bytes(bytes)?, bytes),
            Format::SavedModel => unreachable!("sniff never answers a directory"),
        }
    }

    /// Loads a ferroflow model directory from the bytes of its two files.
    pub fn from_saved_model(config: &[u8], weights: &[u8]) -> Result<LoadedModel> {
        let model =
            ferroflow_keras::saving::load_model_from_bytes(config, weights, Path::new("model"))?;
        Self::keras(model, Format::SavedModel)
    }

    fn keras(model: Model, format: Format) -> Result<LoadedModel> {
        let d = model.describe();
        let infos = |key: &str| -> Result<Vec<TensorInfo>> {
            d[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| tensor_info(t, &model))
                .collect()
        };
        let (inputs, outputs) = (infos("inputs")?, infos("outputs")?);
        let summary = model.summary();
        Ok(LoadedModel {
            engine: Engine::Keras(Box::new(model)),
            format,
            inputs,
            outputs,
            summary,
        })
    }

    fn tflite(interp: Interpreter, bytes: &[u8]) -> Result<LoadedModel> {
        let info = |t: &ferroflow_lite::ir::LiteTensor| TensorInfo {
            name: t.name.clone(),
            dtype: t.float_edge_dtype(),
            shape: t
                .declared_dims()
                .iter()
                .map(|&d| usize::try_from(d).ok())
                .collect(),
        };
        let inputs = interp.inputs().into_iter().map(info).collect();
        let outputs = interp.outputs().into_iter().map(info).collect();
        let summary = tflite_summary(&ferroflow_lite::inspect::inspect(bytes)?);
        Ok(LoadedModel {
            engine: Engine::Lite(Box::new(interp)),
            format: Format::Tflite,
            inputs,
            outputs,
            summary,
        })
    }

    /// The model's inputs, in order.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// The model's outputs, in order.
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    /// The format it was loaded from.
    pub fn format(&self) -> Format {
        self.format
    }

    /// A Keras-style summary (layers and parameters; operators for `.tflite`).
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// Everything the JavaScript side shows of the model, as JSON.
    pub fn info(&self) -> Value {
        json!({
            "format": self.format.name(),
            "inputs": self.inputs.iter().map(TensorInfo::to_json).collect::<Vec<_>>(),
            "outputs": self.outputs.iter().map(TensorInfo::to_json).collect::<Vec<_>>(),
            "summary": self.summary,
        })
    }

    /// Runs the model: one tensor per input, in order, each checked against its input's
    /// rank and fixed dimensions and converted to its dtype where nothing is lost.
    pub fn predict(&self, xs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        let xs = self.check_inputs(xs)?;
        match &self.engine {
            Engine::Keras(m) => m.predict(xs, BATCH),
            Engine::Lite(i) => i.run_float(&xs),
        }
    }

    fn check_inputs(&self, xs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        let bad = |msg: String| Error::ModelInput {
            model: self.format.name().to_string(),
            msg,
        };
        if xs.len() != self.inputs.len() {
            let names: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(bad(format!(
                "takes {} input(s) ({}), got {}",
                self.inputs.len(),
                names.join(", "),
                xs.len()
            )));
        }
        xs.into_iter()
            .zip(&self.inputs)
            .map(|(x, info)| {
                let fits = x.rank() == info.shape.len()
                    && x.shape()
                        .iter()
                        .zip(&info.shape)
                        .enumerate()
                        .all(|(i, (&have, want))| i == 0 || want.is_none_or(|w| w == have));
                if !fits {
                    return Err(bad(format!(
                        "input '{}' expects shape {}, got {:?}",
                        info.name,
                        shape_text(&info.shape),
                        x.shape()
                    )));
                }
                let (have, want) = (x.dtype(), info.dtype);
                if have == want {
                    Ok(x)
                } else if want.is_float() || !have.is_float() {
                    x.cast(want)
                } else {
                    Err(bad(format!(
                        "input '{}' expects {want} (token ids), got {have} values",
                        info.name
                    )))
                }
            })
            .collect()
    }
}

/// A Keras-described tensor (`{"name", "dtype", "shape"}`) as a [`TensorInfo`].
fn tensor_info(v: &Value, model: &Model) -> Result<TensorInfo> {
    let dtype = v["dtype"]
        .as_str()
        .and_then(DType::from_name)
        .ok_or_else(|| Error::ModelInput {
            model: model.name().to_string(),
            msg: format!("a model tensor has no dtype the browser runtime knows: {v}"),
        })?;
    Ok(TensorInfo {
        name: v["name"].as_str().unwrap_or_default().to_string(),
        dtype,
        shape: v["shape"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect(),
    })
}

/// `(None, 64)` as Keras prints shapes.
fn shape_text(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("None".into(), |d| d.to_string()))
        .collect();
    match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    }
}

/// A few lines on a `.tflite` file from its inspection: description, operators, parameters.
fn tflite_summary(v: &Value) -> String {
    let mut s = format!(
        "TFLite model ({}), {} operators\n",
        v["description"].as_str().unwrap_or("no description"),
        v["operators"]
    );
    for op in v["ops"].as_array().into_iter().flatten() {
        s += &format!(
            "  {:<24} x{}\n",
            op["op"].as_str().unwrap_or("?"),
            op["count"]
        );
    }
    s += &format!(
        "Parameters: {} ({} bytes)\n",
        v["parameters"]["count"], v["parameters"]["bytes"]
    );
    s
}
