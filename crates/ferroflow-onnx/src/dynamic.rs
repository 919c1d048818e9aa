//! Which sizes follow a dynamic input axis: the same closure traced at two sizes of every
//! `None` axis must give graphs of the same structure; a value's axis whose size differs
//! between them follows the input.

use crate::registry::ValueMeta;
use ferroflow_core::{Error, Result};
use ferroflow_graph::{Graph, NodeKind};

/// The facts of every node's outputs (`[node][output]`), from graph `a` traced at the
/// first sizes and `b` at the second (the same graph when nothing is dynamic).
pub fn value_meta(a: &Graph, b: &Graph) -> Result<Vec<Vec<ValueMeta>>> {
    let differ = |why: String| {
        Error::invalid(
            "onnx export",
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
