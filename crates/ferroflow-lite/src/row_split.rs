//! Running a large batch as chunks of rows, one after another or one per thread.
//!
//! A vision model's early activations are megabytes per image: at batch 16 each layer's
//! output leaves the caches before the next layer reads it, and every layer streams from
//! memory. When every operator treats the first dimension as independent rows, a batch
//! can run as chunks of a few rows whose activations stay in cache, and on several
//! threads as one chunk per thread, which needs no synchronisation between layers.

use crate::ir::{LiteModel, Op};
use ferroflow_core::{DType, Tensor};

/// The most bytes of one activation a chunk may hold: a chunk's largest activation stays
/// in a core's share of the last-level cache.
const CHUNK_ACTIVATION_BYTES: usize = 4 << 20;

/// The bytes of the largest activation from which a batch runs in chunks. Below, the
/// whole batch's activations stay in the last-level cache, and a whole batch keeps the
/// kernels' tiles fuller (an int8 MobileNetV2 at batch 16, 18 MiB, ran 12% slower on two
/// threads in chunks; the float one, 73 MiB, 20% faster).
const SPLIT_FROM_BYTES: usize = 32 << 20;

/// How a model's batches split into chunks of rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowSplit {
    /// The bytes of the model's largest activation per row.
    row_bytes: usize,
}

impl RowSplit {
    /// The rows of each chunk of a batch of `batch` rows run on `threads` threads (see
    /// [`chunk_sizes`]), or `None` when the batch is small enough to run whole.
    pub(crate) fn sizes(self, batch: usize, threads: usize) -> Option<Vec<usize>> {
        if batch < 2 || batch.saturating_mul(self.row_bytes) < SPLIT_FROM_BYTES {
            return None;
        }
        let rows = (CHUNK_ACTIVATION_BYTES / self.row_bytes.max(1)).max(1);
        Some(chunk_sizes(batch, rows, threads))
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

/// The rows of each chunk of a batch of `batch` rows: at most `max_rows` each, and as many
/// chunks as a multiple of `threads` where the rows allow, so that chunk `j` going to
/// thread `j % threads` gives every thread the same rows within one; larger chunks first.
pub(crate) fn chunk_sizes(batch: usize, max_rows: usize, threads: usize) -> Vec<usize> {
    let mut n = batch.div_ceil(max_rows.max(1));
    if threads > 1 && batch >= threads {
        n = n.next_multiple_of(threads);
    }
    let n = n.clamp(1, batch.max(1));
    (0..n)
        .map(|i| batch / n + usize::from(i < batch % n))
        .collect()
}

/// `x` cut along its first dimension into consecutive pieces of `sizes` rows.
pub(crate) fn cut_rows(x: &Tensor, sizes: &[usize]) -> ferroflow_core::Result<Vec<Tensor>> {
    let mut begin = vec![0usize; x.rank()];
    let mut size = vec![-1isize; x.rank()];
    sizes
        .iter()
        .map(|&rows| {
            size[0] = rows as isize;
            let piece = x.slice(&begin, &size);
            begin[0] += rows;
            piece
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_batch_evenly_per_thread() {
        for batch in 1..40 {
            for max_rows in 1..6 {
                for threads in 1..4 {
                    let sizes = chunk_sizes(batch, max_rows, threads);
                    assert_eq!(sizes.iter().sum::<usize>(), batch);
                    assert!(sizes.iter().all(|&r| r >= 1 && r <= max_rows.max(1)));
                    assert!(sizes.windows(2).all(|w| w[0] >= w[1]));
                    if batch >= threads {
                        let per: Vec<usize> = (0..threads)
                            .map(|t| sizes.iter().skip(t).step_by(threads).sum())
                            .collect();
                        let (lo, hi) = (per.iter().min().unwrap(), per.iter().max().unwrap());
                        assert!(hi - lo <= 1, "{batch} rows, {max_rows} per chunk: {per:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn pieces_are_consecutive_rows() {
        let x = Tensor::from_vec((0..30).map(|v| v as f32).collect(), &[10, 3]).unwrap();
        let pieces = cut_rows(&x, &[4, 3, 3]).unwrap();
        let shapes: Vec<Vec<usize>> = pieces.iter().map(|p| p.shape().to_vec()).collect();
        assert_eq!(shapes, [vec![4, 3], vec![3, 3], vec![3, 3]]);
        assert_eq!(
            Tensor::concat(&pieces, 0).unwrap().to_vec::<f32>().unwrap(),
            x.to_vec::<f32>().unwrap()
        );
    }
}
