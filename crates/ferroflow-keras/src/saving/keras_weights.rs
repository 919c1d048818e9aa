//! Keras 3's weights file (`model.weights.h5` inside `.keras` archives, and
//! `*.weights.h5`): every layer's variables under a group named after the layer's class
//! (`layers/dense_1/vars/0`), as Keras's `saving_lib` lays them out.
//!
//! Keras names a model's layers by class, not by layer name: `snake_case(class)` with a
//! counter in `model.layers` order (`dense`, `dense_1`...). A layer's own variables are
//! `vars/0..n` (trainable first); recurrent layers keep theirs in `cell/vars`, wrappers
//! under `forward_layer`/`backward_layer`/`layer`, MultiHeadAttention under
//! `query_dense`/`key_dense`/`value_dense`/`output_dense`, nested models under `layers/`.

use crate::layer::{Layer, LayerExt, LayerRef};
use ferroflow_core::{DType, Error, Result, Tensor, Variable};
use hdf5_pure::{AttrValue, FileBuilder, GroupBuilder};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Keras's `to_snake_case` of a class name (`GlobalAveragePooling2D` →
/// `global_average_pooling2d`, `LSTM` → `lstm`, `SimpleRNN` → `simple_rnn`).
pub fn snake_case(name: &str) -> String {
    let c: Vec<char> = name.chars().collect();
    // Step 1: "_" before an uppercase letter followed by lowercase ones (not at the start).
    let mut s1: Vec<char> = Vec::with_capacity(c.len() + 4);
    for i in 0..c.len() {
        if i > 0
            && c[i].is_ascii_uppercase()
            && c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase())
        {
            s1.push('_');
        }
        s1.push(c[i]);
    }
    // Step 2: "_" between a lowercase letter and an uppercase one.
    let mut out = String::with_capacity(s1.len() + 4);
    for i in 0..s1.len() {
        if i > 0 && s1[i].is_ascii_uppercase() && s1[i - 1].is_ascii_lowercase() {
            out.push('_');
        }
        out.push(s1[i]);
    }
    out.to_lowercase()
}

/// A layer's own weights in Keras's order: trainable, then non-trainable.
fn own_variables(layer: &dyn Layer) -> Vec<Variable> {
    let own = layer.base().own_weights();
    let (t, nt): (Vec<_>, Vec<_>) = own.into_iter().partition(|w| w.trainable);
    t.into_iter().chain(nt).map(|w| w.variable).collect()
}

/// Every variable of a model with its path in a Keras weights file, plus the path of every
/// group Keras writes (for layers without variables too).
#[derive(Default)]
pub struct Layout {
    /// `(dataset path, variable)`, in model order.
    pub variables: Vec<(String, Variable)>,
    /// `(group path, layer name)` of every `vars` group.
    pub groups: Vec<(String, String)>,
    /// `(path, layer)` of every layer that is not a container: where its named state
    /// (`{path}/vars/{name}`) and its assets (`assets/{path}/`) live.
    pub leaves: Vec<(String, LayerRef)>,
}

impl Layout {
    /// The layout of `model` (a Sequential, functional or subclassed network).
    pub fn of_model(model: &dyn Layer) -> Result<Layout> {
        let mut l = Layout::default();
        l.model(model, "")?;
        Ok(l)
    }

    fn join(prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        }
    }

    fn vars(&mut self, path: &str, name: &str, vars: Vec<Variable>) {
        let g = Self::join(path, "vars");
        for (i, v) in vars.into_iter().enumerate() {
            self.variables.push((format!("{g}/{i}"), v));
        }
        self.groups.push((g, name.to_string()));
    }

    fn model(&mut self, model: &dyn Layer, path: &str) -> Result<()> {
        let net = model.as_network().ok_or_else(|| {
            Error::invalid(
                "keras weights",
                format!("'{}' is not a model", model.name()),
            )
        })?;
        self.vars(path, model.name(), own_variables(model));
        let mut used: HashMap<String, usize> = HashMap::new();
        for layer in net.keras_layers() {
            let base = snake_case(layer.class_name());
            let n = used.entry(base.clone()).or_insert(0);
            let name = if *n == 0 {
                base.clone()
            } else {
                format!("{base}_{n}")
            };
            *n += 1;
            self.layer(&layer, &Self::join(path, &format!("layers/{name}")))?;
        }
        Ok(())
    }

    fn layer(&mut self, layer: &LayerRef, path: &str) -> Result<()> {
        if layer.as_network().is_some() {
            return self.model(layer.as_ref(), path);
        }
        let subs = layer.sublayers();
        match layer.class_name() {
            "LSTM" | "GRU" | "SimpleRNN" => {
                self.vars(path, layer.name(), Vec::new());
                self.vars(&Self::join(path, "cell"), layer.name(), own_variables(layer.as_ref()));
            }
            "Bidirectional" if subs.len() == 2 => {
                self.vars(path, layer.name(), Vec::new());
                self.layer(&subs[0], &Self::join(path, "forward_layer"))?;
                self.layer(&subs[1], &Self::join(path, "backward_layer"))?;
            }
            "TimeDistributed" if subs.len() == 1 => {
                self.vars(path, layer.name(), Vec::new());
                self.layer(&subs[0], &Self::join(path, "layer"))?;
            }
            "MultiHeadAttention" => {
                let vars = own_variables(layer.as_ref());
                if !vars.len().is_multiple_of(4) {
                    return Err(Error::invalid(
                        "keras weights",
                        format!("MultiHeadAttention '{}' has {} weights, expected 4 projections", layer.name(), vars.len()),
                    ));
                }
                self.vars(path, layer.name(), Vec::new());
                let per = vars.len() / 4;
                for (k, proj) in ["query_dense", "key_dense", "value_dense", "output_dense"].iter().enumerate() {
                    let part = vars[k * per..(k + 1) * per].to_vec();
                    self.vars(&Self::join(path, proj), proj, part);
                }
            }
            class if !subs.is_empty() => {
                return Err(Error::invalid(
                    "keras weights",
                    format!("layer '{}' of class {class} holds other layers, which .keras weight files cannot lay out yet", layer.name()),
                ))
            }
            _ => {
                self.vars(path, layer.name(), own_variables(layer.as_ref()));
                self.leaves.push((path.to_string(), layer.clone()));
            }
        }
        Ok(())
    }
}

fn h5_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

/// Every dataset path in the file under `group`, recursively.
fn dataset_paths(
    g: &hdf5_pure::Group,
    prefix: &str,
    out: &mut Vec<String>,
) -> std::result::Result<(), hdf5_pure::Error> {
    for d in g.datasets()? {
        out.push(Layout::join(prefix, &d));
    }
    for s in g.groups()? {
        dataset_paths(&g.group(&s)?, &Layout::join(prefix, &s), out)?;
    }
    Ok(())
}

/// Reads one dataset as a tensor of `dtype` (float datasets of other widths convert); a
/// dataset whose shape claims more than `max_elements` values is an error before any of
/// it is read.
pub fn read_dataset(
    file: &hdf5_pure::File,
    path: &str,
    dtype: DType,
    max_elements: usize,
) -> std::result::Result<Tensor, String> {
    let ds = file.dataset(path).map_err(|e| e.to_string())?;
    let dims = ds.shape().map_err(|e| e.to_string())?;
    // The shape is what the file claims: check it before anything is read for it.
    let numel = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= max_elements as u64)
        .ok_or_else(|| {
            format!(
                "the dataset claims shape {dims:?}, more than the {max_elements} values expected"
            )
        })?;
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    debug_assert_eq!(numel as usize, shape.iter().product::<usize>());
    let t = match dtype {
        DType::F64 => Tensor::from_vec(ds.read_f64().map_err(|e| e.to_string())?, &shape),
        DType::I64 => Tensor::from_vec(ds.read::<i64>().map_err(|e| e.to_string())?, &shape),
        DType::I32 => Tensor::from_vec(ds.read::<i32>().map_err(|e| e.to_string())?, &shape),
        _ => Tensor::from_vec(ds.read_f32().map_err(|e| e.to_string())?, &shape)
            .and_then(|t| t.cast(dtype)),
    };
    t.map_err(|e| e.to_string())
}

/// Reads dataset `p` as the value of `v`: its dtype, and its shape or an error naming both
/// (`path` is the file, for messages).
pub fn read_weight(file: &hdf5_pure::File, p: &str, v: &Variable, path: &Path) -> Result<Tensor> {
    let t = read_dataset(file, p, v.dtype(), v.shape().iter().product())
        .map_err(|e| h5_err(path, format!("'{p}': {e}")))?;
    if t.shape() != v.shape() {
        return Err(h5_err(
            path,
            format!(
                "weight '{p}' is {:?} in the file but '{}' is {:?} in the model",
                t.shape(),
                v.name(),
                v.shape()
            ),
        ));
    }
    Ok(t)
}

/// Reads the values a Keras weights file holds for `model`, checking every path, shape and
/// count first; returns them in layout order without assigning anything.
pub fn read_weights(file: &hdf5_pure::File, path: &Path, layout: &Layout) -> Result<Vec<Tensor>> {
    let mut in_file = Vec::new();
    dataset_paths(&file.root(), "", &mut in_file).map_err(|e| h5_err(path, e))?;
    let expected: std::collections::HashSet<&str> =
        layout.variables.iter().map(|(p, _)| p.as_str()).collect();
    if let Some(extra) = in_file.iter().find(|p| {
        !p.starts_with("optimizer/")
            && !expected.contains(p.as_str())
            && named_state_of(layout, p).is_none()
    }) {
        return Err(h5_err(
            path,
            format!("the file has weight '{extra}', which this model does not (the architectures differ)"),
        ));
    }
    let present: std::collections::HashSet<&str> = in_file.iter().map(String::as_str).collect();
    let mut values = Vec::with_capacity(layout.variables.len());
    for (p, v) in &layout.variables {
        if !present.contains(p.as_str()) {
            return Err(h5_err(
                path,
                format!("missing weight '{p}' (for '{}')", v.name()),
            ));
        }
        values.push(read_weight(file, p, v, path)?);
    }
    Ok(values)
}

/// The leaf layer a dataset path belongs to as saved state (not one of its numbered
/// weights), and the path under the layer's group.
fn named_state_of<'a>(layout: &'a Layout, p: &'a str) -> Option<(&'a LayerRef, &'a str)> {
    layout.leaves.iter().find_map(|(path, layer)| {
        let rel = p.strip_prefix(path.as_str())?.strip_prefix('/')?;
        let weight = rel
            .strip_prefix("vars/")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        (!weight).then_some((layer, rel))
    })
}

/// Restores every leaf layer's named state (its `save_own_variables` entries) from a
/// weights file, after [`read_weights`] has checked the file.
pub fn restore_named_state(file: &hdf5_pure::File, path: &Path, layout: &Layout) -> Result<()> {
    let mut in_file = Vec::new();
    dataset_paths(&file.root(), "", &mut in_file).map_err(|e| h5_err(path, e))?;
    for p in &in_file {
        if let Some((layer, name)) = named_state_of(layout, p) {
            let t = read_dataset(file, p, DType::F32, MAX_STATE_ELEMENTS)
                .map_err(|e| h5_err(path, format!("{p}: {e}")))?;
            layer.restore_state(name, t)?;
        }
    }
    Ok(())
}

/// The most values one named state may hold (a lookup's idf weights: one per token).
const MAX_STATE_ELEMENTS: usize = 1 << 26;

/// A group tree to write: datasets and subgroups by name.
#[derive(Default)]
struct Tree {
    datasets: Vec<(String, Tensor)>,
    groups: BTreeMap<String, Tree>,
    name_attr: Option<String>,
}

impl Tree {
    fn at(&mut self, path: &str) -> &mut Tree {
        path.split('/')
            .filter(|s| !s.is_empty())
            .fold(self, |t, seg| t.groups.entry(seg.to_string()).or_default())
    }

    fn emit(self, g: &mut GroupBuilder) -> Result<()> {
        if let Some(n) = self.name_attr {
            g.set_attr("name", AttrValue::String(n));
        }
        for (name, t) in self.datasets {
            write_dataset(g.create_dataset(&name), &t)?;
        }
        for (name, sub) in self.groups {
            let mut child = g.create_group(&name);
            sub.emit(&mut child)?;
            g.add_group(child.finish());
        }
        Ok(())
    }
}

fn write_dataset(ds: &mut hdf5_pure::DatasetBuilder, t: &Tensor) -> Result<()> {
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    match t.dtype() {
        DType::F64 => ds.with_f64_data(&t.to_vec::<f64>()?),
        DType::I64 => ds.with_data(&t.to_vec::<i64>()?),
        DType::I32 => ds.with_data(&t.to_vec::<i32>()?),
        _ => ds.with_f32_data(&t.cast(DType::F32)?.to_vec::<f32>()?),
    };
    ds.with_shape(&shape);
    Ok(())
}

/// Writes a Keras weights file for `layout` to bytes, with `extra` datasets (the
/// optimiser's variables under `optimizer/vars`).
pub fn write_weights(layout: &Layout, extra: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let mut root = Tree::default();
    for (p, t) in extra {
        let (dir, leaf) = p.rsplit_once('/').unwrap_or(("", p));
        root.at(dir).datasets.push((leaf.to_string(), t.clone()));
    }
    for (g, name) in &layout.groups {
        root.at(g).name_attr = Some(name.clone());
    }
    for (p, v) in &layout.variables {
        let (dir, leaf) = p.rsplit_once('/').unwrap_or(("", p));
        root.at(dir)
            .datasets
            .push((leaf.to_string(), v.read_untracked()));
    }
    for (p, layer) in &layout.leaves {
        for g in layer.state_groups() {
            root.at(&format!("{p}/{g}"));
        }
        for (rel, t) in layer.saved_state() {
            let full = format!("{p}/{rel}");
            let (dir, leaf) = full.rsplit_once('/').unwrap_or(("", &full));
            root.at(dir).datasets.push((leaf.to_string(), t));
        }
    }
    let mut b = FileBuilder::new();
    for (name, sub) in std::mem::take(&mut root.groups) {
        let mut g = b.create_group(&name);
        sub.emit(&mut g)?;
        b.add_group(g.finish());
    }
    b.finish()
        .map_err(|e| Error::invalid("keras weights", format!("writing HDF5: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_snake_case_as_keras_does() {
        for (c, s) in [
            ("Dense", "dense"),
            ("BatchNormalization", "batch_normalization"),
            ("GlobalAveragePooling2D", "global_average_pooling2d"),
            ("Conv2DTranspose", "conv2d_transpose"),
            ("LSTM", "lstm"),
            ("SimpleRNN", "simple_rnn"),
            ("MultiHeadAttention", "multi_head_attention"),
            ("InputLayer", "input_layer"),
            ("ZeroPadding2D", "zero_padding2d"),
            ("GRU", "gru"),
        ] {
            assert_eq!(snake_case(c), s, "{c}");
        }
    }
}
