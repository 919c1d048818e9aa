//! Which TFLite models may run a large batch as chunks of rows
//! ([`ferroflow_core::row_chunks`]): those whose every operator keeps rows apart.

use crate::ir::{LiteModel, Op};
use ferroflow_core::{DType, Tensor};

/// How a model's batches split into chunks of rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowSplit {
    /// The bytes of the model's largest activation per row.
    row_bytes: usize,
}

impl RowSplit {
    /// The rows of each chunk of a batch of `batch` rows run on `threads` threads (see
    /// `ferroflow_core::row_chunks::chunk_sizes`), or `None` when the batch is small enough to run whole.
    pub(crate) fn sizes(self, batch: usize, threads: usize) -> Option<Vec<usize>> {
        ferroflow_core::row_chunks::chunk_plan(batch, self.row_bytes, threads)
    }
}

/// How `model`'s batches split into chunks of rows (`consts`: the value of every constant
/// tensor, including those folded at load; `folded`: the ops folded at load), or `None`
/// when some operator may mix rows, so that a batch must run whole.
pub(crate) fn row_split(
    model: &LiteModel,
    consts: &[Option<Tensor>],
    folded: &[bool],
) -> Option<RowSplit> {
    if !model.subgraphs.is_empty() || model.inputs.is_empty() {
        return None;
    }
    let computed = |t: i32| t >= 0 && consts.get(t as usize).is_some_and(|c| c.is_none());
    // Every model input and output carries the batch: a dynamic first dimension.
    let batched = |t: usize| model.tensors[t].signature.first() == Some(&-1);
    if !model
        .inputs
        .iter()
        .chain(&model.outputs)
        .all(|&t| batched(t))
        || !model.outputs.iter().all(|&t| computed(t as i32))
    {
        return None;
    }
    // Tensors computed from shapes alone (SHAPE, and what is computed from its outputs
    // and constants): a chunk's differ from the batch's, so they may only be the target
    // shape of a RESHAPE, which `row_wise` checks by the declared shapes on both sides.
    let mut shape_valued = vec![false; model.tensors.len()];
    for (k, op) in model.ops.iter().enumerate().filter(|&(k, _)| !folded[k]) {
        let mut inputs = op.inputs.iter().filter(|&&t| computed(t));
        let from_shapes = match op.op {
            Op::Shape => true,
            _ => inputs.clone().next().is_some() && inputs.all(|&t| shape_valued[t as usize]),
        };
        if from_shapes {
            for &o in op.outputs.iter().filter(|&&o| o >= 0) {
                shape_valued[o as usize] = true;
            }
            continue;
        }
        let reads_shape = op.inputs.iter().enumerate().any(|(i, &t)| {
            t >= 0 && shape_valued[t as usize] && !(i == 1 && matches!(op.op, Op::Reshape { .. }))
        });
        if reads_shape || !row_wise(model, consts, k, &computed) {
            return None;
        }
    }
    if model.outputs.iter().any(|&t| shape_valued[t]) {
        return None;
    }
    // The largest activation of one row, in bytes, from the declared shapes.
    let row_bytes = (0..model.tensors.len())
        .filter(|&t| computed(t as i32) && !shape_valued[t])
        .map(|t| {
            let d = &model.tensors[t];
            let per_row: usize = d.shape.iter().skip(1).map(|&v| v.max(1) as usize).product();
            per_row.saturating_mul(d.dtype.size())
        })
        .max()
        .unwrap_or(0);
    Some(RowSplit { row_bytes })
}

/// Whether op `k` computes each row of its outputs from the same row of its computed
/// inputs alone (constants broadcast to every row).
fn row_wise(
    model: &LiteModel,
    consts: &[Option<Tensor>],
    k: usize,
    computed: &dyn Fn(i32) -> bool,
) -> bool {
    let op = &model.ops[k];
    // The first input and output (-1 where the operator has none).
    let x = op.inputs.first().copied().unwrap_or(-1);
    let y = op.outputs.first().copied().unwrap_or(-1);
    let rank = |t: i32| model.tensors.get(t as usize).map_or(0, |d| d.shape.len());
    let out_rank = rank(y);
    let constant = |i: usize| {
        op.inputs
            .get(i)
            .and_then(|&t| consts.get(t.max(0) as usize)?.as_ref())
    };
    let const_ints =
        |i: usize| -> Option<Vec<i64>> { constant(i)?.cast(DType::I64).ok()?.to_vec().ok() };
    // The first input is the rows; the others (weights, biases) constant.
    let rows_then_constants =
        || computed(x) && op.inputs.iter().skip(1).all(|&t| t < 0 || !computed(t));
    // Every operand is rows of the output's rank or a constant that broadcasts along the
    // first dimension (lower rank, or a first dimension of 1).
    let elementwise = || {
        op.inputs.iter().all(|&t| {
            if t < 0 {
                return true;
            }
            if computed(t) {
                return rank(t) == out_rank;
            }
            let shape = model.tensors[t as usize].shape.as_slice();
            shape.len() < out_rank || shape.first() == Some(&1)
        })
    };
    let axis_not_first = |axis: i64, r: usize| r > 0 && axis.rem_euclid(r as i64) != 0;
    match &op.op {
        Op::Conv2d { .. }
        | Op::DepthwiseConv2d { .. }
        | Op::Pool2d { .. }
        | Op::TransposeConv { .. }
        | Op::Resize { .. }
        | Op::DepthToSpace { .. }
        | Op::SpaceToDepth { .. }
        | Op::L2Normalization { .. }
        | Op::LocalResponseNorm { .. }
        | Op::Unary(_)
        | Op::LeakyRelu { .. }
        | Op::Gelu { .. }
        | Op::Quantize
        | Op::Dequantize
        | Op::Cast
        | Op::Prelu => rows_then_constants() && out_rank >= 1,
        Op::Binary { .. } | Op::Compare(_) | Op::Select | Op::Logical(_) => {
            out_rank >= 1 && elementwise()
        }
        // Rank 2: each input row is one product row (a higher rank is flattened first).
        Op::FullyConnected { .. } => rows_then_constants() && rank(x) == 2,
        Op::Softmax { .. } => rows_then_constants() && out_rank >= 2,
        Op::Concatenation { axis, .. } => {
            op.inputs.iter().all(|&t| computed(t)) && axis_not_first(*axis as i64, out_rank)
        }
        Op::Reduce { .. } => {
            computed(x)
                && const_ints(1)
                    .is_some_and(|axes| axes.iter().all(|&a| axis_not_first(a, rank(x))))
        }
        Op::Pad | Op::MirrorPad { .. } => {
            computed(x) && const_ints(1).is_some_and(|p| p.len() >= 2 && p[0] == 0 && p[1] == 0)
        }
        Op::Transpose => computed(x) && const_ints(1).is_some_and(|p| p.first() == Some(&0)),
        // Rows map to rows when both sides carry the batch first and the same static
        // number of elements per row.
        Op::Reshape { .. } => {
            let per_row = |t: i32| -> Option<i64> {
                let d = model.tensors.get(t as usize)?;
                let sig = d.declared_dims();
                (sig.first() == Some(&-1) && sig[1..].iter().all(|&v| v >= 0))
                    .then(|| sig[1..].iter().map(|&v| v as i64).product())
            };
            computed(x) && per_row(x).is_some() && per_row(x) == per_row(y)
        }
        _ => false,
    }
}
