//! Keras's own files: `.keras` archives (zip of `metadata.json`, `config.json`,
//! `model.weights.h5`), `.weights.h5` files, legacy full-model `.h5` files and
//! `model.to_json()` strings.
//!
//! Reading checks the whole config and every weight (path, shape, count) before any value
//! is assigned; an unknown layer class or option is an error naming it.

use super::keras_optimizer;
use super::keras_weights::{read_weight, read_weights, write_weights, Layout};
use super::{assign_all, compile_from_config, format_err, io};
use crate::layer::LayerExt;
use crate::models::serialize::{layer_json, model_from_json};
use crate::models::Model;
use ferroflow_core::{DType, Error, Result, ResultExt, Tensor, Variable};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::Path;

/// The Keras version whose file layout ferroflow writes.
pub const KERAS_VERSION: &str = "3.15.1";

const CONFIG: &str = "config.json";
const METADATA: &str = "metadata.json";
const WEIGHTS: &str = "model.weights.h5";

fn parse_config(text: &str, path: &Path) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| format_err(path, format!("config is not JSON: {e}")))
}

/// Rebuilds a model from the Keras config of a file whose weights take `weight_bytes`
/// (the layers' weights may not claim more), naming the file in errors.
fn model_from_config(config: &Value, path: &Path, weight_bytes: u64) -> Result<Model> {
    crate::layer::with_weight_allowance(weight_bytes, || model_from_json(config))
        .with_context(|| format!("loading {}", path.display()))
}

/// The most bytes one member of a `.keras` archive may hold once decompressed.
pub const MAX_MEMBER_BYTES: u64 = 16 << 30;

/// The most a deflated member may expand (deflate itself cannot exceed about 1032:1,
/// so a header claiming more is lying).
const MAX_RATIO: u64 = 1100;

/// Reads a file of the archive into memory, checking the sizes its header claims
/// against the limits before reading and the bytes that arrive against the claim.
fn read_member<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    path: &Path,
) -> Result<Vec<u8>> {
    let f = zip
        .by_name(name)
        .map_err(|e| format_err(path, format!("no {name} in the archive ({e})")))?;
    let (size, packed) = (f.size(), f.compressed_size());
    if size > MAX_MEMBER_BYTES {
        return Err(format_err(
            path,
            format!("{name} claims {size} bytes, over the limit of {MAX_MEMBER_BYTES}"),
        ));
    }
    if size > 1 << 16 && size / packed.max(1) > MAX_RATIO {
        return Err(format_err(
            path,
            format!(
                "{name} claims {size} bytes from {packed} compressed (a ratio over {MAX_RATIO}:1: a zip bomb or a corrupt header)"
            ),
        ));
    }
    let mut buf = Vec::with_capacity(size.min(1 << 16) as usize);
    f.take(size + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format_err(path, format!("reading {name}: {e}")))?;
    if buf.len() as u64 != size {
        return Err(format_err(
            path,
            format!("{name} holds more or fewer bytes than the {size} its header claims"),
        ));
    }
    Ok(buf)
}

/// Loads a Keras 3 `.keras` archive: the model from `config.json`, its weights from
/// `model.weights.h5`, compiled when the archive carries a `compile_config`.
pub fn load_keras(path: &Path) -> Result<Model> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    load_keras_from(std::io::BufReader::new(file), path)
}

/// [`load_keras`] from the bytes of an archive; `path` labels errors.
pub fn load_keras_bytes(bytes: &[u8], path: &Path) -> Result<Model> {
    load_keras_from(std::io::Cursor::new(bytes), path)
}

fn load_keras_from<R: Read + std::io::Seek>(archive: R, path: &Path) -> Result<Model> {
    let mut zip = zip::ZipArchive::new(archive)
        .map_err(|e| format_err(path, format!("not a .keras (zip) archive: {e}")))?;
    let config = parse_config(
        &String::from_utf8_lossy(&read_member(&mut zip, CONFIG, path)?),
        path,
    )?;
    let weights = read_member(&mut zip, WEIGHTS, path)?;
    let mut model = model_from_config(&config, path, weights.len() as u64)?;
    let h5 = hdf5_pure::File::from_bytes(weights)
        .map_err(|e| format_err(path, format!("{WEIGHTS}: {e}")))?;
    let layout = Layout::of_model(model.net.as_ref())?;
    let values = read_weights(&h5, &path.join(WEIGHTS), &layout)?;
    assign_all(layout.variables.iter().map(|(_, v)| v), &values)?;
    restore_assets(&mut zip, &layout, path)?;
    super::keras_weights::restore_named_state(&h5, &path.join(WEIGHTS), &layout)?;
    if let Some(cc) = config
        .get("compile_config")
        .filter(|c| super::has_compile_config(c))
    {
        compile_from_config(&mut model, cc)?;
        restore_optimizer(&mut model, &h5, &layout, path)?;
    }
    Ok(model)
}

/// Hands every leaf layer the files under its `assets/{layer path}/` folder.
fn restore_assets<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    layout: &Layout,
    path: &Path,
) -> Result<()> {
    let names: Vec<String> = zip.file_names().map(String::from).collect();
    for (p, layer) in &layout.leaves {
        let folder = format!("assets/{p}/");
        for name in names.iter().filter(|n| n.starts_with(&folder)) {
            let file = &name[folder.len()..];
            if file.is_empty() || file.ends_with('/') {
                continue;
            }
            let bytes = read_member(zip, name, path)?;
            layer
                .restore_asset(file, &bytes)
                .map_err(|e| e.context(format!("{}: {name}", path.display())))?;
        }
    }
    Ok(())
}

/// Restores the optimiser's state from `optimizer/vars` when the file has it for this
/// optimiser; a different count is skipped with a warning, as Keras does.
fn restore_optimizer(
    model: &mut Model,
    h5: &hdf5_pure::File,
    layout: &Layout,
    path: &Path,
) -> Result<()> {
    let Ok(group) = h5.group(keras_optimizer::GROUP) else {
        return Ok(());
    };
    let n = group
        .datasets()
        .map_err(|e| format_err(path, e.to_string()))?
        .len();
    let expected = keras_optimizer::expected_len(model, layout).unwrap_or(0);
    if n != expected {
        eprintln!(
            "warning: {}: skipping the optimizer state: the file has {n} variables, this optimizer {expected}",
            path.display()
        );
        return Ok(());
    }
    let dtypes = std::iter::once(DType::I64).chain(std::iter::repeat(DType::F32));
    // No optimizer variable is larger than the largest model variable.
    let largest = layout
        .variables
        .iter()
        .map(|(_, v)| v.shape().iter().product::<usize>())
        .max()
        .unwrap_or(1)
        .max(1);
    let values = (0..n)
        .zip(dtypes)
        .map(|(i, dt)| {
            let p = format!("{}/{i}", keras_optimizer::GROUP);
            super::keras_weights::read_dataset(h5, &p, dt, largest)
                .map_err(|e| format_err(path, format!("'{p}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    keras_optimizer::restore(model, layout, values)
}

/// The model's config as Keras writes it in `config.json` (with `compile_config` when
/// compiled).
pub fn keras_config(model: &Model) -> Value {
    let mut config = layer_json(model.net.as_ref());
    if let (Some(c), Value::Object(m)) = (&model.compiled, &mut config) {
        let loss: Vec<Value> = c
            .losses
            .iter()
            .map(|l| crate::losses::to_json(l.as_ref()))
            .collect();
        m.insert(
            "compile_config".into(),
            json!({
                "optimizer": {"module": "keras.optimizers", "class_name": c.optimizer.name(),
                              "config": c.optimizer.get_config(), "registered_name": null},
                "loss": if loss.len() == 1 { loss[0].clone() } else { Value::Array(loss) },
                "loss_weights": c.loss_weights,
                "metrics": c.metrics,
                "weighted_metrics": null,
                "run_eagerly": c.run_eagerly,
                "steps_per_execution": 1,
                "jit_compile": false,
            }),
        );
    }
    config
}

/// Writes a Keras 3 `.keras` archive that `keras.saving.load_model` reads.
pub fn save_keras(model: &Model, path: &Path) -> Result<()> {
    let config = keras_config(model);
    super::check_serializable(&config)?;
    let layout = Layout::of_model(model.net.as_ref())?;
    let optimizer: Vec<(String, Tensor)> = keras_optimizer::state(model, &layout)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| (format!("{}/{i}", keras_optimizer::GROUP), t))
        .collect();
    let weights = write_weights(&layout, &optimizer)?;
    let metadata = json!({"keras_version": KERAS_VERSION, "date_saved": date_saved()});
    let archive = || -> std::io::Result<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let assets = layout.leaves.iter().flat_map(|(p, layer)| {
            layer
                .assets()
                .into_iter()
                .map(move |(file, bytes)| (format!("assets/{p}/{file}"), bytes))
        });
        let members = [
            (METADATA.to_string(), metadata.to_string().into_bytes()),
            (CONFIG.to_string(), config.to_string().into_bytes()),
            (WEIGHTS.to_string(), weights),
        ];
        for (name, bytes) in members.into_iter().chain(assets) {
            zip.start_file(name, opts)?;
            zip.write_all(&bytes)?;
        }
        Ok(zip.finish()?.into_inner())
    };
    let bytes = archive().map_err(io(path))?;
    ferroflow_core::atomic_file::write_atomic(path, &bytes)
}

/// `YYYY-MM-DD@HH:MM:SS` in UTC, as Keras stamps `metadata.json`.
fn date_saved() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}@{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Loads weights from a Keras `.weights.h5` / `.h5` weights file (`model.save_weights`,
/// Keras 3's layout or the legacy one by layer name); names and shapes must match, and
/// nothing changes unless all do.
pub fn load_keras_weights(model: &Model, path: &Path) -> Result<()> {
    let h5 = hdf5_pure::File::open(path).map_err(|e| format_err(path, e.to_string()))?;
    let root_attrs = h5
        .root()
        .attrs()
        .map_err(|e| format_err(path, e.to_string()))?;
    if root_attrs.contains_key("layer_names") {
        // The legacy layout (Keras 2, and the weights keras.applications downloads).
        let (vars, values) = legacy_layer_weights(model, &h5, "", path)?;
        return assign_all(&vars, &values);
    }
    let layout = Layout::of_model(model.net.as_ref())?;
    let values = read_weights(&h5, path, &layout)?;
    assign_all(layout.variables.iter().map(|(_, v)| v), &values)
}

/// Writes a Keras 3 `.weights.h5` file.
pub fn save_keras_weights(model: &Model, path: &Path) -> Result<()> {
    let layout = Layout::of_model(model.net.as_ref())?;
    let bytes = write_weights(&layout, &[])?;
    ferroflow_core::atomic_file::write_atomic(path, &bytes)
}

/// Rebuilds a model from `model.to_json()` (fresh weights, as Keras's `model_from_json`).
pub fn model_from_json_str(json: &str) -> Result<Model> {
    let config: Value = serde_json::from_str(json)
        .map_err(|e| Error::invalid("model_from_json", format!("not JSON: {e}")))?;
    model_from_json(&config)
}

fn attr_string(
    attrs: &std::collections::HashMap<String, hdf5_pure::AttrValue>,
    key: &str,
) -> Option<String> {
    use hdf5_pure::AttrValue as A;
    match attrs.get(key)? {
        A::String(s) | A::VarLenString(s) | A::AsciiString(s) | A::VarLenAsciiString(s) => {
            Some(s.clone())
        }
        _ => None,
    }
}

fn attr_strings(
    attrs: &std::collections::HashMap<String, hdf5_pure::AttrValue>,
    key: &str,
) -> Option<Vec<String>> {
    use hdf5_pure::AttrValue as A;
    match attrs.get(key)? {
        A::VarLenAsciiStringArray(v)
        | A::VarLenStringArray(v)
        | A::StringArray(v)
        | A::AsciiStringArray(v) => Some(v.clone()),
        A::F64Array(v) if v.is_empty() => Some(Vec::new()),
        _ => None,
    }
}

/// Reads the weights of a legacy Keras HDF5 group (`layer_names`, then per layer
/// `weight_names`), checked against `model` layer by layer, without assigning them.
/// Each layer's weights are trainable then non-trainable, as Keras's legacy loader
/// assigns them.
fn legacy_layer_weights(
    model: &Model,
    h5: &hdf5_pure::File,
    group_path: &str,
    path: &Path,
) -> Result<(Vec<Variable>, Vec<Tensor>)> {
    let group = if group_path.is_empty() {
        h5.root()
    } else {
        h5.group(group_path)
            .map_err(|e| format_err(path, format!("no {group_path} group: {e}")))?
    };
    let attrs = group.attrs().map_err(|e| format_err(path, e.to_string()))?;
    let layer_names = attr_strings(&attrs, "layer_names").ok_or_else(|| {
        format_err(
            path,
            "no layer_names attribute: not a Keras HDF5 weights file",
        )
    })?;
    let mut vars: Vec<Variable> = Vec::new();
    let mut values: Vec<Tensor> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for name in &layer_names {
        let g = group
            .group(name)
            .map_err(|e| format_err(path, format!("layer group '{name}': {e}")))?;
        let gattrs = g.attrs().map_err(|e| format_err(path, e.to_string()))?;
        let weight_names = attr_strings(&gattrs, "weight_names").unwrap_or_default();
        // Layers without weights (inputs, activations) are listed too; Keras skips them.
        if weight_names.is_empty()
            && model
                .get_layer(name)
                .map_or(true, |l| l.weights().is_empty())
        {
            continue;
        }
        let layer_vars: Vec<Variable> = if name == "top_level_model_weights" {
            Vec::new()
        } else {
            let layer = model.get_layer(name).map_err(|_| {
                format_err(
                    path,
                    format!(
                        "the file has weights for layer '{name}', which the model does not have"
                    ),
                )
            })?;
            seen.insert(name.clone());
            let mut v = layer.trainable_variables();
            v.extend(layer.non_trainable_variables());
            v
        };
        if layer_vars.len() != weight_names.len() {
            return Err(format_err(
                path,
                format!(
                    "layer '{name}' has {} weights in the model but {} in the file",
                    layer_vars.len(),
                    weight_names.len()
                ),
            ));
        }
        for (v, w) in layer_vars.into_iter().zip(&weight_names) {
            let ds_path = if group_path.is_empty() {
                format!("{name}/{w}")
            } else {
                format!("{group_path}/{name}/{w}")
            };
            values.push(read_weight(h5, &ds_path, &v, path)?);
            vars.push(v);
        }
    }
    let missing: Vec<String> = model
        .layers()
        .iter()
        .filter(|l| !l.weights().is_empty() && !seen.contains(l.name()))
        .map(|l| l.name().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(format_err(
            path,
            format!(
                "the file has no weights for layer(s) {}",
                missing.join(", ")
            ),
        ));
    }
    Ok((vars, values))
}

/// Loads a legacy full-model `.h5` file (`model.save("model.h5")`): the config from the
/// `model_config` attribute, weights per layer from `model_weights/<layer>` in
/// `weight_names` order (trainable, then non-trainable, as Keras's legacy loader assigns
/// them).
pub fn load_legacy_h5(path: &Path) -> Result<Model> {
    let size = std::fs::metadata(path).map_err(io(path))?.len();
    let h5 = hdf5_pure::File::open(path).map_err(|e| format_err(path, e.to_string()))?;
    legacy_h5_model(&h5, path, size)
}

/// [`load_legacy_h5`] from the bytes of a file; `path` labels errors.
pub fn load_legacy_h5_bytes(bytes: Vec<u8>, path: &Path) -> Result<Model> {
    let size = bytes.len() as u64;
    let h5 = hdf5_pure::File::from_bytes(bytes).map_err(|e| format_err(path, e.to_string()))?;
    legacy_h5_model(&h5, path, size)
}

fn legacy_h5_model(h5: &hdf5_pure::File, path: &Path, size: u64) -> Result<Model> {
    let root_attrs = h5
        .root()
        .attrs()
        .map_err(|e| format_err(path, e.to_string()))?;
    let config_text = attr_string(&root_attrs, "model_config")
        .ok_or_else(|| format_err(path, "no 'model_config' attribute: not a Keras full-model .h5 file (a weights-only file loads with load_weights)"))?;
    let config = parse_config(&config_text, path)?;
    let mut model = model_from_config(&config, path, size)?;
    let (vars, values) = legacy_layer_weights(&model, h5, "model_weights", path)?;
    assign_all(&vars, &values)?;
    if let Some(tc) = attr_string(&root_attrs, "training_config") {
        let cc = parse_config(&tc, path)?;
        // Legacy files describe the optimizer as `optimizer_config`.
        let cc = json!({"optimizer": cc["optimizer_config"], "loss": cc["loss"], "metrics": cc["metrics"], "loss_weights": cc["loss_weights"]});
        if let Err(e) = compile_from_config(&mut model, &cc) {
            // As Keras does, a training config that cannot be rebuilt leaves the model
            // uncompiled (with its weights loaded), with a warning.
            eprintln!(
                "warning: {}: the model is not compiled: {e}",
                path.display()
            );
        }
    }
    Ok(model)
}

/// The format of a Keras file and who wrote it, as JSON: `format` (`keras` or
/// `keras_h5`), `format_version` (the Keras version the file names) and, when the file
/// says, `backend` and `date_saved`.
pub fn file_format(path: &Path) -> Result<Value> {
    let is_archive = path.extension().is_some_and(|e| e == "keras");
    if is_archive {
        let file = std::fs::File::open(path).map_err(io(path))?;
        let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
            .map_err(|e| format_err(path, format!("not a .keras (zip) archive: {e}")))?;
        let meta: Value = read_member(&mut zip, METADATA, path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        return Ok(json!({
            "format": "keras",
            "format_version": meta["keras_version"],
            "date_saved": meta["date_saved"],
        }));
    }
    let h5 = hdf5_pure::File::open(path).map_err(|e| format_err(path, e.to_string()))?;
    let attrs = h5
        .root()
        .attrs()
        .map_err(|e| format_err(path, e.to_string()))?;
    Ok(json!({
        "format": "keras_h5",
        "format_version": attr_string(&attrs, "keras_version"),
        "backend": attr_string(&attrs, "backend"),
    }))
}
