//! The [`Network`] trait shared by Sequential, Functional and subclassed models, and the
//! Keras-style `summary()` table.

use crate::layer::{Layer, LayerExt, LayerRef, TensorSpec};
use ferroflow_core::{Error, Result};

/// One row of a model summary.
pub struct SummaryRow {
    /// Layer name.
    pub name: String,
    /// Layer class.
    pub class: String,
    /// Output shape(s), formatted like Keras.
    pub output_shape: String,
    /// Parameter count.
    pub params: usize,
    /// "Connected to" column (functional models only).
    pub connected: Option<String>,
}

/// A layer made of layers: what [`crate::models::Model`] trains, saves and summarises.
pub trait Network: Layer {
    /// The network as `Any`, to reach the concrete type (`Model::add` on Sequential).
    fn as_any(&self) -> &dyn std::any::Any;
    /// The specs of the model's inputs, when known.
    fn input_specs(&self) -> Option<Vec<TensorSpec>>;
    /// Input names (InputLayer names), in order.
    fn input_names(&self) -> Vec<String>;
    /// Output names (the producing layers' names), in order.
    fn output_names(&self) -> Vec<String>;
    /// The rows of `summary()`.
    fn summary_rows(&self) -> Vec<SummaryRow>;
    /// The layers in the order Keras lists them (`model.layers`): a functional model's
    /// InputLayers included, in Keras's depth-then-traversal order. Keras names weight
    /// groups in `.keras` files by this order.
    fn keras_layers(&self) -> Vec<LayerRef> {
        self.sublayers()
    }
    /// The graph of layer calls, for tools that translate a model (exporters). Models
    /// defined by code (subclassed) have none.
    fn layer_graph(&self) -> Result<LayerGraph> {
        Err(Error::invalid(
            "Model",
            format!(
                "model '{}' ({}) has no layer graph: only Sequential and functional models can be walked",
                self.name(),
                self.class_name()
            ),
        ))
    }
}

/// One node of a [`LayerGraph`]: a model input, or one call of a layer.
pub struct GraphNode {
    /// The layer called; `None` for a model input.
    pub layer: Option<LayerRef>,
    /// The input's name (model inputs) or the layer's name.
    pub name: String,
    /// Where each input comes from: (node index, output index).
    pub inputs: Vec<(usize, usize)>,
    /// Specs of the node's outputs (batch dimension unknown).
    pub outputs: Vec<TensorSpec>,
}

/// A built model as a graph of layer calls in execution order.
pub struct LayerGraph {
    /// Nodes in a topological order; model inputs come first.
    pub nodes: Vec<GraphNode>,
    /// The model's inputs, in order.
    pub inputs: Vec<(usize, usize)>,
    /// The model's outputs, in order.
    pub outputs: Vec<(usize, usize)>,
}

/// Keras's byte-size format: `116.00 B`, `1.17 MB`.
fn readable_size(bytes: f64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.2} {}", units[i])
}

/// Splits `text` into lines of at most `width` characters, at spaces where it can and
/// inside a word longer than a line (so no cell ever overflows its column).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let chars: Vec<char> = word.chars().collect();
        for piece in chars.chunks(width) {
            let piece: String = piece.iter().collect();
            let cur = lines.last_mut().expect("one line");
            let len = cur.chars().count();
            if len > 0 && len + 1 + piece.chars().count() > width {
                lines.push(piece);
            } else {
                if len > 0 {
                    cur.push(' ');
                }
                cur.push_str(&piece);
            }
        }
    }
    lines
}

/// Column widths (borders' padding included) that fit the headers and the cells, each
/// capped so the table stays within a terminal; longer cells wrap.
fn column_widths(headers: &[&str], cells: &[Vec<String>], caps: &[usize]) -> Vec<usize> {
    headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let longest = cells
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0);
            longest.max(h.chars().count()).min(caps[i]) + 2
        })
        .collect()
}

/// Renders the summary table of `net` as Keras 3 prints it.
pub fn summary_string<N: Network + ?Sized>(net: &N) -> String {
    let rows = net.summary_rows();
    let functional = rows.iter().any(|r| r.connected.is_some());
    let mut headers = vec!["Layer (type)", "Output Shape", "Param #"];
    if functional {
        headers.push("Connected to");
    }
    let values: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut vals = vec![
                format!("{} ({})", r.name, r.class),
                r.output_shape.clone(),
                r.params.to_string(),
            ];
            if functional {
                vals.push(r.connected.clone().unwrap_or_else(|| "-".into()));
            }
            vals
        })
        .collect();
    let widths = column_widths(&headers, &values, &[40, 28, 12, 36]);
    let line = |l: &str, m: &str, r: &str, fill: &str| {
        let parts: Vec<String> = widths.iter().map(|&w| fill.repeat(w)).collect();
        format!("{l}{}{r}\n", parts.join(m))
    };
    let cells = |vals: &[String], heavy: bool| -> String {
        let wrapped: Vec<Vec<String>> = vals
            .iter()
            .zip(&widths)
            .map(|(v, &w)| wrap(v, w - 2))
            .collect();
        let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
        let bar = if heavy { "┃" } else { "│" };
        let mut out = String::new();
        for h in 0..height {
            out.push_str(bar);
            for (i, (col, &w)) in wrapped.iter().zip(&widths).enumerate() {
                let text = col.get(h).cloned().unwrap_or_default();
                let pad = (w - 1).saturating_sub(text.chars().count());
                if i == 2 {
                    out.push_str(&format!("{}{text} ", " ".repeat(pad)));
                } else {
                    out.push_str(&format!(" {text}{}", " ".repeat(pad)));
                }
                out.push_str(bar);
            }
            out.push('\n');
        }
        out
    };
    let mut s = format!("Model: \"{}\"\n", net.name());
    s.push_str(&line("┏", "┳", "┓", "━"));
    s.push_str(&cells(
        &headers.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        true,
    ));
    s.push_str(&line("┡", "╇", "┩", "━"));
    for (i, vals) in values.iter().enumerate() {
        s.push_str(&cells(vals, false));
        if i + 1 < rows.len() {
            s.push_str(&line("├", "┼", "┤", "─"));
        }
    }
    s.push_str(&line("└", "┴", "┘", "─"));
    let total = net.count_params();
    let trainable: usize = net
        .trainable_variables()
        .iter()
        .map(|v| v.shape().iter().product::<usize>())
        .sum();
    let bytes = |n: usize| readable_size(n as f64 * 4.0);
    s.push_str(&format!(" Total params: {total} ({})\n", bytes(total)));
    s.push_str(&format!(
        " Trainable params: {trainable} ({})\n",
        bytes(trainable)
    ));
    s.push_str(&format!(
        " Non-trainable params: {} ({})\n",
        total - trainable,
        bytes(total - trainable)
    ));
    s
}
