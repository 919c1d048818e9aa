//! Graph clean-ups after lowering: per-channel affine ops (BatchNormalization) folded into
//! the weights of the convolution or dense layer before them, activations fused into the
//! op before them, and unused tensors dropped.

use super::layers::set_activation;
use crate::ir::{Activation, BinaryKind, ElementType, LiteModel, Op, UnaryKind};

/// How many ops read each tensor (model outputs count as a reader).
fn readers(m: &LiteModel) -> Vec<usize> {
    let mut n = vec![0; m.tensors.len()];
    for op in &m.ops {
        for &i in &op.inputs {
            if i >= 0 {
                n[i as usize] += 1;
            }
        }
    }
    for &o in &m.outputs {
        n[o] += 1;
    }
    n
}

/// The op that writes tensor `t`.
fn producer(m: &LiteModel, t: usize) -> Option<usize> {
    m.ops.iter().position(|op| op.outputs.contains(&(t as i32)))
}

fn f32_values(m: &LiteModel, t: usize) -> Option<Vec<f32>> {
    let t = &m.tensors[t];
    if t.dtype != ElementType::F32 {
        return None;
    }
    let d = t.data.as_ref()?;
    Some(
        d.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

fn set_f32(m: &mut LiteModel, t: usize, values: &[f32]) {
    m.tensors[t].data = Some(values.iter().flat_map(|v| v.to_le_bytes()).collect());
}

/// Folds `MUL(y, s)` and `ADD(y, c)` by constant per-output-channel (or scalar) vectors into
/// the filter and bias of the FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D writing `y`,
/// when that op has no activation and `y` has no other reader.
pub(super) fn fold_affine_into_weights(m: &mut LiteModel) {
    loop {
        let count = readers(m);
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
            let Some(constant) = f32_values(m, c as usize) else {
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
            let (Some(mut wv), Some(mut bv)) = (f32_values(m, w), f32_values(m, bias)) else {
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
                set_f32(m, w, &wv);
            } else {
                for (k, v) in bv.iter_mut().enumerate() {
                    *v += at(k);
                }
            }
            set_f32(m, bias, &bv);
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
        let count = readers(m);
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
            if m.ops[p].outputs.len() != 1 || has_activation(&m.ops[p].op) {
                continue;
            }
            let mut op = m.ops[p].op.clone();
            if !set_activation(&mut op, act) {
                continue;
            }
            m.ops[p].op = op;
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

fn has_activation(op: &Op) -> bool {
    match op {
        Op::FullyConnected { act, .. }
        | Op::Conv2d { act, .. }
        | Op::DepthwiseConv2d { act, .. }
        | Op::Pool2d { act, .. }
        | Op::Concatenation { act, .. }
        | Op::Binary { act, .. } => *act != Activation::None,
        _ => false,
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
