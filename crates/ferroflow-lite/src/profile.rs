//! Per-operator time and work of an interpreter call (LiteRT's op profiler): which
//! layers a model spends its time in, and how close each convolution comes to the
//! machine's arithmetic peak.

use crate::int8::window::Axis;
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
/// TRANSPOSE_CONV, BATCH_MATMUL; 0 for other operators), computed from the shapes of its
/// inputs alone, where `shape(t)` is the shape of tensor `t` in the call: so it is known
/// before the operator runs, and a limit can refuse it (saturating, never overflowing).
pub(crate) fn op_macs(
    m: &LiteModel,
    op_index: usize,
    shape: impl Fn(usize) -> Option<Vec<usize>>,
) -> usize {
    let op = &m.ops[op_index];
    let input = |i: usize| {
        op.inputs
            .get(i)
            .and_then(|&t| usize::try_from(t).ok())
            .and_then(&shape)
    };
    let product = |dims: &[usize]| dims.iter().fold(1usize, |a, &d| a.saturating_mul(d));
    let (Some(x), Some(w)) = (input(0), input(1)) else {
        return 0;
    };
    match &op.op {
        // x [..., depth] times weights [units, depth].
        Op::FullyConnected { .. } => product(&x).saturating_mul(w.first().copied().unwrap_or(0)),
        // Each output pixel takes the whole filter (CONV_2D [cout, kh, kw, cin]) or one
        // multiply-add per filter element (DEPTHWISE_CONV_2D [1, kh, kw, cin * m]).
        Op::Conv2d { window, .. } | Op::DepthwiseConv2d { window, .. } => match (&x[..], &w[..]) {
            ([n, h, wd, _], [_, kh, kw, _]) => {
                let extent = |input, kernel, stride, dilation| {
                    Axis::new(input, kernel, stride, dilation, window.padding).out
                };
                let pixels = [
                    extent(*h, *kh, window.stride.0, window.dilation.0),
                    extent(*wd, *kw, window.stride.1, window.dilation.1),
                ];
                product(&[*n, pixels[0], pixels[1], product(&w)])
            }
            _ => 0,
        },
        // Filter [cout, kh, kw, cin]: each input element is scattered to kh*kw*cout
        // outputs.
        Op::TransposeConv { .. } => {
            let image = input(2).map_or(0, |i| product(&i));
            image.saturating_mul(product(&w) / w.last().copied().unwrap_or(1).max(1))
        }
        // x [..., m, k] times y [..., k, n], the leading axes broadcast.
        Op::BatchMatMul { adj_x, adj_y } if x.len() >= 2 && w.len() >= 2 => {
            let (rx, ry) = (x.len(), w.len());
            let (rows, depth) = if *adj_x {
                (x[rx - 1], x[rx - 2])
            } else {
                (x[rx - 2], x[rx - 1])
            };
            let cols = if *adj_y { w[ry - 2] } else { w[ry - 1] };
            let (bx, by) = (&x[..rx - 2], &w[..ry - 2]);
            let r = bx.len().max(by.len());
            let at = |b: &[usize], i: usize| (i + b.len()).checked_sub(r).map_or(1, |j| b[j]);
            let batch = (0..r)
                .map(|i| at(bx, i).max(at(by, i)))
                .fold(1usize, usize::saturating_mul);
            product(&[batch, rows, depth, cols])
        }
        _ => 0,
    }
}

/// Multiply-adds of the whole model at its static shapes (batch 1 where the batch is
/// dynamic): a measure of the work of a call.
pub(crate) fn static_macs(m: &LiteModel) -> usize {
    let shape = |t: usize| {
        let t: &LiteTensor = m.tensors.get(t)?;
        Some(t.shape.iter().map(|&d| d.max(0) as usize).collect())
    };
    (0..m.ops.len())
        .map(|k| op_macs(m, k, shape))
        .fold(0usize, usize::saturating_add)
}
