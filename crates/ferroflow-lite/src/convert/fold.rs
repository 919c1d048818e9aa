//! Graph clean-ups after lowering: per-channel affine ops (BatchNormalization) folded into
//! the weights of the convolution or dense layer before them, activations fused into the
//! op before them, and unused tensors dropped.

use crate::ir::{Activation, BinaryKind, LiteModel, Op, UnaryKind};

/// The op that writes tensor `t`.
fn producer(m: &LiteModel, t: usize) -> Option<usize> {
    m.ops.iter().position(|op| op.outputs.contains(&(t as i32)))
}

/// Folds `MUL(y, s)` and `ADD(y, c)` by constant per-output-channel (or scalar) vectors into
/// the filter and bias of the FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D writing `y`,
/// when that op has no activation and `y` has no other reader.
pub(super) fn fold_affine_into_weights(m: &mut LiteModel) {
    loop {
        let count = m.readers();
        let mut done = false;
        for i in 0..m.ops.len() {
            let kind = match m.ops[i].op {
                Op::Binary {
                    kind: k @ (BinaryKind::Mul | BinaryKind::Add),
                    act: Activation::None,
                } => k,
                _ => continue,
            };
            let (y, c) = (m.ops[i].inputs[0], m.ops[i].inputs[1]);
            if y < 0 || c < 0 || count[y as usize] != 1 {
                continue;
            }
            let Some(constant) = m.tensors[c as usize].f32_values() else {
                continue;
            };
            let Some(p) = producer(m, y as usize) else {
                continue;
            };
            let channels_last = match m.ops[p].op {
                Op::FullyConnected {
                    act: Activation::None,
                    ..
                }
                | Op::Conv2d {
                    act: Activation::None,
                    ..
                } => false,
                Op::DepthwiseConv2d {
                    act: Activation::None,
                    ..
                } => true,
                _ => continue,
            };
            let (w, bias) = match m.ops[p].inputs[..] {
                [_, w, bias] if w >= 0 && bias >= 0 => (w as usize, bias as usize),
                _ => continue,
            };
            if count[w] != 1 || count[bias] != 1 {
                continue;
            }
            let (Some(mut wv), Some(mut bv)) =
                (m.tensors[w].f32_values(), m.tensors[bias].f32_values())
            else {
                continue;
            };
            let channels = bv.len();
            if constant.len() != channels && constant.len() != 1 {
                continue;
            }
            let at = |k: usize| constant[if constant.len() == 1 { 0 } else { k }];
            if kind == BinaryKind::Mul {
                let per = wv.len() / channels.max(1);
                for (j, v) in wv.iter_mut().enumerate() {
                    let ch = if channels_last { j % channels } else { j / per };
                    *v *= at(ch);
                }
                for (k, v) in bv.iter_mut().enumerate() {
                    *v *= at(k);
                }
                m.tensors[w].set_f32_values(&wv);
            } else {
                for (k, v) in bv.iter_mut().enumerate() {
                    *v += at(k);
                }
            }
            m.tensors[bias].set_f32_values(&bv);
            let out = m.ops[i].outputs[0];
            m.ops[p].outputs[0] = out;
            m.ops.remove(i);
            done = true;
            break;
        }
        if !done {
            return;
        }
    }
}

/// Fuses RELU / RELU6 ops into the op writing their input when it carries a fused
/// activation and nothing else reads the intermediate (LiteRT's kernels apply only the ReLU
/// ranges as fused activations).
pub(super) fn fuse_activations(m: &mut LiteModel) {
    loop {
        let count = m.readers();
        let mut done = false;
        for i in 0..m.ops.len() {
            let act = match m.ops[i].op {
                Op::Unary(UnaryKind::Relu) => Activation::Relu,
                Op::Unary(UnaryKind::Relu6) => Activation::Relu6,
                _ => continue,
            };
            let x = m.ops[i].inputs[0];
            if x < 0 || count[x as usize] != 1 {
                continue;
            }
            let Some(p) = producer(m, x as usize) else {
                continue;
            };
            if m.ops[p].outputs.len() != 1 {
                continue;
            }
            match m.ops[p].op.fused_activation_mut() {
                Some(slot) if *slot == Activation::None => *slot = act,
                _ => continue,
            }
            m.ops[p].outputs[0] = m.ops[i].outputs[0];
            m.ops.remove(i);
            done = true;
            break;
        }
        if !done {
            return;
        }
    }
}

/// Removes tensors no op or model input/output refers to, renumbering the rest.
pub(super) fn drop_unused(m: &mut LiteModel) {
    let mut used = vec![false; m.tensors.len()];
    for op in &m.ops {
        for &i in op.inputs.iter().chain(&op.outputs) {
            if i >= 0 {
                used[i as usize] = true;
            }
        }
    }
    for &i in m.inputs.iter().chain(&m.outputs) {
        used[i] = true;
    }
    let mut new_index = vec![usize::MAX; m.tensors.len()];
    let mut kept = Vec::new();
    for (i, t) in std::mem::take(&mut m.tensors).into_iter().enumerate() {
        if used[i] {
            new_index[i] = kept.len();
            kept.push(t);
        }
    }
    m.tensors = kept;
    let map = |i: i32| {
        if i < 0 {
            i
        } else {
            new_index[i as usize] as i32
        }
    };
    for op in &mut m.ops {
        op.inputs = op.inputs.iter().map(|&i| map(i)).collect();
        op.outputs = op.outputs.iter().map(|&i| map(i)).collect();
    }
    m.inputs = m.inputs.iter().map(|&i| new_index[i]).collect();
    m.outputs = m.outputs.iter().map(|&i| new_index[i]).collect();
}
