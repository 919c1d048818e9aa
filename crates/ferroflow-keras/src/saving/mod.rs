//! ferroflow's native model format: a directory holding
//! - `config.json`: the model in Keras 3's `serialize_keras_object` shape, plus
//!   `compile_config` (optimizer, loss, metrics);
//! - `model.weights.safetensors`: every weight, keyed by its path (`dense/kernel`);
//! - `optimizer.safetensors`: the optimiser's slots and iteration count, so training
//!   resumes exactly;
//! - `layer_state.safetensors` and `assets/`: what layers learn outside their weights
//!   (vocabularies, idf weights; see [`layer_state`]).
//!
//! Loading validates the config, every weight name, shape and dtype before any value is
//! assigned: a corrupt or mismatched file is an error and leaves the model untouched.

pub mod keras_file;
pub mod keras_optimizer;
pub mod keras_weights;
pub mod layer_state;
pub mod tensor_file;

use crate::layer::{LayerExt, Weight};
use crate::losses;
use crate::models::serialize::layer_json;
use crate::models::Model;
use crate::optimizers::Optimizer;
use ferroflow_core::autodiff::pause_recording;
use ferroflow_core::{Error, Result, ResultExt, Tensor, Variable};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

const CONFIG: &str = "config.json";
const WEIGHTS: &str = "model.weights.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

fn format_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

/// Unique keys for the weights, in order (`dense/kernel`; a repeat gets `#1`...).
fn weight_keys(weights: &[Weight]) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    weights
        .iter()
        .map(|w| {
            let name = w.variable.name().to_string();
            let n = seen.entry(name.clone()).or_insert(0);
            let key = if *n == 0 { name } else { format!("{name}#{n}") };
            *n += 1;
            key
        })
        .collect()
}

/// Checks `values` against the model's weights; returns them in weight order.
fn match_weights(
    path: &Path,
    weights: &[Weight],
    values: Vec<(String, Tensor)>,
) -> Result<Vec<Tensor>> {
    let keys = weight_keys(weights);
    let mut by_name: HashMap<String, Tensor> = values.into_iter().collect();
    let mut out = Vec::with_capacity(weights.len());
    for (w, k) in weights.iter().zip(&keys) {
        let t = by_name
            .remove(k)
            .ok_or_else(|| format_err(path, format!("missing weight '{k}'")))?;
        if t.shape() != w.variable.shape() || t.dtype() != w.variable.dtype() {
            return Err(format_err(
                path,
                format!(
                    "weight '{k}' is {:?} {} in the file but {:?} {} in the model",
                    t.shape(),
                    t.dtype(),
                    w.variable.shape(),
                    w.variable.dtype()
                ),
            ));
        }
        out.push(t);
    }
    if let Some(extra) = by_name.keys().next() {
        return Err(format_err(
            path,
            format!("the file has weight '{extra}', which the model does not"),
        ));
    }
    Ok(out)
}

/// Assigns checked values to variables, outside any gradient tape.
fn assign_all<'a>(vars: impl IntoIterator<Item = &'a Variable>, values: &[Tensor]) -> Result<()> {
    let _pause = pause_recording();
    for (v, t) in vars.into_iter().zip(values) {
        v.assign(t)?;
    }
    Ok(())
}

impl Model {
    /// Saves the weights alone (`save_weights`): Keras 3's HDF5 layout for a path ending
    /// in `.weights.h5`, otherwise a safetensors file. Every worker of a multi-worker
    /// strategy writes where it is asked (TF's `save_weights` does too); saved models and
    /// checkpoints are the chief's alone.
    pub fn save_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if is_h5(path) {
            return keras_file::save_keras_weights(self, path);
        }
        let weights = self.weights();
        let tensors: Vec<(String, Tensor)> = weight_keys(&weights)
            .into_iter()
            .zip(&weights)
            .map(|(k, w)| (k, w.variable.read_untracked()))
            .collect();
        let meta = HashMap::from([("format".to_string(), "ferroflow-weights".to_string())]);
        tensor_file::write(path, &tensors, meta)
    }

    /// Loads weights saved by [`Model::save_weights`] or by Keras (`.weights.h5`)
    /// (`load_weights`); names and shapes must match, and nothing changes unless all do.
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if is_h5(path) {
            return keras_file::load_keras_weights(self, path);
        }
        let (values, _) = tensor_file::read(path)?;
        let weights = self.weights();
        let ordered = match_weights(path, &weights, values)?;
        assign_all(weights.iter().map(|w| &w.variable), &ordered)
    }

    /// Saves the whole model: to a Keras 3 `.keras` archive when the path ends in
    /// `.keras` (Python Keras loads it), otherwise to directory `dir` in ferroflow's format
    /// (config, safetensors weights, optimiser state). Under a multi-worker strategy only
    /// the chief writes (every worker may call it with the same path, as TF's examples
    /// do); the other workers' calls write nothing.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        if !self.is_chief() {
            return Ok(());
        }
        let dir = dir.as_ref();
        if dir.extension().is_some_and(|e| e == "keras") {
            return keras_file::save_keras(self, dir);
        }
        let mut config = layer_json(self.net.as_ref());
        if let Some(c) = &self.compiled {
            let loss: Vec<Value> = c
                .losses
                .iter()
                .map(|l| losses::to_json(l.as_ref()))
                .collect();
            let compile = json!({
                "optimizer": {"module": "keras.optimizers", "class_name": c.optimizer.name(),
                              "config": c.optimizer.get_config(), "registered_name": null},
                "loss": if loss.len() == 1 { loss[0].clone() } else { Value::Array(loss) },
                "loss_weights": c.loss_weights,
                "metrics": c.metrics,
            });
            if let Value::Object(m) = &mut config {
                m.insert("compile_config".into(), compile);
            }
        }
        check_serializable(&config)?;
        let text =
            serde_json::to_string_pretty(&config).map_err(|e| format_err(dir, e.to_string()))?;
        // The directory is written whole beside `dir` and swapped in: killed at any moment,
        // `dir` holds the old model or the new one.
        let owned = [
            CONFIG,
            WEIGHTS,
            OPTIMIZER,
            layer_state::STATE,
            layer_state::ASSETS,
        ];
        ferroflow_core::atomic_file::replace_dir(dir, &owned, |new| {
            ferroflow_core::atomic_file::write_atomic(new.join(CONFIG), text.as_bytes())?;
            self.save_weights(new.join(WEIGHTS))?;
            layer_state::write(self.net.as_ref(), new)?;
            self.save_optimizer_state(new)
        })
    }

    /// Writes the optimiser's slots and step count beside the weights (compiled models).
    fn save_optimizer_state(&self, dir: &Path) -> Result<()> {
        if let Some(c) = &self.compiled {
            let weights = self.net.trainable_variables();
            let mut tensors = Vec::new();
            for v in &weights {
                for (slot, t) in c.optimizer.slots_of(v) {
                    tensors.push((format!("{}/{slot}", v.name()), t));
                }
            }
            let meta = HashMap::from([
                (
                    "iterations".to_string(),
                    c.optimizer.iterations().to_string(),
                ),
                (
                    "learning_rate".to_string(),
                    c.optimizer.learning_rate().to_string(),
                ),
            ]);
            tensor_file::write(&dir.join(OPTIMIZER), &tensors, meta)?;
        }
        Ok(())
    }
}

/// Whether a weights path names an HDF5 file (`.h5`, `.hdf5`).
fn is_h5(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "h5" || e == "hdf5")
}

/// Lambda layers have no config; refuse to write a model that could not be loaded.
fn check_serializable(v: &Value) -> Result<()> {
    match v {
        Value::Object(m) => {
            if m.get("class_name").and_then(Value::as_str) == Some("Lambda") {
                return Err(Error::invalid("save", "a model with a Lambda layer cannot be saved (its code has no config); save_weights works"));
            }
            m.values().try_for_each(check_serializable)
        }
        Value::Array(a) => a.iter().try_for_each(check_serializable),
        _ => Ok(()),
    }
}

/// Loads a model (`keras.models.load_model`): a directory saved by [`Model::save`]
/// (compiled when it was saved compiled, with its optimiser state), a Keras 3 `.keras`
/// archive, or a legacy Keras `.h5` file.
pub fn load_model(path: impl AsRef<Path>) -> Result<Model> {
    let path = path.as_ref();
    match path.extension().and_then(|e| e.to_str()) {
        Some("keras") => return keras_file::load_keras(path),
        Some("h5" | "hdf5") if path.is_file() => return keras_file::load_legacy_h5(path),
        _ => {}
    }
    if !path.exists() {
        return Err(format_err(
            path,
            "no such file or directory (a model is a ferroflow model directory, a .keras or a .h5 file)",
        ));
    }
    let dir = path;
    let cfg_path = dir.join(CONFIG);
    if !cfg_path.is_file() {
        return Err(format_err(
            path,
            format!("not a saved model: no {CONFIG} in it (a model is a ferroflow model directory, a .keras or a .h5 file)"),
        ));
    }
    let text = std::fs::read_to_string(&cfg_path).map_err(io(&cfg_path))?;
    let config: Value =
        serde_json::from_str(&text).map_err(|e| format_err(&cfg_path, e.to_string()))?;
    let weights_path = dir.join(WEIGHTS);
    let weight_bytes = std::fs::metadata(&weights_path)
        .map_err(io(&weights_path))?
        .len();
    let mut model = model_from_config(&config, weight_bytes, path)?;
    model.load_weights(dir.join(WEIGHTS))?;
    layer_state::restore(model.net.as_ref(), dir)?;
    if let Some(cc) = config
        .get("compile_config")
        .filter(|c| has_compile_config(c))
    {
        compile_from_config(&mut model, cc)?;
        model.restore_optimizer_state(dir, false)?;
    }
    Ok(model)
}

impl Model {
    /// Reads the optimiser state [`Model::save`] wrote into `dir`, when there is one and
    /// the model is compiled; the learning rate too when `learning_rate` is set.
    fn restore_optimizer_state(&mut self, dir: &Path, learning_rate: bool) -> Result<()> {
        let opt_path = dir.join(OPTIMIZER);
        let vars = self.net.trainable_variables();
        let (true, Some(optimizer)) = (
            opt_path.exists(),
            self.compiled.as_mut().map(|c| &mut c.optimizer),
        ) else {
            return Ok(());
        };
        let (slots, meta) = tensor_file::read(&opt_path)?;
        let mut by_name: HashMap<String, Tensor> = slots.into_iter().collect();
        for v in vars {
            let names = optimizer.slot_names();
            let found: Option<Vec<Tensor>> = names
                .iter()
                .map(|s| by_name.remove(&format!("{}/{s}", v.name())))
                .collect();
            if let Some(found) = found {
                optimizer.set_slots(&v, found)?;
            }
        }
        if let Some(it) = meta.get("iterations").and_then(|s| s.parse().ok()) {
            optimizer.set_iterations(it);
        }
        if let (true, false, Some(lr)) = (
            learning_rate,
            optimizer.has_schedule(),
            meta.get("learning_rate").and_then(|s| s.parse().ok()),
        ) {
            optimizer.set_learning_rate(lr);
        }
        Ok(())
    }

    /// Writes a training checkpoint into `dir`: the weights, the optimiser state and the
    /// `extra` files (name, bytes), all replaced at once (killed at any moment, `dir`
    /// holds the previous checkpoint or this one). Only the chief of a multi-worker
    /// strategy writes.
    pub fn save_checkpoint(&self, dir: impl AsRef<Path>, extra: &[(&str, Vec<u8>)]) -> Result<()> {
        if !self.is_chief() {
            return Ok(());
        }
        let mut owned = vec![WEIGHTS, OPTIMIZER];
        owned.extend(extra.iter().map(|(n, _)| *n));
        ferroflow_core::atomic_file::replace_dir(dir.as_ref(), &owned, |new| {
            self.save_weights(new.join(WEIGHTS))?;
            self.save_optimizer_state(new)?;
            for (name, bytes) in extra {
                ferroflow_core::atomic_file::write_atomic(new.join(name), bytes)?;
            }
            Ok(())
        })
    }

    /// Restores the weights and optimiser state (learning rate included) of a checkpoint
    /// [`Model::save_checkpoint`] wrote.
    pub fn restore_checkpoint(&mut self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        self.load_weights(dir.join(WEIGHTS))?;
        self.restore_optimizer_state(dir, true)
    }
}

/// Builds the model a saved `config.json` describes, its weight allocations bounded by the
/// size of the weights that will fill them; `path` labels errors.
fn model_from_config(config: &Value, weight_bytes: u64, path: &Path) -> Result<Model> {
    crate::layer::with_weight_allowance(weight_bytes, || {
        crate::models::serialize::model_from_json(config)
    })
    .with_context(|| format!("loading {}", path.display()))
}

/// Loads a ferroflow model directory for inference from the bytes of its two files,
/// `config.json` and `model.weights.safetensors` (what a browser fetches); the optimiser
/// state is not needed. `path` labels errors.
pub fn load_model_from_bytes(config: &[u8], weights: &[u8], path: &Path) -> Result<Model> {
    let cfg_path = path.join(CONFIG);
    let config: Value =
        serde_json::from_slice(config).map_err(|e| format_err(&cfg_path, e.to_string()))?;
    let model = model_from_config(&config, weights.len() as u64, path)?;
    let weights_path = path.join(WEIGHTS);
    let (values, _) = tensor_file::from_bytes(weights, &weights_path)?;
    let vars = model.weights();
    let ordered = match_weights(&weights_path, &vars, values)?;
    assign_all(vars.iter().map(|w| &w.variable), &ordered)?;
    Ok(model)
}

/// The file names of a ferroflow model directory: its config and its weights.
pub const SAVED_MODEL_FILES: [&str; 2] = [CONFIG, WEIGHTS];

/// The format of a saved model (a ferroflow model directory, a `.keras` archive or a
/// legacy `.h5` file) and its version, as JSON (`format`, `format_version`, ...).
pub fn file_format(path: impl AsRef<Path>) -> Result<Value> {
    let path = path.as_ref();
    if path.is_dir() {
        return Ok(json!({
            "format": "ferroflow_saved_model",
            "format_version": 1,
            "optimizer_state": path.join(OPTIMIZER).exists(),
        }));
    }
    keras_file::file_format(path)
}

/// Whether a `compile_config` says the model was compiled (Keras writes `{}` or `null`
/// for one that was not).
pub(crate) fn has_compile_config(cc: &Value) -> bool {
    cc.as_object()
        .is_some_and(|m| m.get("loss").is_some_and(|l| !l.is_null()))
}

/// Compiles `model` from a Keras `compile_config` (optimizer, loss, loss weights, metrics).
pub(crate) fn compile_from_config(model: &mut Model, cc: &Value) -> Result<()> {
    let opt = &cc["optimizer"];
    let optimizer = match opt {
        Value::String(name) => Optimizer::from_config(name, &Value::Null)?,
        _ => Optimizer::from_config(opt["class_name"].as_str().unwrap_or("adam"), &opt["config"])?,
    };
    let loss: Vec<Arc<dyn losses::Loss>> = match &cc["loss"] {
        Value::Array(a) => a.iter().map(losses::from_json).collect::<Result<_>>()?,
        v => vec![losses::from_json(v)?],
    };
    let metrics: Vec<String> = cc["metrics"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let metric_refs: Vec<&str> = metrics.iter().map(String::as_str).collect();
    model.compile(optimizer, losses_arg(loss), &metric_refs)?;
    if let Some(w) = cc["loss_weights"].as_array() {
        model.set_loss_weights(w.iter().filter_map(Value::as_f64).collect())?;
    }
    Ok(())
}

fn losses_arg(l: Vec<Arc<dyn losses::Loss>>) -> crate::models::model::LossArg {
    l.into()
}
