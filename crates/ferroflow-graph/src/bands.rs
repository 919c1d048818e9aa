//! Expansion and depthwise pairs (a MobileNet inverted-residual block's 1x1 convolution and
//! the depthwise convolution that alone reads its output, each with its bias and
//! activation) run as one step at the depthwise node, band by band of output rows
//! ([`Tensor::pointwise_then_depthwise`]), so the expanded activation stays in cache and is
//! never made whole. The plan keeps the 1x1 convolution's inputs alive until then and skips
//! the node itself.

use crate::epilogue_form::AffineActivation;
use crate::fused::{Access, FusedKernel};
use crate::graph::{Graph, Node, NodeKind};
use ferroflow_core::ops::conv::Padding;
use ferroflow_core::ops::conv_epilogue::ConvEpilogue;
use ferroflow_core::trace::{ConvSpec, OpKind};
use ferroflow_core::{DType, PackedConvFilter, Result, Tensor};

/// A node that is a convolution (inputs: image, filter), alone or as the prologue of a
/// fused kernel that runs as its epilogue: the convolution's geometry and that kernel.
fn conv_step(n: &Node) -> Option<(ConvSpec, Option<&FusedKernel>)> {
    match &n.kind {
        NodeKind::Op {
            kind: OpKind::Conv2d(spec),
            ..
        } if n.inputs.len() == 2 => Some((*spec, None)),
        NodeKind::Fused(k) => {
            let p = k.prologue.as_ref()?;
            let epilogue = p.arity == 2
                && k.reduce.is_none()
                && k.access.first() == Some(&Access::Same)
                && k.out_shape == k.domain;
            p.conv.filter(|_| epilogue).map(|spec| (spec, Some(&**k)))
        }
        _ => None,
    }
}

/// Per node: for a depthwise convolution (channel multiplier 1) whose image is the f32
/// output of a 1x1, stride-1, unpadded convolution with a packed filter (`packed[i]`),
/// read by nothing else, that convolution's node.
pub(crate) fn find(g: &Graph, packed: &[bool]) -> Vec<Option<usize>> {
    let uses = g.use_counts();
    g.nodes
        .iter()
        .map(|n| {
            let (dw, _) = conv_step(n)?;
            let v = *n.inputs.first()?;
            let head = &g.nodes[v.node];
            let (pw, _) = conv_step(head)?;
            let (f1, f2) = (&g.info(head.inputs[1]).shape, &g.info(n.inputs[1]).shape);
            let f32_out = |n: &Node| n.outputs.len() == 1 && n.outputs[0].dtype == DType::F32;
            let pair = packed[v.node]
                && pw.groups == 1
                && pw.strides == (1, 1)
                && pw.pads == [0; 4]
                && f1.len() == 4
                && f1[..2] == [1, 1]
                && f2.len() == 4
                && f2[2] == 1
                && f2[3] == f1[3]
                && dw.groups == f1[3]
                && uses.get(&v) == Some(&1)
                && f32_out(head)
                && f32_out(n);
            pair.then_some(v.node)
        })
        .collect()
}

/// Runs the pair `head` (the 1x1 convolution, on `head_ins`, its filter packed as
/// `packed`) and `tail` (the depthwise one, on `tail_ins`: its inputs after the image) as
/// one banded step. `None` when an epilogue is more than a per-channel affine map and an
/// activation: the two nodes then run one after the other.
pub(crate) fn run(
    head: &Node,
    tail: &Node,
    head_ins: &[Tensor],
    tail_ins: &[Tensor],
    packed: &PackedConvFilter,
) -> Result<Option<Tensor>> {
    let (Some((_, k1)), Some((spec, k2))) = (conv_step(head), conv_step(tail)) else {
        return Ok(None);
    };
    let channels = packed.filter().shape().last().copied().unwrap_or(0);
    let form = |k: Option<&FusedKernel>, rest: &[Tensor]| match k {
        Some(k) => k.affine_activation(rest, channels).map(Some),
        None => Some(None),
    };
    let (Some(a1), Some(a2), Some(f)) = (
        form(k1, head_ins.get(2..).unwrap_or_default()),
        form(k2, tail_ins.get(1..).unwrap_or_default()),
        tail_ins.first(),
    ) else {
        return Ok(None);
    };
    fn ep(a: &Option<AffineActivation>) -> ConvEpilogue<'_> {
        a.as_ref()
            .map_or_else(ConvEpilogue::default, AffineActivation::epilogue)
    }
    let s = f.shape();
    let depthwise = f.reshape_to(&[s[0], s[1], s[3], 1])?;
    let y = head_ins[0].pointwise_then_depthwise(
        packed,
        ep(&a1),
        &depthwise,
        spec.strides,
        Padding::Explicit(spec.pads),
        spec.dilations,
        ep(&a2),
    )?;
    Ok(Some(match k2 {
        Some(k) => k.produced(y)?,
        None => y,
    }))
}
