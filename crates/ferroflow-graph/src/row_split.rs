//! Which traced functions may run a large batch as chunks of rows
//! ([`ferroflow_core::row_chunks`]): those whose every op computes each row of its
//! outputs from the same row of its inputs.
//!
//! Two checks make that safe. [`rows`] looks at the graph traced for the whole batch:
//! every op must keep rows apart (by its kind and which of its operands carry rows), and
//! every input and output must carry them. [`same_but_rows`] then compares it with the
//! graph traced for a chunk: the same ops with the same attributes, constants and
//! variables, only the number of rows changed. A function that uses its batch size as a
//! number (a mean over the batch, a constant of the batch's length) traces different
//! constants or shapes for a chunk, and runs whole.

use crate::graph::{Graph, NodeKind, Value};
use ferroflow_core::trace::OpKind;
use ferroflow_core::{DType, Tensor};

/// What [`rows`] found in a graph traced for `batch` rows.
#[derive(Clone, Debug)]
pub(crate) struct Rows {
    /// The batch the graph was traced for.
    pub(crate) batch: usize,
    /// For each node, which of its outputs carry the batch's rows along their first
    /// dimension.
    carries: Vec<Vec<bool>>,
    /// The bytes of the largest activation per row.
    pub(crate) row_bytes: usize,
}

/// Whether `g`, traced with every input's first dimension `batch`, computes each row of
/// every output from the same row of the inputs alone; `None` when some op may mix rows,
/// has state or runs on the host, or when an input or output does not carry the rows.
pub(crate) fn rows(g: &Graph) -> Option<Rows> {
    let batch = g.nodes.iter().find_map(|n| match n.kind {
        NodeKind::Input(_) => n.outputs.first()?.shape.first().copied(),
        _ => None,
    })?;
    let mut carries: Vec<Vec<bool>> = Vec::with_capacity(g.nodes.len());
    let mut row_bytes = 0;
    for n in &g.nodes {
        let has_rows = |v: &Value| carries[v.node][v.output];
        let any_rows = n.inputs.iter().any(has_rows);
        let out_rows = match &n.kind {
            NodeKind::Input(_) => true,
            NodeKind::Const(_) | NodeKind::ReadVariable(_) => false,
            NodeKind::AssignVariable(_) | NodeKind::Host(_) | NodeKind::Fused(_) => return None,
            NodeKind::Op { kind, .. } if any_rows => {
                keeps_rows(g, n, kind, batch, &|v| carries[v.node][v.output])?;
                true
            }
            NodeKind::Op { kind, .. } => {
                // Computed from constants alone: a constant too, unless it draws or talks.
                if !kind.is_pure() {
                    return None;
                }
                false
            }
        };
        if out_rows {
            for o in &n.outputs {
                if o.shape.first() != Some(&batch) {
                    return None;
                }
                row_bytes = row_bytes.max(o.bytes() / batch.max(1));
            }
        }
        carries.push(vec![out_rows; n.outputs.len()]);
    }
    if g.outputs.is_empty() || !g.outputs.iter().all(|v| carries[v.node][v.output]) {
        return None;
    }
    Some(Rows {
        batch,
        carries,
        row_bytes,
    })
}

/// Whether op node `n` of kind `kind`, some of whose inputs carry rows (`has_rows`),
/// computes each output row from the same rows of those inputs, the other inputs being
/// the same for every row.
fn keeps_rows(
    g: &Graph,
    n: &crate::graph::Node,
    kind: &OpKind,
    batch: usize,
    has_rows: &dyn Fn(&Value) -> bool,
) -> Option<()> {
    let shape = |v: &Value| g.nodes[v.node].outputs[v.output].shape.as_slice();
    let out_rank = n.outputs.first()?.shape.len();
    let input = |i: usize| n.inputs.get(i);
    // Only the first input carries rows (weights, biases and the like are the same for
    // every row).
    let first_only =
        || input(0).is_some_and(has_rows) && n.inputs.iter().skip(1).all(|v| !has_rows(v));
    // Operands carrying rows have the output's rank; the others broadcast along the first
    // dimension (a lower rank, or a first dimension of 1).
    let elementwise = || {
        n.inputs.iter().all(|v| {
            let s = shape(v);
            if has_rows(v) {
                s.len() == out_rank
            } else {
                s.len() < out_rank || s.first() == Some(&1)
            }
        })
    };
    let ok = out_rank >= 1
        && match kind {
            OpKind::Unary(_)
            | OpKind::Binary(_)
            | OpKind::Compare(_)
            | OpKind::Logic(_)
            | OpKind::Select
            | OpKind::Cast(_)
            | OpKind::Clip
            | OpKind::Identity => elementwise(),
            OpKind::MatMul { transpose_a, .. } => {
                let (a, b) = (input(0)?, input(1)?);
                if out_rank == 2 {
                    // Rows of the left operand are rows of the product.
                    has_rows(a) && !has_rows(b) && !transpose_a
                } else {
                    // One product per leading index: operands carrying rows have the
                    // output's rank, the others broadcast over the leading dimensions.
                    elementwise()
                }
            }
            // Row-major order keeps each row's elements together when both sides start
            // with the rows (checked for every output below).
            OpKind::Reshape => first_only() && shape(input(0)?).first() == Some(&batch),
            OpKind::Transpose(perm) => first_only() && perm.first() == Some(&0),
            OpKind::BroadcastTo => first_only() && shape(input(0)?).len() == out_rank,
            OpKind::Reduce { axes, .. } => first_only() && !axes.contains(&0),
            OpKind::Conv2d(_) | OpKind::Conv2dTranspose(_) | OpKind::Pool2d { .. } => first_only(),
            OpKind::Softmax { .. } => first_only() && out_rank >= 2,
            OpKind::Concat(axis) => {
                *axis != 0 && n.inputs.iter().all(|v| shape(v).len() == out_rank)
            }
            OpKind::Slice { begin } => {
                first_only()
                    && begin.first() == Some(&0)
                    && shape(input(0)?).first() == Some(&batch)
            }
            OpKind::Gather(axis) => {
                let (params, indices) = (input(0)?, input(1)?);
                if *axis == 0 {
                    // A lookup: each row of indices picks the same rows of a table.
                    !has_rows(params) && has_rows(indices)
                } else {
                    has_rows(params) && !has_rows(indices)
                }
            }
            OpKind::Remap { maps, .. } => {
                first_only() && maps.first().is_some_and(|m| is_identity(m, batch))
            }
            OpKind::Random | OpKind::Collective | OpKind::Other => false,
        };
    ok.then_some(())
}

/// Whether index map `m` leaves each of `n` positions where it is.
fn is_identity(m: &[Option<usize>], n: usize) -> bool {
    m.len() == n && m.iter().enumerate().all(|(i, &j)| j == Some(i))
}

/// Whether `chunk` (traced for `chunk_rows` rows) is `whole` (described by `rows`) with
/// only the number of rows changed: the same nodes reading the same values, the same op
/// kinds and attributes, constants and variables, and the same output shapes but for the
/// first dimension of the values carrying rows.
pub(crate) fn same_but_rows(whole: &Graph, rows: &Rows, chunk: &Graph, chunk_rows: usize) -> bool {
    if whole.nodes.len() != chunk.nodes.len() || whole.outputs != chunk.outputs {
        return false;
    }
    whole
        .nodes
        .iter()
        .zip(&chunk.nodes)
        .enumerate()
        .all(|(i, (a, b))| {
            a.inputs == b.inputs
                && a.outputs.len() == b.outputs.len()
                && a.outputs.iter().zip(&b.outputs).zip(&rows.carries[i]).all(
                    |((x, y), &carries)| {
                        x.dtype == y.dtype
                            && x.shape.len() == y.shape.len()
                            && if carries {
                                y.shape.first() == Some(&chunk_rows) && x.shape[1..] == y.shape[1..]
                            } else {
                                x.shape == y.shape
                            }
                    },
                )
                && same_kind(&a.kind, &b.kind, rows.batch, chunk_rows)
        })
}

/// Whether two nodes at the same place of the two traces do the same thing.
fn same_kind(a: &NodeKind, b: &NodeKind, rows: usize, chunk_rows: usize) -> bool {
    match (a, b) {
        (NodeKind::Input(i), NodeKind::Input(j)) => i == j,
        (NodeKind::Const(x), NodeKind::Const(y)) => same_tensor(x, y),
        (NodeKind::ReadVariable(x), NodeKind::ReadVariable(y)) => x.id() == y.id(),
        (
            NodeKind::Op {
                name: na, kind: ka, ..
            },
            NodeKind::Op {
                name: nb, kind: kb, ..
            },
        ) => {
            na == nb
                && match (ka, kb) {
                    // The map of the first dimension follows the rows (checked identity).
                    (
                        OpKind::Remap { maps: ma, fill: fa },
                        OpKind::Remap { maps: mb, fill: fb },
                    ) => {
                        fa.to_bits() == fb.to_bits()
                            && ma.len() == mb.len()
                            && ma.first().is_some_and(|m| is_identity(m, rows))
                            && mb.first().is_some_and(|m| is_identity(m, chunk_rows))
                            && ma[1..] == mb[1..]
                    }
                    _ => ka == kb,
                }
        }
        _ => false,
    }
}

/// Whether two constants hold the same elements.
fn same_tensor(x: &Tensor, y: &Tensor) -> bool {
    x.id() == y.id()
        || (x.dtype() == y.dtype()
            && x.shape() == y.shape()
            && x.dtype() != DType::String
            && x.to_le_bytes() == y.to_le_bytes())
}
