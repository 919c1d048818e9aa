//! Graph clean-ups after lowering: per-channel affine ops (BatchNormalization) folded into
//! the weights of the convolution or dense layer before them, activations fused into the
//! op before them, and unused tensors dropped.

use crate::ir::{
    Activation, BinaryKind, ElementType, LiteModel, LiteTensor, Op, ReduceKind, UnaryKind,
};

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
            // Per output channel: every axis but the last is 1.
            let shape = &m.tensors[c as usize].shape;
            if shape.iter().rev().skip(1).any(|&d| d != 1) {
                continue;
            }
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

/// A per-channel float constant operand of `op`: (values, shape) when its second input is
/// a float32 constant whose axes but the last are 1.
fn channel_constant(m: &LiteModel, op: usize) -> Option<(Vec<f32>, Vec<i32>)> {
    let c = m.ops[op].inputs.get(1).copied()?;
    let t = m.tensors.get(usize::try_from(c).ok()?)?;
    if t.shape.iter().rev().skip(1).any(|&d| d != 1) {
        return None;
    }
    Some((t.f32_values()?, t.shape.clone()))
}

/// Merges chains of per-channel constant ADD and MUL ops (an unfolded BatchNormalization:
/// add −mean, multiply by the scale, add beta) into one MUL and one ADD:
/// `(x + a)·s = x·s + a·s`, `(x + a) + c = x + (a + c)`, `(x·s)·t = x·(s·t)`.
pub(super) fn merge_affine_chains(m: &mut LiteModel) {
    let affine = |op: &Op| match op {
        Op::Binary {
            kind: k @ (BinaryKind::Add | BinaryKind::Mul),
            act: Activation::None,
        } => Some(*k),
        _ => None,
    };
    loop {
        let count = m.readers();
        let mut done = false;
        for j in 0..m.ops.len() {
            let Some(second) = affine(&m.ops[j].op) else {
                continue;
            };
            let y = m.ops[j].inputs[0];
            if y < 0 || count[y as usize] != 1 {
                continue;
            }
            let Some(i) = producer(m, y as usize) else {
                continue;
            };
            let Some(first) = affine(&m.ops[i].op) else {
                continue;
            };
            let (Some((a, sa)), Some((c, sc))) = (channel_constant(m, i), channel_constant(m, j))
            else {
                continue;
            };
            if a.len() != c.len() && a.len() != 1 && c.len() != 1 {
                continue;
            }
            let n = a.len().max(c.len());
            let shape = if a.len() >= c.len() { sa } else { sc };
            let at = |v: &[f32], k: usize| v[if v.len() == 1 { 0 } else { k }];
            let combine = |f: fn(f32, f32) -> f32| -> Vec<f32> {
                (0..n).map(|k| f(at(&a, k), at(&c, k))).collect()
            };
            let (first_op, first_c, second_op, second_c) = match (first, second) {
                (BinaryKind::Add, BinaryKind::Add) => {
                    (BinaryKind::Add, combine(|p, q| p + q), None, vec![])
                }
                (BinaryKind::Mul, BinaryKind::Mul) => {
                    (BinaryKind::Mul, combine(|p, q| p * q), None, vec![])
                }
                (BinaryKind::Add, BinaryKind::Mul) => (
                    BinaryKind::Mul,
                    c.clone(),
                    Some(BinaryKind::Add),
                    combine(|p, q| p * q),
                ),
                _ => continue,
            };
            let name = m.tensors[m.ops[i].inputs[1] as usize].name.clone();
            let first_shape = if second_op.is_some() {
                m.tensors[m.ops[j].inputs[1] as usize].shape.clone()
            } else {
                shape.clone()
            };
            let k1 = m.add_tensor(LiteTensor::constant_f32(&name, &first_shape, &first_c));
            m.ops[i].op = Op::Binary {
                kind: first_op,
                act: Activation::None,
            };
            m.ops[i].inputs[1] = k1 as i32;
            match second_op {
                Some(kind) => {
                    let k2 = m.add_tensor(LiteTensor::constant_f32(&name, &shape, &second_c));
                    m.ops[j].op = Op::Binary {
                        kind,
                        act: Activation::None,
                    };
                    m.ops[j].inputs[1] = k2 as i32;
                }
                None => {
                    m.ops[i].outputs[0] = m.ops[j].outputs[0];
                    m.ops.remove(j);
                }
            }
            done = true;
            break;
        }
        if !done {
            return;
        }
    }
}

/// The values of an int32 constant.
fn i32_values(m: &LiteModel, t: i32) -> Option<Vec<i32>> {
    let t = m.tensors.get(usize::try_from(t).ok()?)?;
    if t.dtype != ElementType::I32 {
        return None;
    }
    let d = t.data.as_ref()?;
    Some(
        d.chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Turns `SUM(x, axes)` whose only reader multiplies it by the scalar `1/n`, `n` the
/// number of elements summed, into `MEAN(x, axes)` (how a traced mean arrives).
pub(super) fn sum_then_scale_to_mean(m: &mut LiteModel) {
    loop {
        let count = m.readers();
        let mut done = false;
        for i in 0..m.ops.len() {
            let Op::Binary {
                kind: BinaryKind::Mul,
                act: Activation::None,
            } = m.ops[i].op
            else {
                continue;
            };
            let (y, c) = (m.ops[i].inputs[0], m.ops[i].inputs[1]);
            if y < 0 || c < 0 || count[y as usize] != 1 {
                continue;
            }
            let scale = match m.tensors[c as usize].f32_values().as_deref() {
                Some(&[v]) => v,
                _ => continue,
            };
            let Some(p) = producer(m, y as usize) else {
                continue;
            };
            let Op::Reduce {
                kind: ReduceKind::Sum,
                keep_dims,
            } = m.ops[p].op
            else {
                continue;
            };
            let x = &m.tensors[m.ops[p].inputs[0] as usize];
            let Some(axes) = i32_values(m, m.ops[p].inputs[1]) else {
                continue;
            };
            let dims = x.declared_dims();
            let rank = dims.len() as i32;
            let mut n = 1.0f64;
            let mut fixed = true;
            for a in axes {
                let a = if a < 0 { a + rank } else { a };
                match dims.get(a as usize) {
                    Some(&d) if d >= 0 && (0..rank).contains(&a) => n *= d as f64,
                    _ => fixed = false,
                }
            }
            if !fixed || ((scale as f64) * n - 1.0).abs() > 1e-6 {
                continue;
            }
            m.ops[p].op = Op::Reduce {
                kind: ReduceKind::Mean,
                keep_dims,
            };
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

/// Rewrites clamps by constants into activations: `MAXIMUM(x, 0)` is a RELU, and
/// `MINIMUM(RELU(x), 6)` (or of `MAXIMUM(x, 0)`) a RELU6 (how imported clips arrive).
pub(super) fn clamps_to_activations(m: &mut LiteModel) {
    let scalar_of = |m: &LiteModel, op: usize| -> Option<f32> {
        match channel_constant(m, op)?.0[..] {
            [v] => Some(v),
            _ => None,
        }
    };
    let is_binary = |op: &Op, k: BinaryKind| matches!(op, Op::Binary { kind, act: Activation::None } if *kind == k);
    for i in 0..m.ops.len() {
        let float = m.ops[i].inputs[0] >= 0
            && m.tensors[m.ops[i].inputs[0] as usize].dtype == ElementType::F32;
        if float && is_binary(&m.ops[i].op, BinaryKind::Maximum) && scalar_of(m, i) == Some(0.0) {
            m.ops[i].op = Op::Unary(UnaryKind::Relu);
            m.ops[i].inputs.truncate(1);
        }
    }
    loop {
        let count = m.readers();
        let mut done = false;
        for j in 0..m.ops.len() {
            if !is_binary(&m.ops[j].op, BinaryKind::Minimum) || scalar_of(m, j) != Some(6.0) {
                continue;
            }
            let y = m.ops[j].inputs[0];
            if y < 0 || count[y as usize] != 1 {
                continue;
            }
            let Some(i) = producer(m, y as usize) else {
                continue;
            };
            if m.ops[i].op != Op::Unary(UnaryKind::Relu) {
                continue;
            }
            m.ops[i].op = Op::Unary(UnaryKind::Relu6);
            m.ops[i].outputs[0] = m.ops[j].outputs[0];
            m.ops.remove(j);
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
