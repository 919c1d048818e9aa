//! Swish as converters write it, `MUL(t, LOGISTIC(t))`, run as one operator: in float one
//! pass of `silu` instead of two passes and a temporary, in int8 one table over `t` (the
//! logistic's table and the product composed for each of the 256 values, so the bytes are
//! the two kernels' own). The LOGISTIC operator is then skipped; its output is never made.
//! Where a float `t` comes from a convolution without activation and feeds nothing else,
//! the convolution applies `silu` in its epilogue, while its tiles are in cache, and the
//! MUL only passes its result on.

use crate::int8;
use crate::ir::{Activation, BinaryKind, ElementType, LiteModel, Op, UnaryKind};

/// A MUL that computes swish of tensor `input`.
#[derive(Clone, Debug)]
pub(crate) struct Swish {
    /// The tensor `t` of `t * sigmoid(t)`.
    pub(crate) input: usize,
    /// The LOGISTIC operator it replaces.
    pub(crate) logistic: usize,
    /// The MUL's fused activation (float).
    pub(crate) act: Activation,
    /// int8: the output for each value of `t` (indexed by its byte); `None`: float.
    pub(crate) table: Option<Box<[i8; 256]>>,
    /// Float: the convolution that writes `t` and applies swish itself.
    pub(crate) in_producer: Option<usize>,
}

/// Per operator: the swish it computes, for each MUL that reads a LOGISTIC of its other
/// input when nothing else reads that LOGISTIC's result, and all three tensors are float
/// (or both operators run on int8). `skip[k]`: operators that do not run.
pub(crate) fn find(m: &LiteModel, skip: &[bool]) -> Vec<Option<Swish>> {
    let readers = m.readers();
    let writer = m.writers();
    let float = |t: usize| {
        m.tensors
            .get(t)
            .is_some_and(|t| t.dtype == ElementType::F32 && t.quant.is_none())
    };
    let logistic_of = |s: usize| -> Option<(usize, usize)> {
        let l = writer.get(s).copied().flatten()?;
        let op = &m.ops[l];
        let input = usize::try_from(*op.inputs.first()?).ok()?;
        (matches!(op.op, Op::Unary(UnaryKind::Logistic))
            && !skip[l]
            && op.outputs.len() == 1
            && readers[s] == 1)
            .then_some((l, input))
    };
    m.ops
        .iter()
        .enumerate()
        .map(|(k, op)| {
            let Op::Binary {
                kind: BinaryKind::Mul,
                act,
            } = op.op
            else {
                return None;
            };
            let [a, b] = op.inputs[..] else { return None };
            let (a, b) = (usize::try_from(a).ok()?, usize::try_from(b).ok()?);
            let y = usize::try_from(*op.outputs.first()?).ok()?;
            if skip[k] {
                return None;
            }
            // t * sigmoid(t) or sigmoid(t) * t.
            let (t_first, (logistic, t)) = match (logistic_of(b), logistic_of(a)) {
                (Some((l, t)), _) if t == a => (true, (l, t)),
                (_, Some((l, t))) if t == b => (false, (l, t)),
                _ => return None,
            };
            let s = if t_first { b } else { a };
            if ![t, s, y].into_iter().all(float) {
                return Some(Swish {
                    input: t,
                    logistic,
                    act,
                    table: Some(int8::swish_table(m, logistic, k, t_first)?),
                    in_producer: None,
                });
            }
            // `t` read by the LOGISTIC and this MUL only (a model output counts as a read).
            let in_producer = writer[t].filter(|&p| {
                let conv = matches!(
                    m.ops[p].op,
                    Op::Conv2d {
                        act: Activation::None,
                        ..
                    } | Op::DepthwiseConv2d {
                        act: Activation::None,
                        ..
                    }
                );
                conv && !skip[p] && m.ops[p].outputs.len() == 1 && readers[t] == 2
            });
            Some(Swish {
                input: t,
                logistic,
                act,
                table: None,
                in_producer,
            })
        })
        .collect()
}
