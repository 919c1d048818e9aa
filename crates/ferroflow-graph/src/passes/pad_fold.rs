//! Zero padding of the spatial axes whose result only a convolution reads (Keras's
//! `ZeroPadding2D` before a VALID stride-2 `DepthwiseConv2D` in MobileNetV2, a `Pad` node
//! before an ONNX `Conv`) becomes the convolution's own padding: a convolution with pads
//! sums the same products over the same zeros, without the padded copy of its input. The
//! pad node is then unused and dead-code elimination drops it.

use crate::graph::{Graph, NodeKind};
use ferroflow_core::ops::conv::{explicit_pad_fits, Padding};
use ferroflow_core::trace::{ConvSpec, OpKind};
use std::sync::Arc;

/// The zeros a remap adds before and after an axis of `len` elements when it is a plain
/// zero pad of that axis (`None` for anything else).
fn pad_of(map: &[Option<usize>], len: usize) -> Option<(usize, usize)> {
    let before = map.iter().take_while(|m| m.is_none()).count();
    let after = map.len().checked_sub(before + len)?;
    let inner = &map[before..before + len];
    let tail = &map[before + len..];
    (inner.iter().enumerate().all(|(i, &m)| m == Some(i)) && tail.iter().all(Option::is_none))
        .then_some((before, after))
}

/// Folds each such pad into the convolution reading it. Returns how many were folded.
pub fn fold_pads_into_convs(g: &mut Graph) -> usize {
    let mut readers = vec![0usize; g.nodes.len()];
    for v in g
        .nodes
        .iter()
        .flat_map(|n| n.inputs.iter())
        .chain(&g.outputs)
    {
        readers[v.node] += 1;
    }
    let mut folded = 0;
    for c in 0..g.nodes.len() {
        let NodeKind::Op {
            kind: OpKind::Conv2d(spec),
            ..
        } = &g.nodes[c].kind
        else {
            continue;
        };
        let [x, w] = g.nodes[c].inputs[..] else {
            continue;
        };
        let p = x.node;
        let NodeKind::Op {
            kind: OpKind::Remap { maps, fill },
            ..
        } = &g.nodes[p].kind
        else {
            continue;
        };
        let [src] = g.nodes[p].inputs[..] else {
            continue;
        };
        let (shape, filter) = (&g.info(src).shape, &g.info(w).shape);
        if *fill != 0.0
            || readers[p] != 1
            || g.nodes[p].outputs.len() != 1
            || maps.len() != 4
            || shape.len() != 4
            || filter.len() != 4
        {
            continue;
        }
        let identity = |axis: usize| pad_of(&maps[axis], shape[axis]) == Some((0, 0));
        let (Some((top, bottom)), Some((left, right))) =
            (pad_of(&maps[1], shape[1]), pad_of(&maps[2], shape[2]))
        else {
            continue;
        };
        let pads = [
            spec.pads[0] + top,
            spec.pads[1] + left,
            spec.pads[2] + bottom,
            spec.pads[3] + right,
        ];
        // Pads in the order top, left, bottom, right: height, width, height, width.
        let dilations = [spec.dilations.0, spec.dilations.1];
        let fit = |i: usize| explicit_pad_fits(pads[i], filter[i % 2], dilations[i % 2]);
        if !identity(0) || !identity(3) || !(0..4).all(fit) {
            continue;
        }
        let spec = ConvSpec { pads, ..*spec };
        let (strides, dilations) = (spec.strides, spec.dilations);
        let padding = Padding::Explicit(pads);
        g.nodes[c].kind = NodeKind::Op {
            name: "conv2d",
            attrs: format!("strides={strides:?}, padding={padding:?}, dilations={dilations:?}"),
            kind: OpKind::Conv2d(spec),
            replay: Arc::new(move |x| Ok(vec![x[0].conv2d(&x[1], strides, padding, dilations)?])),
        };
        g.nodes[c].inputs = vec![src, w];
        readers[p] = 0;
        folded += 1;
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::pad_of;

    #[test]
    fn pad_maps_are_recognised() {
        assert_eq!(
            pad_of(&[None, Some(0), Some(1), None, None], 2),
            Some((1, 2))
        );
        assert_eq!(pad_of(&[Some(0), Some(1)], 2), Some((0, 0)));
        // Reversed, tiled, or not the axis's length: not a pad.
        assert_eq!(pad_of(&[Some(1), Some(0)], 2), None);
        assert_eq!(pad_of(&[Some(0), Some(1), Some(0)], 2), None);
        assert_eq!(pad_of(&[None, Some(0)], 2), None);
    }
}
