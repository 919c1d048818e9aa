//! What every exporter starts from: a closure traced over example inputs, optimised with
//! the `Basic` passes, and the facts of each value: its shape, dtype and which axes follow
//! a dynamic (`None`) input axis.
//!
//! The closure is traced at two sizes of every `None` axis; the two graphs must have the
//! same structure, and a value's axis whose size differs between them follows the input.

use crate::graph::{Graph, Node, NodeKind};
use crate::{optimize, ConcreteFunction, OptLevel, TensorSpec};
use ferroflow_core::{DType, Error, Result, Tensor};

/// What export knows of one value: its shape in the first trace, which of its axes follow
/// a dynamic input axis (they differed between the two traces), and its dtype.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueMeta {
    /// Sizes in the first trace.
    pub shape: Vec<usize>,
    /// Axes whose size follows a dynamic input axis.
    pub dynamic: Vec<bool>,
    /// Element type.
    pub dtype: DType,
}

/// A traced inference graph and the facts of its values (`meta[node][output]`).
pub struct ExportGraph {
    /// The graph traced at the first example sizes.
    pub graph: Graph,
    /// The facts of every node's outputs.
    pub meta: Vec<Vec<ValueMeta>>,
}

impl ExportGraph {
    /// The one input axis that is dynamic, as (input index, axis): a constant that follows
    /// the batch is built from it. When several inputs have a dynamic batch (axis 0) and no
    /// other axis is dynamic, they are one batch (a Keras model's inputs share it) and the
    /// first one's is taken. `None` when no axis is dynamic or other axes are too.
    pub fn dynamic_input_axis(&self) -> Option<(usize, usize)> {
        let mut axes = self
            .graph
            .nodes
            .iter()
            .zip(&self.meta)
            .filter_map(|(n, m)| match n.kind {
                NodeKind::Input(k) => Some((k, &m[0])),
                _ => None,
            })
            .flat_map(|(k, m)| {
                m.dynamic
                    .iter()
                    .enumerate()
                    .filter(|(_, &d)| d)
                    .map(move |(a, _)| (k, a))
            });
        let first = axes.next()?;
        let rest: Vec<(usize, usize)> = axes.collect();
        (rest.is_empty() || (first.1 == 0 && rest.iter().all(|&(_, a)| a == 0))).then_some(first)
    }

    /// Lowers every node in order: `lower(i, node, inputs)` gets what its inputs lowered
    /// to and returns what each of its outputs lowers to. A node that fails is listed, and
    /// the nodes that read it are skipped (their failure would only echo it); all
    /// failures come back in one error naming `model`. Else, `[node][output]`.
    pub fn lower_nodes<S: Clone>(
        &self,
        exporter: &'static str,
        model: &str,
        mut lower: impl FnMut(usize, &Node, Vec<S>) -> Result<Vec<S>>,
    ) -> Result<Vec<Vec<S>>> {
        let mut slots: Vec<Vec<Option<S>>> = Vec::with_capacity(self.graph.nodes.len());
        let mut problems = Vec::new();
        for (i, node) in self.graph.nodes.iter().enumerate() {
            let n = node.outputs.len();
            let inputs: Option<Vec<S>> = node
                .inputs
                .iter()
                .map(|v| slots[v.node][v.output].clone())
                .collect();
            let outs = match inputs.map(|ins| lower(i, node, ins)) {
                None => vec![None; n],
                Some(Ok(outs)) if outs.len() == n => outs.into_iter().map(Some).collect(),
                Some(result) => {
                    let why = match result {
                        Err(e) => e.one_line(),
                        Ok(outs) => format!("lowered to {} values for {n} outputs", outs.len()),
                    };
                    problems.push(format!("node {i} ({}): {why}", node.kind.name()));
                    vec![None; n]
                }
            };
            slots.push(outs);
        }
        if !problems.is_empty() {
            return Err(Error::invalid(
                exporter,
                format!(
                    "'{model}' has {} node(s) that do not convert:\n  {}",
                    problems.len(),
                    problems.join("\n  ")
                ),
            ));
        }
        Ok(slots
            .into_iter()
            .map(|s| s.into_iter().flatten().collect())
            .collect())
    }
}

/// How to trace for export.
#[derive(Clone, Copy, Debug)]
pub struct ExportTrace {
    /// The exporter, for errors (`"onnx export"`).
    pub exporter: &'static str,
    /// Keep `None` axes of the specs dynamic (else they are fixed at 1).
    pub dynamic_batch: bool,
    /// Replace variable reads by their current values and fold what then becomes
    /// constant (formats that carry no variables).
    pub freeze_variables: bool,
}

/// The sizes a `None` axis takes in the two traces.
pub const EXAMPLE_SIZES: (usize, usize) = (2, 3);

/// Traces `f` over examples of `specs` for export (see the module docs).
pub fn trace_for_export(
    name: &str,
    f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    specs: &[TensorSpec],
    how: ExportTrace,
) -> Result<ExportGraph> {
    let trace = |size: usize| -> Result<Graph> {
        let args = specs
            .iter()
            .map(|s| example(s, if how.dynamic_batch { size } else { 1 }))
            .collect::<Result<Vec<_>>>()?;
        let (cf, _) = ConcreteFunction::trace(name, |x| f(x), &args, OptLevel::Basic)?;
        let mut g = cf.graph().clone();
        if how.freeze_variables {
            g = freeze(g);
        }
        Ok(g)
    };
    let dynamic = how.dynamic_batch && specs.iter().any(|s| s.shape.contains(&None));
    let graph = trace(EXAMPLE_SIZES.0)?;
    let meta = if dynamic {
        value_meta(&graph, &trace(EXAMPLE_SIZES.1)?, how.exporter)?
    } else {
        value_meta(&graph, &graph, how.exporter)?
    };
    Ok(ExportGraph { graph, meta })
}

/// The graph with every variable read replaced by the variable's value, re-optimised so
/// that what depends only on weights folds.
fn freeze(mut g: Graph) -> Graph {
    for n in &mut g.nodes {
        if let NodeKind::ReadVariable(v) = &n.kind {
            n.kind = NodeKind::Const(v.value());
        }
    }
    optimize(g, OptLevel::Basic).0
}

/// A tensor that fits `spec` with `size` on its `None` axes (zeros: valid as indices and
/// as data).
fn example(spec: &TensorSpec, size: usize) -> Result<Tensor> {
    let shape: Vec<usize> = spec.shape.iter().map(|d| d.unwrap_or(size)).collect();
    let n: usize = shape.iter().product();
    Tensor::from_vec(vec![0.0f32; n], &shape)?.cast(spec.dtype)
}

/// The facts of every node's outputs (`[node][output]`), from graph `a` traced at the
/// first sizes and `b` at the second (the same graph when nothing is dynamic).
fn value_meta(a: &Graph, b: &Graph, exporter: &'static str) -> Result<Vec<Vec<ValueMeta>>> {
    let differ = |why: String| {
        Error::invalid(
            exporter,
            format!(
                "the traced graph changes with the batch size ({why}); export with a fixed batch size"
            ),
        )
    };
    if a.nodes.len() != b.nodes.len() || a.outputs != b.outputs {
        return Err(differ(format!(
            "{} nodes at one size, {} at another",
            a.nodes.len(),
            b.nodes.len()
        )));
    }
    a.nodes
        .iter()
        .zip(&b.nodes)
        .enumerate()
        .map(|(i, (na, nb))| {
            if what(&na.kind) != what(&nb.kind) || na.inputs != nb.inputs {
                return Err(differ(format!(
                    "node {i} is {} at one size, {} at another",
                    na.kind.name(),
                    nb.kind.name()
                )));
            }
            na.outputs
                .iter()
                .zip(&nb.outputs)
                .map(|(va, vb)| {
                    if va.shape.len() != vb.shape.len() || va.dtype != vb.dtype {
                        return Err(differ(format!("node {i}'s output changes rank or dtype")));
                    }
                    Ok(ValueMeta {
                        shape: va.shape.clone(),
                        dynamic: va
                            .shape
                            .iter()
                            .zip(&vb.shape)
                            .map(|(x, y)| x != y)
                            .collect(),
                        dtype: va.dtype,
                    })
                })
                .collect()
        })
        .collect()
}

/// What a node is, without the attributes that may follow the batch (a reshape's shape).
fn what(kind: &NodeKind) -> String {
    match kind {
        NodeKind::Op { name, .. } => (*name).to_string(),
        NodeKind::Const(t) => format!("const {} rank {}", t.dtype(), t.rank()),
        other => other.name(),
    }
}
