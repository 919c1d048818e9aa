//! Model clean-ups after lowering, each a rewrite applied until it applies nowhere:
//! per-channel affine chains merged and folded (BatchNormalization) into the weights of the
//! convolution or dense layer before them, means and clamps recognised, activations fused
//! into the op before them, and unused tensors dropped.

use crate::ir::{
    Activation, BinaryKind, ElementType, LiteModel, LiteTensor, Op, ReduceKind, UnaryKind,
};

/// The op that writes tensor `t`.
fn producer(m: &LiteModel, t: usize) -> Option<usize> {
    m.ops.iter().position(|op| op.outputs.contains(&(t as i32)))
}

/// Applies `rewrite(m, readers, j)` at every op `j` until it applies nowhere. A rewrite
/// returns `Some` when it changed the model; the scan then starts again with fresh reader
/// counts (it may have removed ops).
fn to_fixed_point(
    m: &mut LiteModel,
    mut rewrite: impl FnMut(&mut LiteModel, &[usize], usize) -> Option<()>,
) {
    'scan: loop {
        let count = m.readers();
        for j in 0..m.ops.len() {
            if rewrite(m, &count, j).is_some() {
                continue 'scan;
            }
        }
        return;
    }
}

/// The op writing op `j`'s first input, when nothing else reads that tensor.
fn sole_producer(m: &LiteModel, count: &[usize], j: usize) -> Option<usize> {
    let y = usize::try_from(*m.ops[j].inputs.first()?).ok()?;
    (count[y] == 1).then(|| producer(m, y))?
}

/// Op `i` takes over op `j`'s output, and `j` is removed.
fn absorb(m: &mut LiteModel, i: usize, j: usize) {
    m.ops[i].outputs[0] = m.ops[j].outputs[0];
    m.ops.remove(j);
}

/// The kind of an ADD or MUL without a fused activation.
fn affine_kind(op: &Op) -> Option<BinaryKind> {
    match op {
        Op::Binary {
            kind: k @ (BinaryKind::Add | BinaryKind::Mul),
            act: Activation::None,
        } => Some(*k),
        _ => None,
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

/// Folds `MUL(y, s)` and `ADD(y, c)` by constant per-output-channel (or scalar) vectors into
/// the filter and bias of the FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D writing `y`,
/// when that op has no activation and `y` has no other reader.
pub(super) fn fold_affine_into_weights(m: &mut LiteModel) {
    to_fixed_point(m, |m, count, i| {
        let kind = affine_kind(&m.ops[i].op)?;
        let (constant, _) = channel_constant(m, i)?;
        let p = sole_producer(m, count, i)?;
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
            _ => return None,
        };
        let (w, bias) = match m.ops[p].inputs[..] {
            [_, w, bias] if w >= 0 && bias >= 0 => (w as usize, bias as usize),
            _ => return None,
        };
        if count[w] != 1 || count[bias] != 1 {
            return None;
        }
        let (mut wv, mut bv) = (m.tensors[w].f32_values()?, m.tensors[bias].f32_values()?);
        let channels = bv.len();
        if constant.len() != channels && constant.len() != 1 {
            return None;
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
        absorb(m, p, i);
        Some(())
    });
}

/// Merges chains of per-channel constant ADD and MUL ops (an unfolded BatchNormalization:
/// add −mean, multiply by the scale, add beta) into one MUL and one ADD:
/// `(x + a)·s = x·s + a·s`, `(x + a) + c = x + (a + c)`, `(x·s)·t = x·(s·t)`.
pub(super) fn merge_affine_chains(m: &mut LiteModel) {
    to_fixed_point(m, |m, count, j| {
        let second = affine_kind(&m.ops[j].op)?;
        let i = sole_producer(m, count, j)?;
        let first = affine_kind(&m.ops[i].op)?;
        let ((a, sa), (c, sc)) = (channel_constant(m, i)?, channel_constant(m, j)?);
        if a.len() != c.len() && a.len() != 1 && c.len() != 1 {
            return None;
        }
        let n = a.len().max(c.len());
        let wide = if a.len() >= c.len() { sa } else { sc.clone() };
        let at = |v: &[f32], k: usize| v[if v.len() == 1 { 0 } else { k }];
        let combine = |f: fn(f32, f32) -> f32| -> Vec<f32> {
            (0..n).map(|k| f(at(&a, k), at(&c, k))).collect()
        };
        let name = m.tensors[m.ops[i].inputs[1] as usize].name.clone();
        let set = |m: &mut LiteModel, op: usize, kind, shape: &[i32], values: &[f32]| {
            let t = m.add_tensor(LiteTensor::constant_f32(&name, shape, values));
            m.ops[op].op = Op::Binary {
                kind,
                act: Activation::None,
            };
            m.ops[op].inputs[1] = t as i32;
        };
        match (first, second) {
            (BinaryKind::Add, BinaryKind::Add) => {
                set(m, i, BinaryKind::Add, &wide, &combine(|p, q| p + q));
                absorb(m, i, j);
            }
            (BinaryKind::Mul, BinaryKind::Mul) => {
                set(m, i, BinaryKind::Mul, &wide, &combine(|p, q| p * q));
                absorb(m, i, j);
            }
            (BinaryKind::Add, BinaryKind::Mul) => {
                set(m, i, BinaryKind::Mul, &sc, &c);
                set(m, j, BinaryKind::Add, &wide, &combine(|p, q| p * q));
            }
            _ => return None,
        }
        Some(())
    });
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
    to_fixed_point(m, |m, count, i| {
        if affine_kind(&m.ops[i].op)? != BinaryKind::Mul {
            return None;
        }
        let scale = match channel_constant(m, i)?.0[..] {
            [v] => v,
            _ => return None,
        };
        let p = sole_producer(m, count, i)?;
        let Op::Reduce {
            kind: ReduceKind::Sum,
            keep_dims,
        } = m.ops[p].op
        else {
            return None;
        };
        let axes = i32_values(m, m.ops[p].inputs[1])?;
        let dims = m.tensors[usize::try_from(m.ops[p].inputs[0]).ok()?].declared_dims();
        let rank = dims.len() as i32;
        let mut n = 1.0f64;
        for a in axes {
            let a = if a < 0 { a + rank } else { a };
            match dims.get(usize::try_from(a).ok()?) {
                Some(&d) if d >= 0 => n *= d as f64,
                _ => return None,
            }
        }
        if ((scale as f64) * n - 1.0).abs() > 1e-6 {
            return None;
        }
        m.ops[p].op = Op::Reduce {
            kind: ReduceKind::Mean,
            keep_dims,
        };
        absorb(m, p, i);
        Some(())
    });
}

/// Rewrites clamps by constants into activations: `MAXIMUM(x, 0)` of a float is a RELU,
/// and `MINIMUM(RELU(x), 6)` a RELU6 (how imported clips arrive).
pub(super) fn clamps_to_activations(m: &mut LiteModel) {
    let scalar_is = |m: &LiteModel, op: usize, kind: BinaryKind, v: f32| {
        matches!(m.ops[op].op, Op::Binary { kind: k, act: Activation::None } if k == kind)
            && channel_constant(m, op).is_some_and(|(c, _)| c[..] == [v])
    };
    for i in 0..m.ops.len() {
        let float = m.ops[i].inputs[0] >= 0
            && m.tensors[m.ops[i].inputs[0] as usize].dtype == ElementType::F32;
        if float && scalar_is(m, i, BinaryKind::Maximum, 0.0) {
            m.ops[i].op = Op::Unary(UnaryKind::Relu);
            m.ops[i].inputs.truncate(1);
        }
    }
    to_fixed_point(m, |m, count, j| {
        if !scalar_is(m, j, BinaryKind::Minimum, 6.0) {
            return None;
        }
        let i = sole_producer(m, count, j)?;
        if m.ops[i].op != Op::Unary(UnaryKind::Relu) {
            return None;
        }
        m.ops[i].op = Op::Unary(UnaryKind::Relu6);
        absorb(m, i, j);
        Some(())
    });
}

/// Fuses RELU / RELU6 ops into the op writing their input when it carries a fused
/// activation and nothing else reads the intermediate (LiteRT's kernels apply only the ReLU
/// ranges as fused activations).
pub(super) fn fuse_activations(m: &mut LiteModel) {
    to_fixed_point(m, |m, count, i| {
        let act = match m.ops[i].op {
            Op::Unary(UnaryKind::Relu) => Activation::Relu,
            Op::Unary(UnaryKind::Relu6) => Activation::Relu6,
            _ => return None,
        };
        let p = sole_producer(m, count, i)?;
        if m.ops[p].outputs.len() != 1 {
            return None;
        }
        match m.ops[p].op.fused_activation_mut() {
            Some(slot) if *slot == Activation::None => *slot = act,
            _ => return None,
        }
        absorb(m, p, i);
        Some(())
    });
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
