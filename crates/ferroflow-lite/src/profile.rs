//! Per-operator time and work of an interpreter call (LiteRT's op profiler): which
//! layers a model spends its time in, and how close each convolution comes to the
//! machine's arithmetic peak.

use crate::ir::{LiteModel, LiteTensor, Op};

/// One operator of a profiled call.
#[derive(Clone, Debug, PartialEq)]
pub struct OpProfile {
    /// The operator's index in the model's main subgraph.
    pub index: usize,
    /// The builtin's name (`CONV_2D`, ...).
    pub op: &'static str,
    /// Wall time of the operator, in seconds.
    pub seconds: f64,
    /// Multiply-adds it did (matmuls and convolutions; 0 for other operators), at the
    /// call's shapes.
    pub macs: u64,
    /// Shape of its first output in this call.
    pub output_shape: Vec<usize>,
    /// It ran on an int8 kernel (integer arithmetic) rather than in float.
    pub int8: bool,
}

impl OpProfile {
    /// Achieved arithmetic rate in GFLOP/s (GOP/s for int8), two operations per
    /// multiply-add; 0 for operators without matmul work or without measurable time.
    pub fn gflops(&self) -> f64 {
        if self.seconds > 0.0 {
            2.0 * self.macs as f64 / self.seconds / 1e9
        } else {
            0.0
        }
    }
}

/// Multiply-adds of operator `op_index` (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D,
/// TRANSPOSE_CONV, BATCH_MATMUL; 0 for other operators), where `numel(t)` is the element
/// count of tensor `t` in the call (the weights' static shapes give the rest).
pub(crate) fn op_macs(m: &LiteModel, op_index: usize, numel: impl Fn(usize) -> usize) -> usize {
    let op = &m.ops[op_index];
    let index = |i: usize, list: &[i32]| list.get(i).and_then(|&t| usize::try_from(t).ok());
    let tensor = |i: usize| index(i, &op.inputs).and_then(|t| m.tensors.get(t));
    let count = |t: Option<usize>| t.map_or(0, &numel);
    let out = count(index(0, &op.outputs));
    let dim = |t: &LiteTensor, i: usize| t.shape.get(i).map_or(1, |&d| d.max(0) as usize);
    let per_output = match op.op {
        Op::FullyConnected { .. } => tensor(1).map_or(0, |w| dim(w, w.shape.len().max(1) - 1)),
        Op::Conv2d { .. } => tensor(1).map_or(0, |w| w.numel() / dim(w, 0).max(1)),
        Op::DepthwiseConv2d { .. } => tensor(1).map_or(0, |w| dim(w, 1) * dim(w, 2)),
        // Filter [cout, kh, kw, cin]: each input element is scattered to kh*kw*cout
        // outputs.
        Op::TransposeConv { .. } => {
            let image = count(index(2, &op.inputs));
            return tensor(1).map_or(0, |w| {
                image.saturating_mul(w.numel() / dim(w, w.shape.len().max(1) - 1).max(1))
            });
        }
        Op::BatchMatMul { adj_x, .. } => tensor(0).map_or(0, |x| match x.shape.len() {
            r if r >= 2 => dim(x, if adj_x { r - 2 } else { r - 1 }),
            _ => 0,
        }),
        _ => 0,
    };
    out.saturating_mul(per_output)
}

/// Multiply-adds of the whole model at its static shapes (batch 1 where the batch is
/// dynamic): a measure of the work of a call.
pub(crate) fn static_macs(m: &LiteModel) -> usize {
    let numel = |t: usize| m.tensors.get(t).map_or(0, LiteTensor::numel);
    (0..m.ops.len())
        .map(|k| op_macs(m, k, numel))
        .fold(0usize, usize::saturating_add)
}
