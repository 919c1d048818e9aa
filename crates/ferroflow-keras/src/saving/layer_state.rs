//! What a layer learns outside its weights, in ferroflow's model directory: the named
//! state of [`Layer::saved_state`] (a lookup's idf weights, an index's candidates) in
//! `layer_state.safetensors`, keyed `{layer path}/{name}`, and the files of
//! [`Layer::assets`] (a learned vocabulary) under `assets/{layer path}/`, the same paths a
//! `.keras` archive uses.

use super::keras_weights::Layout;
use super::tensor_file;
use crate::layer::{Layer, LayerRef};
use ferroflow_core::{Error, Result, ResultExt};
use std::collections::HashMap;
use std::path::Path;

/// The state file's name.
pub const STATE: &str = "layer_state.safetensors";
/// The assets folder's name.
pub const ASSETS: &str = "assets";

/// Writes the state and assets of every leaf layer of `model` into `dir`; nothing when
/// no layer has any.
pub fn write(model: &dyn Layer, dir: &Path) -> Result<()> {
    let layout = Layout::of_model(model)?;
    let mut state = Vec::new();
    for (p, layer) in &layout.leaves {
        state.extend(
            layer
                .saved_state()
                .into_iter()
                .map(|(rel, t)| (format!("{p}/{rel}"), t)),
        );
        for (file, bytes) in layer.assets() {
            let path = dir.join(ASSETS).join(p).join(&file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(super::io(parent))?;
            }
            ferroflow_core::atomic_file::write_atomic(&path, &bytes)?;
        }
    }
    if !state.is_empty() {
        tensor_file::write(&dir.join(STATE), &state, HashMap::new())?;
    }
    Ok(())
}

/// The leaf layer whose folder holds `key` (`{layer path}/{rest}`), and the rest.
fn owner<'a>(layout: &'a Layout, key: &'a str) -> Option<(&'a LayerRef, &'a str)> {
    layout
        .leaves
        .iter()
        .filter_map(|(p, layer)| {
            let rest = key.strip_prefix(p.as_str())?.strip_prefix('/')?;
            Some((p.len(), layer, rest))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, layer, rest)| (layer, rest))
}

/// Restores what [`write`] wrote into `dir` (a directory without these files restores
/// nothing); an entry no layer claims is an error naming it.
pub fn restore(model: &dyn Layer, dir: &Path) -> Result<()> {
    let layout = Layout::of_model(model)?;
    let state_path = dir.join(STATE);
    if state_path.is_file() {
        let (tensors, _) = tensor_file::read(&state_path)?;
        for (key, t) in tensors {
            let (layer, rest) = owner(&layout, &key).ok_or_else(|| {
                Error::invalid(
                    "load_model",
                    format!("{}: no layer owns state '{key}'", state_path.display()),
                )
            })?;
            layer
                .restore_state(rest, t)
                .with_context(|| format!("{}: {key}", state_path.display()))?;
        }
    }
    let assets = dir.join(ASSETS);
    let mut files = Vec::new();
    collect_files(&assets, "", &mut files)?;
    for rel in files {
        let (layer, rest) = owner(&layout, &rel).ok_or_else(|| {
            Error::invalid(
                "load_model",
                format!("{}: no layer owns asset '{rel}'", assets.display()),
            )
        })?;
        let path = assets.join(&rel);
        let bytes = std::fs::read(&path).map_err(super::io(&path))?;
        layer
            .restore_asset(rest, &bytes)
            .with_context(|| path.display().to_string())?;
    }
    Ok(())
}

/// The files under `dir` (recursively), as `/`-joined paths relative to it, sorted.
fn collect_files(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            collect_files(&e.path(), &rel, out)?;
        } else if kind.is_file() {
            out.push(rel);
        }
    }
    Ok(())
}
