//! Expansion and depthwise pairs (a MobileNet inverted-residual block's 1x1 CONV_2D and
//! the DEPTHWISE_CONV_2D that alone reads its float output) run as one step, band by band
//! of output rows (`Tensor::pointwise_then_depthwise`), so the expanded activation stays in
//! cache. The depthwise operator is then skipped; the expanded tensor is never made whole.

use crate::ir::{Activation, ElementType, LiteModel, Op};

/// Per operator: for a 1x1, stride-1 float CONV_2D whose filter is packed (`packed[k]`)
/// and whose float output only a DEPTHWISE_CONV_2D (reading it as its first input,
/// `first_inputs[j]`, perhaps through a PAD folded into it: `pad_fold`) with channel
/// multiplier 1 and a constant filter (`const_filter[j]`) and bias reads, that operator. `skip[k]`:
/// operators that do not run or do not run as plain float convolutions (int8 kernels,
/// dynamic-range inputs).
pub(crate) fn find(
    m: &LiteModel,
    first_inputs: &[Option<usize>],
    packed: &[bool],
    const_filter: &[bool],
    skip: &[bool],
) -> Vec<Option<usize>> {
    let readers = m.readers();
    // The (last) operator that reads each tensor as its first input.
    let mut first_input_of = vec![None; m.tensors.len()];
    for (j, t) in first_inputs.iter().enumerate() {
        if let Some(r) = t.and_then(|t| first_input_of.get_mut(t)) {
            *r = Some(j);
        }
    }
    let float = |t: usize| {
        m.tensors
            .get(t)
            .is_some_and(|t| t.dtype == ElementType::F32 && t.quant.is_none())
    };
    let constant = |t: i32| {
        t < 0
            || usize::try_from(t)
                .ok()
                .and_then(|t| m.tensors.get(t))
                .is_some_and(|t| t.data.is_some())
    };
    m.ops
        .iter()
        .enumerate()
        .map(|(k, op)| {
            let Op::Conv2d { window, act } = &op.op else {
                return None;
            };
            let filter = m.tensors.get(usize::try_from(*op.inputs.get(1)?).ok()?)?;
            let pointwise = filter.shape.len() == 4 && filter.shape[1..3] == [1, 1];
            let t = usize::try_from(*op.outputs.first()?).ok()?;
            if skip[k]
                || !packed[k]
                || !pointwise
                || window.stride != (1, 1)
                || *act == Activation::ReluN1To1
                || op.outputs.len() != 1
                || readers[t] != 1
                || !float(t)
            {
                return None;
            }
            let j = first_input_of[t]?;
            let dw = &m.ops[j];
            let y = usize::try_from(*dw.outputs.first()?).ok()?;
            (matches!(dw.op, Op::DepthwiseConv2d { multiplier: 1, .. })
                && j > k
                && !skip[j]
                && const_filter[j]
                && dw.outputs.len() == 1
                && float(y)
                && dw.inputs.get(2).is_none_or(|&b| constant(b)))
            .then_some(j)
        })
        .collect()
}
