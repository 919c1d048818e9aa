//! A loaded model version behind one interface: its signature (named, typed inputs and
//! outputs) and a batched `run`. Saved ferroflow (Keras) models, `.tflite` files and
//! `.onnx` files are servables.

use crate::error::{ServeError, ServeResult};
use ferroflow_core::{DType, Tensor};
use ferroflow_keras::models::Model;
use ferroflow_keras::training::data::slice_rows;
use ferroflow_lite::Interpreter;
use std::path::{Path, PathBuf};

/// One named tensor of a signature (`TensorInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The name clients use (`instances` object keys, `inputs`/`outputs` keys).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dimensions, `None` where any size is accepted (`-1`); the first is the batch.
    pub shape: Vec<Option<usize>>,
}

/// The `serving_default` signature of a servable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Inputs in the model's order.
    pub inputs: Vec<TensorInfo>,
    /// Outputs in the model's order.
    pub outputs: Vec<TensorInfo>,
}

/// The signature key every servable answers to.
pub const DEFAULT_SIGNATURE: &str = "serving_default";

impl Signature {
    /// Checks inputs against the signature before the model runs: count, dtype, rank,
    /// fixed dimensions, and one batch size shared by all inputs. Returns the batch size.
    pub fn check(&self, inputs: &[Tensor]) -> ServeResult<usize> {
        if inputs.len() != self.inputs.len() {
            return Err(ServeError::invalid(format!(
                "expected {} input tensor(s), got {}",
                self.inputs.len(),
                inputs.len()
            )));
        }
        let mut batch = None;
        for (t, info) in inputs.iter().zip(&self.inputs) {
            if t.dtype() != info.dtype {
                return Err(ServeError::invalid(format!(
                    "input '{}' must be {}, got {}",
                    info.name,
                    info.dtype,
                    t.dtype()
                )));
            }
            let fits = t.rank() == info.shape.len()
                && t.shape()
                    .iter()
                    .zip(&info.shape)
                    .all(|(&d, w)| w.is_none_or(|w| w == d));
            if !fits {
                return Err(ServeError::invalid(format!(
                    "input '{}' must have shape {}, got {:?}",
                    info.name,
                    shape_string(&info.shape),
                    t.shape()
                )));
            }
            let b = t.shape().first().copied().unwrap_or(1);
            match batch {
                Some(prev) if prev != b => {
                    return Err(ServeError::invalid(format!(
                    "all inputs must have the same batch size: '{}' has {b} rows, '{}' has {prev}",
                    info.name, self.inputs[0].name
                )))
                }
                _ => batch = Some(b),
            }
        }
        Ok(batch.unwrap_or(0))
    }

    /// The index of the input called `name`.
    pub fn input_index(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|i| i.name == name)
    }
}

/// `[-1, 64]`-style text for a signature shape.
pub fn shape_string(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("-1".to_string(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

/// A model version that can answer requests.
pub trait Servable: Send + Sync {
    /// The `serving_default` signature.
    fn signature(&self) -> &Signature;
    /// Runs validated inputs (see [`Signature::check`]); every output has the inputs'
    /// batch size as its first dimension.
    fn run(&self, inputs: &[Tensor]) -> ServeResult<Vec<Tensor>>;
    /// What was loaded (`keras` or `tflite`), for logs.
    fn kind(&self) -> &'static str;
}

/// Loads the servable in a version directory: a saved ferroflow model (`config.json`),
/// or else the directory's single Keras `.keras` or `.tflite` file.
pub fn load(dir: &Path) -> Result<Box<dyn Servable>, String> {
    if dir.join("config.json").is_file() {
        return KerasServable::load(dir).map(|s| Box::new(s) as Box<dyn Servable>);
    }
    let files = model_files(dir)?;
    match files.as_slice() {
        [one] if one.extension().is_some_and(|e| e == "keras") => {
            KerasServable::load(one).map(|s| Box::new(s) as Box<dyn Servable>)
        }
        [one] if one.extension().is_some_and(|e| e == "onnx") => {
            OnnxServable::load(one).map(|s| Box::new(s) as Box<dyn Servable>)
        }
        [one] => TfliteServable::load(one).map(|s| Box::new(s) as Box<dyn Servable>),
        [] => Err(format!(
            "{}: no saved model (config.json), .keras, .tflite or .onnx file",
            dir.display()
        )),
        many => Err(format!(
            "{}: {} model files, expected one: {}",
            dir.display(),
            many.len(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The model files (`.keras`, `.tflite`, `.onnx`) of a directory, sorted.
fn model_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "tflite" || e == "keras" || e == "onnx")
                && p.is_file()
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Rows per model call; larger requests run in chunks.
const MAX_CHUNK: usize = 256;

/// The batch size a chunk of `n` rows is padded to, so that a model compiles at most a
/// few plans (powers of two up to 16, then multiples of 16) whatever sizes clients send.
fn bucket(n: usize) -> usize {
    if n <= 16 {
        n.next_power_of_two()
    } else {
        n.div_ceil(16) * 16
    }
}

/// A saved ferroflow model, run through its compiled `predict` step.
pub struct KerasServable {
    model: Model,
    signature: Signature,
}

impl KerasServable {
    /// Loads a model directory saved by `Model::save`, or a Keras `.keras` file.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let model = ferroflow_keras::load_model(dir).map_err(|e| e.to_string())?;
        let signature = keras_signature(&model).map_err(|e| {
            format!(
                "{}: cannot serve model '{}': {e}",
                dir.display(),
                model.name()
            )
        })?;
        Ok(KerasServable { model, signature })
    }

    /// Runs `n` rows padded to [`bucket`]`(n)` and cuts the padding off the outputs.
    fn run_chunk(&self, inputs: &[Tensor], n: usize) -> ServeResult<Vec<Tensor>> {
        let padded_rows = bucket(n);
        let outs = self
            .model
            .predict(pad_rows(inputs, padded_rows)?, padded_rows)?;
        first_rows(outs, padded_rows, n)
    }
}

/// `inputs` with zero rows appended up to `rows` (a batch padded to a planned size).
pub(crate) fn pad_rows(inputs: &[Tensor], rows: usize) -> ServeResult<Vec<Tensor>> {
    inputs
        .iter()
        .map(|t| {
            let n = t.shape().first().copied().unwrap_or(0);
            if n >= rows {
                return Ok(t.clone());
            }
            let mut pads = vec![(0, 0); t.rank()];
            pads[0] = (0, rows - n);
            Ok(t.pad(&pads, ferroflow_core::ops::remap::PadMode::Constant(0.0))?)
        })
        .collect()
}

/// Checks that every output has `rows` rows (one per input row) and keeps the first
/// `keep` of them.
pub(crate) fn first_rows(outs: Vec<Tensor>, rows: usize, keep: usize) -> ServeResult<Vec<Tensor>> {
    if let Some(o) = outs.iter().find(|o| o.shape().first() != Some(&rows)) {
        return Err(ServeError::internal(format!(
            "serving needs outputs with one row per input row; got shape {:?} for {rows} rows",
            o.shape()
        )));
    }
    if keep == rows {
        return Ok(outs);
    }
    Ok(slice_rows(&outs, 0, keep)?)
}

impl Servable for KerasServable {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn run(&self, inputs: &[Tensor]) -> ServeResult<Vec<Tensor>> {
        let n = self.signature.check(inputs)?;
        if n == 0 {
            return Ok(self.model.predict(inputs.to_vec(), 1)?);
        }
        let mut parts: Vec<Vec<Tensor>> = Vec::new();
        for start in (0..n).step_by(MAX_CHUNK) {
            let end = (start + MAX_CHUNK).min(n);
            let chunk = if start == 0 && end == n {
                inputs.to_vec()
            } else {
                slice_rows(inputs, start, end)?
            };
            parts.push(self.run_chunk(&chunk, end - start)?);
        }
        if parts.len() == 1 {
            return Ok(parts.pop().unwrap_or_default());
        }
        (0..parts[0].len())
            .map(|o| {
                let cols: Vec<Tensor> = parts.iter().map(|p| p[o].clone()).collect();
                Ok(Tensor::concat(&cols, 0)?)
            })
            .collect()
    }

    fn kind(&self) -> &'static str {
        "keras"
    }
}

/// The signature of a Keras model: inputs named after its input layers, outputs after
/// the layers that produce them.
fn keras_signature(model: &Model) -> ferroflow_core::Result<Signature> {
    let specs = model.input_specs().ok_or_else(|| {
        ferroflow_core::Error::invalid("serve", "the model has no input shape (it was never built)")
    })?;
    let graph = model.network().layer_graph().ok();
    let input_names: Vec<String> = match &graph {
        Some(g) => g
            .inputs
            .iter()
            .map(|&(n, _)| g.nodes[n].name.clone())
            .collect(),
        None => (0..specs.len()).map(|i| format!("input_{i}")).collect(),
    };
    let out_specs = model.as_layer().compute_output_spec(&specs)?;
    let output_names: Vec<String> = match &graph {
        Some(g) => {
            let mut names: Vec<String> = g
                .outputs
                .iter()
                .map(|&(n, k)| {
                    if g.nodes[n].outputs.len() > 1 {
                        format!("{}_{k}", g.nodes[n].name)
                    } else {
                        g.nodes[n].name.clone()
                    }
                })
                .collect();
            dedupe(&mut names);
            names
        }
        None => (0..out_specs.len())
            .map(|i| format!("output_{i}"))
            .collect(),
    };
    let info = |name: String, s: &ferroflow_keras::layer::TensorSpec| TensorInfo {
        name,
        dtype: s.dtype,
        shape: s
            .shape
            .iter()
            .enumerate()
            .map(|(i, d)| if i == 0 { None } else { *d })
            .collect(),
    };
    Ok(Signature {
        inputs: input_names
            .into_iter()
            .zip(&specs)
            .map(|(n, s)| info(n, s))
            .collect(),
        outputs: output_names
            .into_iter()
            .zip(&out_specs)
            .map(|(n, s)| info(n, s))
            .collect(),
    })
}

/// Makes repeated names unique (`dense`, `dense_1`).
fn dedupe(names: &mut [String]) {
    for i in 1..names.len() {
        if names[..i].contains(&names[i]) {
            let base = names[i].clone();
            let mut k = 1;
            while names.contains(&format!("{base}_{k}")) {
                k += 1;
            }
            names[i] = format!("{base}_{k}");
        }
    }
}

/// A `.tflite` file run by ferroflow's interpreter; quantised inputs and outputs are
/// exposed as float, quantised and dequantised with the model's own parameters.
pub struct TfliteServable {
    interpreter: Interpreter,
    signature: Signature,
}

impl TfliteServable {
    /// Loads and validates a `.tflite` file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let interpreter = Interpreter::from_file(path).map_err(|e| e.to_string())?;
        let info = |t: &ferroflow_lite::ir::LiteTensor| TensorInfo {
            name: tflite_name(&t.name),
            dtype: t.float_edge_dtype(),
            shape: t
                .declared_dims()
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    if i == 0 || d < 0 {
                        None
                    } else {
                        Some(d as usize)
                    }
                })
                .collect(),
        };
        let mut inputs: Vec<TensorInfo> = interpreter.inputs().into_iter().map(info).collect();
        let mut outputs: Vec<TensorInfo> = interpreter.outputs().into_iter().map(info).collect();
        for (i, t) in inputs.iter_mut().enumerate() {
            if t.shape.is_empty() {
                return Err(format!(
                    "{}: input {i} ('{}') is a scalar; a served model needs a batch dimension",
                    path.display(),
                    t.name
                ));
            }
        }
        let mut names: Vec<String> = inputs.iter().map(|t| t.name.clone()).collect();
        dedupe(&mut names);
        inputs.iter_mut().zip(names).for_each(|(t, n)| t.name = n);
        let mut names: Vec<String> = outputs.iter().map(|t| t.name.clone()).collect();
        dedupe(&mut names);
        outputs.iter_mut().zip(names).for_each(|(t, n)| t.name = n);
        Ok(TfliteServable {
            interpreter,
            signature: Signature { inputs, outputs },
        })
    }
}

/// A client-facing name for a TFLite tensor: TensorFlow's converter names signature
/// inputs `serving_default_<key>:0` and outputs `StatefulPartitionedCall:0`; the key is
/// what clients send.
fn tflite_name(name: &str) -> String {
    let n = name.strip_prefix("serving_default_").unwrap_or(name);
    let n = n.strip_suffix(":0").unwrap_or(n);
    if n.is_empty() {
        name.to_string()
    } else {
        n.to_string()
    }
}

impl Servable for TfliteServable {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn run(&self, inputs: &[Tensor]) -> ServeResult<Vec<Tensor>> {
        self.signature.check(inputs)?;
        Ok(self.interpreter.run_float(inputs)?)
    }

    fn kind(&self) -> &'static str {
        "tflite"
    }
}

/// An `.onnx` file, imported and compiled with `function`. A model whose inputs fix the
/// batch size (PyTorch exports often fix it at 1) is served with any batch size, run in
/// chunks of its own.
pub struct OnnxServable {
    model: ferroflow_onnx::CompiledOnnx,
    fixed_batch: Option<usize>,
    signature: Signature,
}

impl OnnxServable {
    /// Loads, validates and compiles an `.onnx` file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let model = ferroflow_onnx::load(path).map_err(|e| e.to_string())?;
        let m = model.model();
        let fixed_batch = m.fixed_batch();
        let info = |i: &ferroflow_onnx::import::InputInfo| TensorInfo {
            name: i.name.clone(),
            dtype: i.dtype,
            shape: i
                .shape
                .iter()
                .enumerate()
                .map(|(k, &d)| if k == 0 { None } else { d })
                .collect(),
        };
        let inputs: Vec<TensorInfo> = m.inputs().iter().map(info).collect();
        if let Some(t) = inputs.iter().find(|t| t.shape.is_empty()) {
            return Err(format!(
                "{}: input '{}' is a scalar; a served model needs a batch dimension",
                path.display(),
                t.name
            ));
        }
        let outputs = m.outputs().iter().map(info).collect();
        Ok(OnnxServable {
            model,
            fixed_batch,
            signature: Signature { inputs, outputs },
        })
    }
}

impl Servable for OnnxServable {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn run(&self, inputs: &[Tensor]) -> ServeResult<Vec<Tensor>> {
        let rows = self.signature.check(inputs)?;
        let step = match self.fixed_batch {
            Some(b) if b != rows => b,
            _ => return Ok(self.model.call(inputs)?),
        };
        if step == 0 || rows % step != 0 {
            return Err(ServeError::invalid(format!(
                "the model takes batches of {step} rows; {rows} rows is not a multiple"
            )));
        }
        Ok(self.model.call_in_chunks(inputs, step)?)
    }

    fn kind(&self) -> &'static str {
        "onnx"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_few_and_tight() {
        assert_eq!(bucket(1), 1);
        assert_eq!(bucket(3), 4);
        assert_eq!(bucket(16), 16);
        assert_eq!(bucket(17), 32);
        assert_eq!(bucket(250), 256);
        let distinct: std::collections::BTreeSet<usize> = (1..=MAX_CHUNK).map(bucket).collect();
        assert_eq!(distinct.len(), 20);
    }

    #[test]
    fn tflite_names_drop_the_converter_decoration() {
        assert_eq!(tflite_name("serving_default_pixels:0"), "pixels");
        assert_eq!(
            tflite_name("StatefulPartitionedCall:0"),
            "StatefulPartitionedCall"
        );
        assert_eq!(tflite_name("dense_1"), "dense_1");
    }

    #[test]
    fn repeated_names_get_suffixes() {
        let mut n = vec!["a".to_string(), "a".into(), "a_1".into(), "b".into()];
        dedupe(&mut n);
        assert_eq!(n, ["a", "a_2", "a_1", "b"]);
    }
}
