//! Traced graph → TFLite: anything `function` can trace (a Keras model of any kind, a plain
//! closure, an imported ONNX model) is traced with its variables frozen, every op is
//! lowered through the [`registry`](super::registry), and the model is cleaned up as the
//! Keras path is (biases, BatchNormalization and activations folded into the ops before
//! them).

use super::registry::{lower, Lowering, Operand};
use super::{fold, Builder};
use crate::ir::LiteModel;
use ferroflow_core::{Error, Result, Tensor};
use ferroflow_graph::export::{trace_for_export, ExportGraph, ExportTrace, ValueMeta};
use ferroflow_graph::{NodeKind, TensorSpec, Value};

/// Converts a closure over tensors of `specs` (`None` axes stay dynamic) into a float32
/// TFLite model, naming its inputs and outputs (`input_i` / `output_i` where names run
/// short). Every op that has no TFLite form is listed in one error.
pub fn from_function(
    name: &str,
    f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    specs: &[TensorSpec],
    input_names: &[String],
    output_names: &[String],
) -> Result<LiteModel> {
    let eg = trace_for_export(
        name,
        f,
        specs,
        ExportTrace {
            exporter: "tflite export",
            dynamic_batch: true,
            freeze_variables: true,
        },
    )?;
    from_graph(name, &eg, input_names, output_names)
}

/// Lowers a traced inference graph (see [`from_function`]).
pub fn from_graph(
    name: &str,
    eg: &ExportGraph,
    input_names: &[String],
    output_names: &[String],
) -> Result<LiteModel> {
    let g = &eg.graph;
    let mut b = Builder::new(name);
    // Inputs first: a constant that follows the batch reads the batch from one.
    let mut inputs: Vec<(usize, usize)> = Vec::new();
    for (i, node) in g.nodes.iter().enumerate() {
        if let NodeKind::Input(k) = node.kind {
            let n = input_names
                .get(k)
                .cloned()
                .unwrap_or_else(|| format!("input_{k}"));
            inputs.push((k, b.value_tensor(&n, &eg.meta[i][0])?));
        }
    }
    inputs.sort_by_key(|&(k, _)| k);
    b.model.inputs = inputs.iter().map(|&(_, t)| t).collect();
    let mut batch = None;
    let slots = eg.lower_nodes("tflite export", name, |i, node, ins: Vec<Operand>| {
        let meta = &eg.meta[i];
        let operand = |tensor: Option<usize>, constant: Option<Tensor>, o: usize| Operand {
            tensor,
            constant,
            value: (i, o),
            meta: meta[o].clone(),
        };
        match &node.kind {
            NodeKind::Input(k) => Ok(vec![operand(Some(b.model.inputs[*k]), None, 0)]),
            NodeKind::Const(t) if meta[0].dynamic.contains(&true) => {
                batch_sized_constant(&mut b, &mut batch, t, &meta[0], eg)
                    .map(|t| vec![operand(Some(t), None, 0)])
            }
            NodeKind::Const(t) => Ok(vec![operand(None, Some(t.clone()), 0)]),
            NodeKind::Op { name, kind, .. } => {
                let op = format!("{name}_{i}");
                let lowering = Lowering {
                    op: &op,
                    inputs: &ins,
                    outputs: meta,
                };
                let ts = lower(&mut b, kind, &lowering)?;
                Ok(ts
                    .into_iter()
                    .enumerate()
                    .map(|(o, t)| operand(Some(t), None, o))
                    .collect())
            }
            other => Err(Error::invalid(
                "tflite export",
                format!(
                    "{} has no TFLite form (export an inference function)",
                    other.name()
                ),
            )),
        }
    })?;
    for (k, v) in g.outputs.iter().enumerate() {
        let t = output_tensor(&mut b, &slots[v.node][v.output], *v)?;
        let name = output_names
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("output_{k}"));
        b.model.tensors[t].name = name;
        b.model.outputs.push(t);
    }
    fold::merge_affine_chains(&mut b.model);
    fold::fold_affine_into_weights(&mut b.model);
    fold::sum_then_scale_to_mean(&mut b.model);
    fold::clamps_to_activations(&mut b.model);
    fold::fuse_activations(&mut b.model);
    fold::drop_unused(&mut b.model);
    Ok(b.model)
}

/// The model tensor an output names: a model input or another output is copied first
/// (each output is its own tensor), a constant is written.
fn output_tensor(b: &mut Builder, s: &Operand, v: Value) -> Result<usize> {
    let t = match (s.tensor, &s.constant) {
        (Some(t), _) => t,
        (None, Some(c)) => return b.constant_any("output", c),
        (None, None) => {
            return Err(Error::invalid(
                "tflite export",
                format!("output value {v:?} was not lowered"),
            ))
        }
    };
    if !b.model.inputs.contains(&t) && !b.model.outputs.contains(&t) {
        return Ok(t);
    }
    copy(b, t, &s.meta)
}

/// A RESHAPE of `t` to its own shape: a distinct tensor with the same contents.
fn copy(b: &mut Builder, t: usize, meta: &ValueMeta) -> Result<usize> {
    let shape: Vec<i32> = b.model.tensors[t].declared_dims().to_vec();
    let y = b.value_tensor("copy", meta)?;
    let s = b.const_i32("shape", &[shape.len() as i32], &shape);
    b.op(
        crate::ir::Op::Reshape { new_shape: shape },
        &[t as i32, s as i32],
        &[y],
    );
    Ok(y)
}

/// The batch size as an int32 `[1]` tensor, computed once (kept in `cached`) from the
/// one input axis that is dynamic.
fn batch_size(b: &mut Builder, cached: &mut Option<usize>, eg: &ExportGraph) -> Result<usize> {
    if let Some(t) = *cached {
        return Ok(t);
    }
    let Some((k, axis)) = eg.dynamic_input_axis() else {
        return Err(Error::invalid(
            "tflite export",
            "a constant follows the batch size, and input axes other than the batch are dynamic; export with a fixed batch size",
        ));
    };
    let n = b.runtime_dim(b.model.inputs[k], axis)?;
    *cached = Some(n);
    Ok(n)
}

/// A constant whose size follows the batch (an RNN's zero state, an all-true mask): one
/// slice along its dynamic axis, the same in every row, tiled to the batch at run time.
fn batch_sized_constant(
    b: &mut Builder,
    batch: &mut Option<usize>,
    t: &Tensor,
    meta: &ValueMeta,
    eg: &ExportGraph,
) -> Result<usize> {
    let refuse = |why: &str| {
        Error::invalid(
            "tflite export",
            format!(
                "a constant of shape {:?} changes with the batch size ({why}); export with a fixed batch size",
                t.shape()
            ),
        )
    };
    let axes: Vec<usize> = (0..meta.dynamic.len())
        .filter(|&a| meta.dynamic[a])
        .collect();
    let [axis] = axes[..] else {
        return Err(refuse("more than one of its axes does"));
    };
    if t.shape()[axis] != ferroflow_graph::export::EXAMPLE_SIZES.0 {
        return Err(refuse("a size that is a multiple of the batch"));
    }
    let part = |r: usize| {
        let mut begin = vec![0; t.rank()];
        begin[axis] = r;
        let mut size = vec![-1isize; t.rank()];
        size[axis] = 1;
        t.slice(&begin, &size)
    };
    let row = part(0)?;
    for r in 1..t.shape()[axis] {
        if part(r)?.to_le_bytes() != row.to_le_bytes() {
            return Err(refuse("its rows differ"));
        }
    }
    let n = batch_size(b, batch, eg)?;
    let rank = meta.shape.len();
    let mut parts = Vec::new();
    if axis > 0 {
        parts.push(b.const_i32("ones", &[axis as i32], &vec![1; axis]) as i32);
    }
    parts.push(n as i32);
    if rank > axis + 1 {
        let after = rank - axis - 1;
        parts.push(b.const_i32("ones", &[after as i32], &vec![1; after]) as i32);
    }
    let multiples = b.int_vector("multiples", rank)?;
    let cat = crate::ir::Op::Concatenation {
        axis: 0,
        act: crate::ir::Activation::None,
    };
    b.op(cat, &parts, &[multiples]);
    let c = b.constant_any("row", &row.contiguous())?;
    let y = b.value_tensor("batch_sized", meta)?;
    b.op(crate::ir::Op::Tile, &[c as i32, multiples as i32], &[y]);
    Ok(y)
}
