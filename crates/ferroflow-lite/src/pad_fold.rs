//! A zero PAD of the spatial axes that only a VALID float convolution reads (Keras's
//! `ZeroPadding2D` before a stride-2 `DepthwiseConv2D` in MobileNet and EfficientNet, or
//! before a VALID stem convolution) folds into that convolution as explicit padding, as a
//! convolution with pads computes the same sums over the same zeros: the PAD operator is
//! skipped, its output never made, and the convolution reads the PAD's input. A 1x1
//! expansion before such a depthwise convolution can then run with it band by band
//! (`bands`).

use crate::ir::{ElementType, LiteModel, Op, Padding};
use ferroflow_core::ops::conv::explicit_pad_fits;
use ferroflow_core::Tensor;

/// A PAD folded into the convolution that reads its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PadFold {
    /// The PAD operator, which no longer runs.
    pub(crate) pad_op: usize,
    /// The tensor the PAD reads: the convolution's input in its place.
    pub(crate) input: usize,
    /// The PAD's output, the convolution's first input in the file.
    pub(crate) output: usize,
    /// Zero rows and columns around the input: top, left, bottom, right.
    pub(crate) pads: [usize; 4],
}

impl PadFold {
    /// The shape of the PAD's output for an input of shape `input` (NHWC).
    pub(crate) fn padded_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        let [n, h, w, c] = input[..] else {
            return None;
        };
        let [t, l, b, r] = self.pads;
        Some(vec![
            n,
            h.checked_add(t)?.checked_add(b)?,
            w.checked_add(l)?.checked_add(r)?,
            c,
        ])
    }
}

/// Per operator: the PAD folded into it, for each CONV_2D or DEPTHWISE_CONV_2D with VALID
/// padding whose first input is the float output of a PAD that nothing else reads, whose
/// input is a float NHWC tensor and whose constant paddings are zero on the batch and
/// channel axes and less than the (dilated) window on each spatial side (the pads an
/// explicitly padded convolution takes). `skip[k]`: operators that do not run or do not run
/// as float operators (folded at load, fused away, int8 or dynamic-range kernels).
pub(crate) fn find(
    m: &LiteModel,
    consts: &[Option<Tensor>],
    skip: &[bool],
) -> Vec<Option<PadFold>> {
    let readers = m.readers();
    let writer = m.writers();
    let float4 = |t: usize| {
        m.tensors
            .get(t)
            .is_some_and(|t| t.dtype == ElementType::F32 && t.quant.is_none() && t.shape.len() == 4)
    };
    m.ops
        .iter()
        .enumerate()
        .map(|(k, op)| {
            let window = match &op.op {
                Op::Conv2d { window, .. } | Op::DepthwiseConv2d { window, .. } => window,
                _ => return None,
            };
            let output = usize::try_from(*op.inputs.first()?).ok()?;
            let filter = m.tensors.get(usize::try_from(*op.inputs.get(1)?).ok()?)?;
            let p = writer.get(output).copied().flatten()?;
            let pad = &m.ops[p];
            let input = usize::try_from(*pad.inputs.first()?).ok()?;
            let paddings = usize::try_from(*pad.inputs.get(1)?).ok()?;
            if skip[k]
                || skip[p]
                || window.padding != Padding::Valid
                || pad.op != Op::Pad
                || pad.outputs.len() != 1
                || readers[output] != 1
                || !float4(input)
                || !float4(output)
                || filter.shape.len() != 4
            {
                return None;
            }
            let pairs = consts
                .get(paddings)?
                .as_ref()?
                .cast(ferroflow_core::DType::I64)
                .ok()?
                .to_vec::<i64>()
                .ok()?;
            let [0, 0, top, bottom, left, right, 0, 0] = pairs[..] else {
                return None;
            };
            let size = |axis: usize| usize::try_from(filter.shape[axis]).ok().filter(|&k| k > 0);
            let (kh, kw) = (size(1)?, size(2)?);
            let pads = [top, left, bottom, right].map(|v| usize::try_from(v).ok());
            let [Some(top), Some(left), Some(bottom), Some(right)] = pads else {
                return None;
            };
            let (dh, dw) = window.dilation;
            (explicit_pad_fits(top, kh, dh)
                && explicit_pad_fits(bottom, kh, dh)
                && explicit_pad_fits(left, kw, dw)
                && explicit_pad_fits(right, kw, dw))
            .then_some(PadFold {
                pad_op: p,
                input,
                output,
                pads: [top, left, bottom, right],
            })
        })
        .collect()
}
