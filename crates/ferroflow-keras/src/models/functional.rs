//! `Functional`: a model defined by connecting symbolic tensors from `Input`s to outputs
//! (multiple inputs and outputs, shared layers, nested models).

use super::network::{GraphNode, LayerGraph, Network, SummaryRow};
use super::symbolic::{KerasTensor, Node};
use crate::config::{dims_json, Map};
use crate::layer::{format_dims, CallContext, Layer, LayerBase, LayerExt, LayerRef, TensorSpec};
use ferroflow_core::{Error, Result, ResultExt, Tensor};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Where a node input comes from: (position of the producing node, output index).
type Source = (usize, usize);

/// A functional model's graph, in execution order.
pub struct Functional {
    base: LayerBase,
    nodes: Vec<Arc<Node>>,
    /// For each node, where each of its inputs comes from.
    sources: Vec<Vec<Source>>,
    inputs: Vec<Source>,
    outputs: Vec<Source>,
    layers: Vec<LayerRef>,
}

fn node_key(n: &Arc<Node>) -> usize {
    Arc::as_ptr(n) as usize
}

impl Functional {
    /// Builds the graph from `inputs` (from [`super::Input`]) to `outputs`.
    ///
    /// Every tensor the outputs depend on must trace back to the given inputs.
    pub fn new(
        inputs: &[KerasTensor],
        outputs: &[KerasTensor],
        name: Option<&str>,
    ) -> Result<Self> {
        if inputs.is_empty() || outputs.is_empty() {
            return Err(Error::invalid(
                "Model",
                "a model needs at least one input and one output",
            ));
        }
        for t in inputs {
            if t.node.layer.class_name() != "InputLayer" {
                return Err(Error::invalid(
                    "Model",
                    format!(
                        "inputs must come from Input(...); '{}' is the output of a {} layer",
                        t.node.layer.name(),
                        t.node.layer.class_name()
                    ),
                ));
            }
        }
        // Depth-first post-order from the outputs gives a topological order.
        let mut order: Vec<Arc<Node>> = Vec::new();
        let mut pos: HashMap<usize, usize> = HashMap::new();
        let mut visiting: Vec<(Arc<Node>, bool)> = outputs
            .iter()
            .rev()
            .map(|t| (t.node.clone(), false))
            .collect();
        let input_keys: Vec<usize> = inputs.iter().map(|t| node_key(&t.node)).collect();
        while let Some((node, expanded)) = visiting.pop() {
            let key = node_key(&node);
            if pos.contains_key(&key) {
                continue;
            }
            if expanded {
                pos.insert(key, order.len());
                order.push(node);
                continue;
            }
            if node.inputs.is_empty() && !input_keys.contains(&key) {
                return Err(Error::invalid(
                    "Model",
                    format!(
                        "output depends on input '{}', which is not among the model's inputs",
                        node.layer.name()
                    ),
                ));
            }
            visiting.push((node.clone(), true));
            for t in node.inputs.iter().rev() {
                if !pos.contains_key(&node_key(&t.node)) {
                    visiting.push((t.node.clone(), false));
                }
            }
        }
        let source = |t: &KerasTensor| -> Result<Source> {
            pos.get(&node_key(&t.node))
                .map(|&p| (p, t.index))
                .ok_or_else(|| {
                    Error::invalid(
                        "Model",
                        format!("input '{}' is not used by any output", t.node.layer.name()),
                    )
                })
        };
        let sources = order
            .iter()
            .map(|n| n.inputs.iter().map(source).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        let mut layers: Vec<LayerRef> = Vec::new();
        for n in &order {
            if !layers.iter().any(|l| Arc::ptr_eq(l, &n.layer)) {
                layers.push(n.layer.clone());
            }
        }
        let mut names = std::collections::HashSet::new();
        for l in &layers {
            if !names.insert(l.name().to_string()) {
                return Err(Error::invalid(
                    "Model",
                    format!(
                        "two different layers are named '{}'; layer names must be unique",
                        l.name()
                    ),
                ));
            }
        }
        Ok(Functional {
            base: LayerBase::new("Functional", name),
            inputs: inputs.iter().map(source).collect::<Result<Vec<_>>>()?,
            outputs: outputs.iter().map(source).collect::<Result<Vec<_>>>()?,
            sources,
            nodes: order,
            layers,
        })
    }

    /// The layers in Keras's `model.layers` order: by depth from the inputs, and within a
    /// depth by first visit in a depth-first walk from the outputs (Keras's `_map_graph`).
    pub fn keras_order(&self) -> Vec<LayerRef> {
        let n = self.nodes.len();
        let layer_key = |p: usize| Arc::as_ptr(&self.nodes[p].layer) as *const () as usize;
        let mut first_visit: HashMap<usize, usize> = HashMap::new();
        let mut finished = vec![false; n];
        let mut post: Vec<usize> = Vec::with_capacity(n);
        // Iterative depth-first walk: (node, inputs expanded?).
        for &(out, _) in &self.outputs {
            let mut stack = vec![(out, false)];
            while let Some((p, expanded)) = stack.pop() {
                if finished[p] {
                    continue;
                }
                if expanded {
                    finished[p] = true;
                    post.push(p);
                    continue;
                }
                let next = first_visit.len();
                first_visit.entry(layer_key(p)).or_insert(next);
                stack.push((p, true));
                for &(src, _) in self.sources[p].iter().rev() {
                    if !finished[src] {
                        stack.push((src, false));
                    }
                }
            }
        }
        let mut node_depth = vec![0usize; n];
        let mut layer_depth: HashMap<usize, usize> = HashMap::new();
        for &p in post.iter().rev() {
            let depth = node_depth[p].max(layer_depth.get(&layer_key(p)).copied().unwrap_or(0));
            layer_depth.insert(layer_key(p), depth);
            node_depth[p] = depth;
            for &(src, _) in &self.sources[p] {
                node_depth[src] = node_depth[src].max(depth + 1);
            }
        }
        let mut ordered: Vec<(usize, i64, LayerRef)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for &p in &post {
            let key = layer_key(p);
            if seen.insert(key) {
                let index = first_visit.get(&key).map_or(-1, |&i| i as i64);
                ordered.push((layer_depth[&key], index, self.nodes[p].layer.clone()));
            }
        }
        for &(p, _) in &self.inputs {
            if seen.insert(layer_key(p)) {
                ordered.push((0, -1, self.nodes[p].layer.clone()));
            }
        }
        ordered.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        ordered.into_iter().map(|(_, _, l)| l).collect()
    }

    /// Runs the graph on concrete tensors.
    pub fn run(&self, inputs: &[Tensor], training: bool) -> Result<Vec<Tensor>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::invalid(
                "Model",
                format!(
                    "model '{}' expects {} input(s), got {}",
                    self.base.name(),
                    self.inputs.len(),
                    inputs.len()
                ),
            ));
        }
        let mut values: Vec<Vec<Tensor>> = vec![Vec::new(); self.nodes.len()];
        for (i, (&(p, _), x)) in self.inputs.iter().zip(inputs).enumerate() {
            let spec = &self.nodes[p].outputs[0];
            check_input(self.base.name(), i, self.nodes[p].layer.name(), spec, x)?;
            values[p] = vec![x.clone()];
        }
        // Each node's outputs are dropped after their last reader, so activations do not
        // all stay alive until the end of the call.
        let mut last_use = vec![0usize; self.nodes.len()];
        for (p, srcs) in self.sources.iter().enumerate() {
            for &(q, _) in srcs {
                last_use[q] = last_use[q].max(p);
            }
        }
        for &(q, _) in &self.outputs {
            last_use[q] = usize::MAX;
        }
        let ctx = CallContext { training };
        // The mask of each node's first output (Keras's `_keras_mask`), none for inputs.
        let mut masks: Vec<Option<Tensor>> = vec![None; self.nodes.len()];
        for (p, node) in self.nodes.iter().enumerate() {
            if node.inputs.is_empty() {
                continue;
            }
            let args: Vec<Tensor> = self.sources[p]
                .iter()
                .map(|&(q, i)| values[q][i].clone())
                .collect();
            let arg_masks: Vec<Option<Tensor>> = self.sources[p]
                .iter()
                .map(|&(q, i)| if i == 0 { masks[q].clone() } else { None })
                .collect();
            let (out, mask) = crate::layer::call_layer_masked(&node.layer, &args, &arg_masks, ctx)
                .with_context(|| {
                    format!(
                        "calling layer '{}' ({})",
                        node.layer.name(),
                        node.layer.class_name()
                    )
                })?;
            values[p] = out;
            masks[p] = mask;
            for &(q, _) in &self.sources[p] {
                if last_use[q] == p {
                    values[q] = Vec::new();
                    masks[q] = None;
                }
            }
        }
        self.outputs
            .iter()
            .map(|&(p, i)| {
                values[p].get(i).cloned().ok_or_else(|| {
                    Error::invalid(
                        "Model",
                        format!(
                            "layer '{}' returned too few outputs",
                            self.nodes[p].layer.name()
                        ),
                    )
                })
            })
            .collect()
    }

    fn history(&self, (p, i): Source) -> Value {
        let n = &self.nodes[p];
        json!([n.layer.name(), n.index, i])
    }
}

/// Checks a model input against its spec (rank, known dims), naming the input.
pub(crate) fn check_input(
    model: &str,
    _index: usize,
    name: &str,
    spec: &TensorSpec,
    x: &Tensor,
) -> Result<()> {
    let ok = spec.shape.len() == x.rank()
        && spec
            .shape
            .iter()
            .zip(x.shape())
            .all(|(d, &a)| d.is_none_or(|d| d == a));
    if !ok {
        let got: Vec<Option<usize>> = x.shape().iter().map(|&d| Some(d)).collect();
        return Err(Error::ModelInput {
            model: model.to_string(),
            msg: format!(
                "input '{name}' expects shape {}, got {}",
                format_dims(&spec.shape),
                format_dims(&got)
            ),
        });
    }
    Ok(())
}

impl Layer for Functional {
    fn as_network(&self) -> Option<&dyn Network> {
        Some(self)
    }

    fn class_name(&self) -> &'static str {
        "Functional"
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
        self.run(inputs, ctx.training)
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        for (i, (&(p, _), s)) in self.inputs.iter().zip(inputs).enumerate() {
            let want = &self.nodes[p].outputs[0];
            let ok = want.shape.len() == s.shape.len()
                && want
                    .shape
                    .iter()
                    .zip(&s.shape)
                    .all(|(a, b)| a.is_none() || b.is_none() || a == b);
            if !ok {
                return Err(Error::invalid(
                    "Model",
                    format!(
                        "model '{}': input {i} expects {}, got {}",
                        self.base.name(),
                        format_dims(&want.shape),
                        format_dims(&s.shape)
                    ),
                ));
            }
        }
        Ok(self
            .outputs
            .iter()
            .map(|&(p, i)| self.nodes[p].outputs[i].clone())
            .collect())
    }

    fn number_of_inputs(&self) -> Option<usize> {
        Some(self.inputs.len())
    }

    fn sublayers(&self) -> Vec<LayerRef> {
        self.layers.clone()
    }

    fn config(&self) -> Map {
        let mut layers = Vec::new();
        for l in &self.keras_order() {
            let mut entry = super::serialize::layer_json(l.as_ref());
            let nodes: Vec<Value> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| Arc::ptr_eq(&n.layer, l) && !n.inputs.is_empty())
                .map(|(p, n)| {
                    let kts: Vec<Value> = self.sources[p]
                        .iter()
                        .zip(&n.inputs)
                        .map(|(&src, t)| {
                            json!({"class_name": "__keras_tensor__", "config": {
                                "shape": dims_json(t.shape()), "dtype": t.dtype().name(),
                                "keras_history": self.history(src)}})
                        })
                        .collect();
                    json!({"args": l.node_args(kts), "kwargs": {}})
                })
                .collect();
            if let Value::Object(m) = &mut entry {
                m.insert("name".into(), Value::from(l.name()));
                m.insert("inbound_nodes".into(), Value::Array(nodes));
            }
            layers.push(entry);
        }
        let mut m = Map::new();
        m.insert("layers".into(), Value::Array(layers));
        m.insert(
            "input_layers".into(),
            Value::Array(self.inputs.iter().map(|&s| self.history(s)).collect()),
        );
        m.insert(
            "output_layers".into(),
            Value::Array(self.outputs.iter().map(|&s| self.history(s)).collect()),
        );
        m
    }
}

impl Network for Functional {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn keras_layers(&self) -> Vec<LayerRef> {
        self.keras_order()
    }

    fn layer_graph(&self) -> Result<LayerGraph> {
        let nodes = self
            .nodes
            .iter()
            .zip(&self.sources)
            .map(|(node, sources)| {
                let input = node.inputs.is_empty();
                GraphNode {
                    layer: (!input).then(|| node.layer.clone()),
                    name: node.layer.name().to_string(),
                    inputs: sources.clone(),
                    outputs: node.outputs.clone(),
                }
            })
            .collect();
        Ok(LayerGraph {
            nodes,
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
        })
    }

    fn input_specs(&self) -> Option<Vec<TensorSpec>> {
        Some(
            self.inputs
                .iter()
                .map(|&(p, _)| self.nodes[p].outputs[0].clone())
                .collect(),
        )
    }

    fn input_names(&self) -> Vec<String> {
        self.inputs
            .iter()
            .map(|&(p, _)| self.nodes[p].layer.name().to_string())
            .collect()
    }

    fn output_names(&self) -> Vec<String> {
        self.outputs
            .iter()
            .map(|&(p, _)| self.nodes[p].layer.name().to_string())
            .collect()
    }

    fn summary_rows(&self) -> Vec<SummaryRow> {
        self.layers
            .iter()
            .map(|l| {
                let mine: Vec<(usize, &Arc<Node>)> = self
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| Arc::ptr_eq(&n.layer, l))
                    .collect();
                let shapes: Vec<String> = mine
                    .iter()
                    .flat_map(|(_, n)| n.outputs.iter().map(|s| format_dims(&s.shape)))
                    .collect();
                let connected: Vec<String> = mine
                    .iter()
                    .flat_map(|(p, _)| {
                        self.sources[*p].iter().map(|&(q, i)| {
                            let n = &self.nodes[q];
                            format!("{}[{}][{}]", n.layer.name(), n.index, i)
                        })
                    })
                    .collect();
                SummaryRow {
                    name: l.name().to_string(),
                    class: l.class_name().to_string(),
                    output_shape: shapes.join(", "),
                    params: l.count_params(),
                    connected: Some(if connected.is_empty() {
                        "-".to_string()
                    } else {
                        connected.join(", ")
                    }),
                }
            })
            .collect()
    }
}
