//! The one place where core ops meet TFLite's builtins: each [`OpKind`] of a traced graph
//! and the operators it lowers to, with their options.
//!
//! Lowering is literal (a matmul by a constant is a FULLY_CONNECTED with a zero bias, a
//! subtraction of a constant an addition of its negation); the clean-ups in
//! [`fold`](super::fold) then fold biases, BatchNormalization and activations into the
//! operators before them, as TensorFlow's converter does.

use super::Builder;
use crate::ir::{
    Activation, BinaryKind, CompareKind, LogicalKind, Op, Padding, ReduceKind, UnaryKind, Window,
};
use ferroflow_core::trace::{ConvSpec, OpKind};
use ferroflow_core::{BinaryOp, CmpOp, DType, Error, LogicOp, ReduceOp, Result, Tensor, UnaryOp};
use ferroflow_graph::export::ValueMeta;

/// One input of an op: a tensor already in the model, or a constant of the traced graph
/// (written only where an operator reads it as it is).
#[derive(Clone)]
pub(super) struct Operand {
    /// The model tensor, once there is one.
    pub tensor: Option<usize>,
    /// The value, for a constant.
    pub constant: Option<Tensor>,
    /// The graph value (node, output), which caches a constant's tensor.
    pub value: (usize, usize),
    /// Its facts.
    pub meta: ValueMeta,
}

/// One op application to lower.
pub(super) struct Lowering<'a> {
    /// The op's name in ferroflow (for errors and tensor names).
    pub op: &'a str,
    /// Its inputs.
    pub inputs: &'a [Operand],
    /// Facts of its outputs.
    pub outputs: &'a [ValueMeta],
}

impl Lowering<'_> {
    fn unsupported(&self, why: impl std::fmt::Display) -> Error {
        Error::invalid("tflite export", format!("op '{}': {why}", self.op))
    }

    /// Input `i` as a model tensor (a constant is written on first use).
    pub(super) fn x(&self, b: &mut Builder, i: usize) -> Result<i32> {
        let o = &self.inputs[i];
        if let Some(t) = o.tensor {
            return Ok(t as i32);
        }
        if let Some(&t) = b.constants.get(&o.value) {
            return Ok(t as i32);
        }
        let c = o.constant.as_ref().ok_or_else(|| {
            Error::invalid(
                "tflite export",
                format!("input {i} of '{}' is unset", self.op),
            )
        })?;
        let t = b.constant_any(&format!("{}/const", self.op), c)?;
        b.constants.insert(o.value, t);
        Ok(t as i32)
    }

    fn constant(&self, i: usize) -> Option<&Tensor> {
        self.inputs[i].constant.as_ref()
    }

    fn meta(&self, i: usize) -> &ValueMeta {
        &self.inputs[i].meta
    }

    /// A fresh tensor for output `k`.
    fn out(&self, b: &mut Builder, k: usize) -> Result<usize> {
        b.value_tensor(self.op, &self.outputs[k])
    }

    /// One operator of a decomposition: from inputs to a fresh intermediate tensor shaped
    /// as output 0, returned.
    fn step(&self, b: &mut Builder, op: Op, inputs: &[i32]) -> Result<i32> {
        let y = self.out(b, 0)?;
        b.op(op, inputs, &[y]);
        Ok(y as i32)
    }

    /// One operator from inputs to a fresh output 0, returned.
    fn emit(&self, b: &mut Builder, op: Op, inputs: &[i32]) -> Result<Vec<usize>> {
        let y = self.out(b, 0)?;
        b.op(op, inputs, &[y]);
        Ok(vec![y])
    }
}

/// Lowers one op; returns the model tensors of its outputs.
pub(super) fn lower(b: &mut Builder, kind: &OpKind, l: &Lowering) -> Result<Vec<usize>> {
    match kind {
        OpKind::Unary(op) => unary(b, *op, l),
        OpKind::Binary(op) => binary(b, *op, l),
        OpKind::Compare(op) => {
            let kind = match op {
                CmpOp::Equal => CompareKind::Equal,
                CmpOp::NotEqual => CompareKind::NotEqual,
                CmpOp::Less => CompareKind::Less,
                CmpOp::LessEqual => CompareKind::LessEqual,
                CmpOp::Greater => CompareKind::Greater,
                CmpOp::GreaterEqual => CompareKind::GreaterEqual,
            };
            let ins = [l.x(b, 0)?, l.x(b, 1)?];
            l.emit(b, Op::Compare(kind), &ins)
        }
        OpKind::Logic(LogicOp::Not) => {
            let x = l.x(b, 0)?;
            l.emit(b, Op::Logical(LogicalKind::Not), &[x])
        }
        OpKind::Logic(op) => {
            let op = match op {
                LogicOp::And => Op::Logical(LogicalKind::And),
                LogicOp::Or => Op::Logical(LogicalKind::Or),
                _ => Op::Compare(CompareKind::NotEqual),
            };
            let ins = [l.x(b, 0)?, l.x(b, 1)?];
            l.emit(b, op, &ins)
        }
        OpKind::Select => {
            let ins = [l.x(b, 0)?, l.x(b, 1)?, l.x(b, 2)?];
            l.emit(b, Op::Select, &ins)
        }
        OpKind::Cast(dt) if *dt == l.meta(0).dtype => Ok(vec![l.x(b, 0)? as usize]),
        OpKind::Cast(_) => {
            let x = l.x(b, 0)?;
            l.emit(b, Op::Cast, &[x])
        }
        OpKind::MatMul {
            transpose_a,
            transpose_b,
        } => matmul(b, *transpose_a, *transpose_b, l),
        OpKind::Reshape => {
            let shape = reshape_target(l)?;
            let x = l.x(b, 0)?;
            let s = b.const_i32("shape", &[shape.len() as i32], &shape);
            l.emit(b, Op::Reshape { new_shape: shape }, &[x, s as i32])
        }
        OpKind::Transpose(perm) => {
            let x = l.x(b, 0)?;
            let p: Vec<i32> = perm.iter().map(|&v| v as i32).collect();
            let p = b.const_i32("perm", &[p.len() as i32], &p);
            l.emit(b, Op::Transpose, &[x, p as i32])
        }
        OpKind::BroadcastTo => broadcast_to(b, l),
        OpKind::Reduce { op, axes, keepdims } => {
            if axes.is_empty() {
                return Ok(vec![l.x(b, 0)? as usize]);
            }
            let kind = match op {
                ReduceOp::Sum => ReduceKind::Sum,
                ReduceOp::Prod => ReduceKind::Prod,
                ReduceOp::Max => ReduceKind::Max,
                ReduceOp::Min => ReduceKind::Min,
            };
            let x = l.x(b, 0)?;
            let a: Vec<i32> = axes.iter().map(|&v| v as i32).collect();
            let a = b.const_i32("axes", &[a.len() as i32], &a);
            let op = Op::Reduce {
                kind,
                keep_dims: *keepdims,
            };
            l.emit(b, op, &[x, a as i32])
        }
        OpKind::Conv2d(spec) => conv2d(b, spec, l),
        OpKind::Conv2dTranspose(spec) => conv2d_transpose(b, spec, l),
        OpKind::Pool2d { max, ksize, spec } => {
            let (x, padding) = padded(b, l, spec, *ksize, !*max)?;
            let op = Op::Pool2d {
                max: *max,
                window: Window {
                    padding,
                    stride: spec.strides,
                    dilation: (1, 1),
                },
                filter: *ksize,
                act: Activation::None,
            };
            l.emit(b, op, &[x])
        }
        OpKind::Softmax { log: false } => {
            let x = l.x(b, 0)?;
            l.emit(b, Op::Softmax { beta: 1.0 }, &[x])
        }
        OpKind::Softmax { log: true } => log_softmax(b, l),
        OpKind::Concat(axis) => {
            let ins = (0..l.inputs.len())
                .map(|i| l.x(b, i))
                .collect::<Result<Vec<_>>>()?;
            let op = Op::Concatenation {
                axis: *axis as i32,
                act: Activation::None,
            };
            l.emit(b, op, &ins)
        }
        OpKind::Slice { begin } => slice(b, begin, l),
        OpKind::Gather(axis) => {
            let ins = [l.x(b, 0)?, l.x(b, 1)?];
            l.emit(b, Op::Gather { axis: *axis }, &ins)
        }
        OpKind::Clip => {
            let (lo, hi) = (l.constant(1), l.constant(2));
            let scalar =
                |t: Option<&Tensor>| t.filter(|t| t.numel() == 1).map(|t| t.to_f64_vec()[0]);
            if let (Some(0.0), Some(6.0)) = (scalar(lo), scalar(hi)) {
                let x = l.x(b, 0)?;
                return l.emit(b, Op::Unary(UnaryKind::Relu6), &[x]);
            }
            let ins = [l.x(b, 0)?, l.x(b, 1)?, l.x(b, 2)?];
            let m = b.value_tensor(l.op, &l.outputs[0])?;
            b.op(binary_op(BinaryKind::Maximum), &ins[..2], &[m]);
            l.emit(b, binary_op(BinaryKind::Minimum), &[m as i32, ins[2]])
        }
        OpKind::Identity => Ok(vec![l.x(b, 0)? as usize]),
        OpKind::Remap { maps, fill } => super::remap::lower(b, maps, *fill, l),
        OpKind::Random => {
            Err(l.unsupported("random draws do not export (export the inference graph)"))
        }
        OpKind::Collective => Err(
            l.unsupported("collectives between workers do not export (export the inference graph)")
        ),
        OpKind::Other => Err(l.unsupported("no TFLite lowering")),
    }
}

fn binary_op(kind: BinaryKind) -> Op {
    Op::Binary {
        kind,
        act: Activation::None,
    }
}

fn unary(b: &mut Builder, op: UnaryOp, l: &Lowering) -> Result<Vec<usize>> {
    use UnaryOp as U;
    let x = l.x(b, 0)?;
    let dt = l.meta(0).dtype;
    let simple = |b: &mut Builder, k: UnaryKind| l.emit(b, Op::Unary(k), &[x]);
    match op {
        U::Relu => simple(b, UnaryKind::Relu),
        U::Relu6 => simple(b, UnaryKind::Relu6),
        U::Sigmoid => simple(b, UnaryKind::Logistic),
        U::Tanh => simple(b, UnaryKind::Tanh),
        U::Exp => simple(b, UnaryKind::Exp),
        U::Log => simple(b, UnaryKind::Log),
        U::Sqrt => simple(b, UnaryKind::Sqrt),
        U::Rsqrt => simple(b, UnaryKind::Rsqrt),
        U::Abs => simple(b, UnaryKind::Abs),
        U::Neg => simple(b, UnaryKind::Neg),
        U::Sin => simple(b, UnaryKind::Sin),
        U::Cos => simple(b, UnaryKind::Cos),
        U::Floor => simple(b, UnaryKind::Floor),
        U::Ceil => simple(b, UnaryKind::Ceil),
        U::Round => simple(b, UnaryKind::Round),
        U::Sign => simple(b, UnaryKind::Sign),
        U::LeakyRelu(alpha) => l.emit(
            b,
            Op::LeakyRelu {
                alpha: alpha as f32,
            },
            &[x],
        ),
        U::Gelu => l.emit(b, Op::Gelu { approximate: false }, &[x]),
        U::GeluTanh => l.emit(b, Op::Gelu { approximate: true }, &[x]),
        U::Silu => {
            let s = b.value_tensor(&format!("{}/sigmoid", l.op), &l.outputs[0])?;
            b.op(Op::Unary(UnaryKind::Logistic), &[x], &[s]);
            l.emit(b, binary_op(BinaryKind::Mul), &[x, s as i32])
        }
        U::Square => l.emit(b, binary_op(BinaryKind::Mul), &[x, x]),
        U::Reciprocal => {
            let one = scalar(b, dt, 1.0)?;
            l.emit(b, binary_op(BinaryKind::Div), &[one, x])
        }
        U::Log1p => {
            let one = scalar(b, dt, 1.0)?;
            let s = l.step(b, binary_op(BinaryKind::Add), &[x, one])?;
            l.emit(b, Op::Unary(UnaryKind::Log), &[s])
        }
        U::Elu(1.0) => simple(b, UnaryKind::Elu),
        U::Elu(alpha) => scaled_elu(b, l, x, 1.0, alpha),
        U::Selu => scaled_elu(b, l, x, 1.050_700_987_355_480_5, 1.673_263_242_354_377_3),
        U::Softplus => {
            // max(x, 0) + log(1 + exp(-|x|)), exact where exp(x) overflows.
            let step = |b: &mut Builder, op: Op, ins: &[i32]| l.step(b, op, ins);
            let one = scalar(b, dt, 1.0)?;
            let a = step(b, Op::Unary(UnaryKind::Abs), &[x])?;
            let n = step(b, Op::Unary(UnaryKind::Neg), &[a])?;
            let e = step(b, Op::Unary(UnaryKind::Exp), &[n])?;
            let s = step(b, binary_op(BinaryKind::Add), &[e, one])?;
            let lg = step(b, Op::Unary(UnaryKind::Log), &[s])?;
            let r = step(b, Op::Unary(UnaryKind::Relu), &[x])?;
            l.emit(b, binary_op(BinaryKind::Add), &[r, lg])
        }
        other => Err(l.unsupported(format!("{other:?} has no TFLite builtin here"))),
    }
}

/// `λ·max(x, 0) + λα·min(elu(x), 0)`: ELU with any α, and SELU.
fn scaled_elu(
    b: &mut Builder,
    l: &Lowering,
    x: i32,
    lambda: f64,
    alpha: f64,
) -> Result<Vec<usize>> {
    let dt = l.meta(0).dtype;
    let step = |b: &mut Builder, op: Op, ins: &[i32]| l.step(b, op, ins);
    let (zero, la) = (scalar(b, dt, 0.0)?, scalar(b, dt, lambda * alpha)?);
    let mut pos = step(b, Op::Unary(UnaryKind::Relu), &[x])?;
    if lambda != 1.0 {
        let l1 = scalar(b, dt, lambda)?;
        pos = step(b, binary_op(BinaryKind::Mul), &[pos, l1])?;
    }
    let e = step(b, Op::Unary(UnaryKind::Elu), &[x])?;
    let neg = step(b, binary_op(BinaryKind::Minimum), &[e, zero])?;
    let neg = step(b, binary_op(BinaryKind::Mul), &[neg, la])?;
    l.emit(b, binary_op(BinaryKind::Add), &[pos, neg])
}

/// A scalar constant of `dtype`.
fn scalar(b: &mut Builder, dtype: DType, v: f64) -> Result<i32> {
    let t = Tensor::scalar(v).cast(dtype)?;
    Ok(b.constant_any("scalar", &t)? as i32)
}

fn binary(b: &mut Builder, op: BinaryOp, l: &Lowering) -> Result<Vec<usize>> {
    use BinaryOp as B;
    let float = l.meta(0).dtype.is_float();
    // A constant right operand of subtraction and division becomes an addition and a
    // multiplication, which fold into the weights before them.
    if float {
        if let Some(c) = l.constant(1) {
            let (kind, c) = match op {
                B::Sub => (BinaryKind::Add, c.neg()?),
                B::Div => (BinaryKind::Mul, c.reciprocal()?),
                _ => (kind_of(op, l)?, c.clone()),
            };
            let x = l.x(b, 0)?;
            let c = b.constant_any(&format!("{}/const", l.op), &c)?;
            return l.emit(b, binary_op(kind), &[x, c as i32]);
        }
    }
    let kind = kind_of(op, l)?;
    let ins = [l.x(b, 0)?, l.x(b, 1)?];
    l.emit(b, binary_op(kind), &ins)
}

fn kind_of(op: BinaryOp, l: &Lowering) -> Result<BinaryKind> {
    BinaryKind::from_core(op).ok_or_else(|| l.unsupported(format!("{op:?} has no TFLite builtin")))
}

/// A matmul by a constant right operand is a FULLY_CONNECTED (weights `[out, in]`, zero
/// bias); any other a BATCH_MATMUL.
fn matmul(b: &mut Builder, ta: bool, tb: bool, l: &Lowering) -> Result<Vec<usize>> {
    let w = l.constant(1).filter(|w| w.rank() == 2 && !ta);
    if let Some(w) = w {
        let w = if tb { w.clone() } else { w.t()?.contiguous() };
        let x = l.x(b, 0)?;
        let units = w.shape()[0];
        let wt = b.constant(&format!("{}/weights", l.op), &w)?;
        let bias = b.const_f32(
            &format!("{}/bias", l.op),
            &[units as i32],
            &vec![0.0; units],
        );
        let op = Op::FullyConnected {
            act: Activation::None,
            keep_num_dims: l.outputs[0].shape.len() > 2,
            asymmetric_inputs: false,
        };
        return l.emit(b, op, &[x, wt as i32, bias as i32]);
    }
    let ins = [l.x(b, 0)?, l.x(b, 1)?];
    l.emit(
        b,
        Op::BatchMatMul {
            adj_x: ta,
            adj_y: tb,
        },
        &ins,
    )
}

/// The shape input of a RESHAPE: fixed sizes as they are, the one size that follows the
/// batch as -1.
fn reshape_target(l: &Lowering) -> Result<Vec<i32>> {
    let to = &l.outputs[0];
    let mut shape: Vec<i32> = to.shape.iter().map(|&d| d as i32).collect();
    let dynamic: Vec<usize> = (0..shape.len()).filter(|&i| to.dynamic[i]).collect();
    match dynamic[..] {
        [] => {}
        [i] => shape[i] = -1,
        _ => {
            return Err(l.unsupported(format!(
                "reshaping {:?} to {:?} with two sizes that follow the batch needs a fixed batch",
                l.meta(0).shape,
                to.shape
            )))
        }
    }
    Ok(shape)
}

/// `broadcast_to` as a TILE of the input reshaped to the output's rank (sizes that follow
/// the batch must already be there).
fn broadcast_to(b: &mut Builder, l: &Lowering) -> Result<Vec<usize>> {
    let (from, to) = (l.meta(0), &l.outputs[0]);
    let lead = to.shape.len() - from.shape.len();
    let mut multiples = Vec::with_capacity(to.shape.len());
    for i in 0..to.shape.len() {
        let (d, dy) = (to.shape[i], to.dynamic[i]);
        let (s, sdy) = match i.checked_sub(lead) {
            Some(j) => (from.shape[j], from.dynamic[j]),
            None => (1, false),
        };
        if dy && !sdy {
            return Err(l.unsupported(format!(
                "broadcasting {:?} to a size that follows the batch ({:?}) needs a fixed batch",
                from.shape, to.shape
            )));
        }
        multiples.push(if sdy { 1 } else { (d / s.max(1)) as i32 });
    }
    let mut x = l.x(b, 0)?;
    if lead > 0 {
        let mut shape: Vec<i32> = vec![1; lead];
        shape.extend(
            from.shape
                .iter()
                .zip(&from.dynamic)
                .map(|(&d, &dy)| if dy { -1 } else { d as i32 }),
        );
        let meta = ValueMeta {
            shape: [vec![1; lead], from.shape.clone()].concat(),
            dynamic: [vec![false; lead], from.dynamic.clone()].concat(),
            dtype: from.dtype,
        };
        let r = b.value_tensor(&format!("{}/reshape", l.op), &meta)?;
        let s = b.const_i32("shape", &[shape.len() as i32], &shape);
        b.op(Op::Reshape { new_shape: shape }, &[x, s as i32], &[r]);
        x = r as i32;
    }
    if multiples.iter().all(|&m| m == 1) {
        return Ok(vec![x as usize]);
    }
    let m = b.const_i32("multiples", &[multiples.len() as i32], &multiples);
    l.emit(b, Op::Tile, &[x, m as i32])
}

/// TensorFlow's SAME padding of one axis: (before, after).
fn same_pads(input: usize, kernel: usize, stride: usize, dilation: usize) -> (usize, usize) {
    let out = input.div_ceil(stride.max(1));
    let reach = (out.max(1) - 1) * stride + (kernel - 1) * dilation + 1;
    let total = reach.saturating_sub(input);
    (total / 2, total - total / 2)
}

/// The SAME or VALID padding that gives `spec`'s pads on an `input` (h, w), if one does.
fn padding_of(spec: &ConvSpec, input: (usize, usize), kernel: (usize, usize)) -> Option<Padding> {
    let p = spec.pads;
    if p == [0; 4] {
        return Some(Padding::Valid);
    }
    let (t, bo) = same_pads(input.0, kernel.0, spec.strides.0, spec.dilations.0);
    let (le, r) = same_pads(input.1, kernel.1, spec.strides.1, spec.dilations.1);
    (p == [t, le, bo, r]).then_some(Padding::Same)
}

/// The window op's input, with its padding: SAME or VALID where the spec's pads are one of
/// them, else a PAD op then VALID (refused where zeros would be counted: `exact`).
fn padded(
    b: &mut Builder,
    l: &Lowering,
    spec: &ConvSpec,
    kernel: (usize, usize),
    exact: bool,
) -> Result<(i32, Padding)> {
    let m = l.meta(0);
    if m.shape.len() != 4 || m.dynamic[1] || m.dynamic[2] {
        return Err(l.unsupported(format!(
            "window ops need an NHWC input with fixed height and width, not {:?}",
            m.shape
        )));
    }
    let x = l.x(b, 0)?;
    if let Some(p) = padding_of(spec, (m.shape[1], m.shape[2]), kernel) {
        return Ok((x, p));
    }
    if exact {
        return Err(l.unsupported(format!(
            "average pooling with pads {:?} (neither SAME nor VALID) has no TFLite form",
            spec.pads
        )));
    }
    let [t, le, bo, r] = spec.pads.map(|v| v as i32);
    let pads = b.const_i32("paddings", &[4, 2], &[0, 0, t, bo, le, r, 0, 0]);
    let meta = ValueMeta {
        shape: vec![
            m.shape[0],
            m.shape[1] + spec.pads[0] + spec.pads[2],
            m.shape[2] + spec.pads[1] + spec.pads[3],
            m.shape[3],
        ],
        ..m.clone()
    };
    let y = b.value_tensor(&format!("{}/pad", l.op), &meta)?;
    b.op(Op::Pad, &[x, pads as i32], &[y]);
    Ok((y as i32, Padding::Valid))
}

/// A filter in TFLite's layout: the constant rearranged, or a TRANSPOSE / RESHAPE op.
fn filter(b: &mut Builder, l: &Lowering, perm: &[usize], reshape: Option<&[usize]>) -> Result<i32> {
    if let Some(w) = l.constant(1) {
        let w = match reshape {
            Some(s) => w.reshape_to(s)?,
            None => w.transpose(perm)?.contiguous(),
        };
        return Ok(b.constant(&format!("{}/filter", l.op), &w)? as i32);
    }
    let w = l.x(b, 1)?;
    let m = l.meta(1);
    let (op, shape, arg): (Op, Vec<usize>, Vec<i32>) = match reshape {
        Some(s) => {
            let s32: Vec<i32> = s.iter().map(|&d| d as i32).collect();
            (
                Op::Reshape {
                    new_shape: s32.clone(),
                },
                s.to_vec(),
                s32,
            )
        }
        None => (
            Op::Transpose,
            perm.iter().map(|&p| m.shape[p]).collect(),
            perm.iter().map(|&p| p as i32).collect(),
        ),
    };
    let meta = ValueMeta {
        dynamic: vec![false; shape.len()],
        shape,
        dtype: m.dtype,
    };
    let y = b.value_tensor(&format!("{}/filter", l.op), &meta)?;
    let a = b.const_i32("filter_layout", &[arg.len() as i32], &arg);
    b.op(op, &[w, a as i32], &[y]);
    Ok(y as i32)
}

fn conv2d(b: &mut Builder, spec: &ConvSpec, l: &Lowering) -> Result<Vec<usize>> {
    let k = l.meta(1).shape.clone(); // [kh, kw, cin / groups, cout]
    let cin = l.meta(0).shape.get(3).copied().unwrap_or(0);
    let cout = k[3];
    let (x, padding) = padded(b, l, spec, (k[0], k[1]), false)?;
    let window = Window {
        padding,
        stride: spec.strides,
        dilation: spec.dilations,
    };
    let bias = b.const_f32(&format!("{}/bias", l.op), &[cout as i32], &vec![0.0; cout]);
    if spec.groups == 1 {
        let w = filter(b, l, &[3, 0, 1, 2], None)?;
        let op = Op::Conv2d {
            window,
            act: Activation::None,
        };
        return l.emit(b, op, &[x, w, bias as i32]);
    }
    if spec.groups == cin && k[2] == 1 {
        let w = filter(b, l, &[], Some(&[1, k[0], k[1], cout]))?;
        let op = Op::DepthwiseConv2d {
            window,
            multiplier: cout / cin.max(1),
            act: Activation::None,
        };
        return l.emit(b, op, &[x, w, bias as i32]);
    }
    Err(l.unsupported(format!(
        "a convolution in {} groups of {} channels has no TFLite builtin",
        spec.groups, k[2]
    )))
}

/// TRANSPOSE_CONV: the spec is the forward convolution's, from this op's output to its
/// input; its pads must be that convolution's SAME or VALID.
fn conv2d_transpose(b: &mut Builder, spec: &ConvSpec, l: &Lowering) -> Result<Vec<usize>> {
    let (out, inp, k) = (&l.outputs[0], l.meta(0), l.meta(1).shape.clone()); // k: [kh, kw, cout, cin]
    if out.shape.len() != 4 || out.dynamic[1] || out.dynamic[2] {
        return Err(l.unsupported("a transposed convolution needs fixed height and width"));
    }
    if spec.dilations != (1, 1) {
        return Err(l.unsupported("TRANSPOSE_CONV has no dilation"));
    }
    let forward = |p: Padding| -> (usize, usize) {
        let f = |o: usize, k: usize, s: usize| match p {
            Padding::Same => o.div_ceil(s),
            Padding::Valid => (o + s).saturating_sub(k) / s,
        };
        (
            f(out.shape[1], k[0], spec.strides.0),
            f(out.shape[2], k[1], spec.strides.1),
        )
    };
    let padding = padding_of(spec, (out.shape[1], out.shape[2]), (k[0], k[1]))
        .filter(|&p| forward(p) == (inp.shape[1], inp.shape[2]))
        .ok_or_else(|| {
            l.unsupported(format!(
                "pads {:?} from {:?} to {:?} are neither SAME nor VALID",
                spec.pads, inp.shape, out.shape
            ))
        })?;
    let hwc: Vec<i32> = out.shape[1..].iter().map(|&d| d as i32).collect();
    let shape = if out.dynamic[0] {
        // [batch of the input, h, w, c], computed at run time.
        let x = l.x(b, 0)?;
        let n = b.runtime_dim(x as usize, 0)?;
        let rest = b.const_i32("hwc", &[3], &hwc);
        let full = b.int_vector("output_shape", 4)?;
        let cat = Op::Concatenation {
            axis: 0,
            act: Activation::None,
        };
        b.op(cat, &[n as i32, rest as i32], &[full]);
        full as i32
    } else {
        let all = [vec![out.shape[0] as i32], hwc].concat();
        b.const_i32("output_shape", &[4], &all) as i32
    };
    let w = filter(b, l, &[2, 0, 1, 3], None)?;
    let x = l.x(b, 0)?;
    let cout = k[2];
    let bias = b.const_f32(&format!("{}/bias", l.op), &[cout as i32], &vec![0.0; cout]);
    let op = Op::TransposeConv {
        window: Window {
            padding,
            stride: spec.strides,
            dilation: (1, 1),
        },
        act: Activation::None,
    };
    l.emit(b, op, &[shape, w, x, bias as i32])
}

/// `x - log(sum(exp(x - max(x))))` - max(x)` over the last axis, as TensorFlow computes it.
fn log_softmax(b: &mut Builder, l: &Lowering) -> Result<Vec<usize>> {
    let m = l.meta(0);
    let x = l.x(b, 0)?;
    let rank = m.shape.len();
    let mut kept = m.clone();
    if let Some(last) = kept.shape.last_mut() {
        *last = 1;
    }
    let axis = b.const_i32("axis", &[1], &[rank as i32 - 1]);
    let reduce = |kind| Op::Reduce {
        kind,
        keep_dims: true,
    };
    let max = b.value_tensor("max", &kept)?;
    b.op(reduce(ReduceKind::Max), &[x, axis as i32], &[max]);
    let shifted = b.value_tensor("shifted", m)?;
    b.op(binary_op(BinaryKind::Sub), &[x, max as i32], &[shifted]);
    let e = b.value_tensor("exp", m)?;
    b.op(Op::Unary(UnaryKind::Exp), &[shifted as i32], &[e]);
    let s = b.value_tensor("sum", &kept)?;
    b.op(reduce(ReduceKind::Sum), &[e as i32, axis as i32], &[s]);
    let ls = b.value_tensor("log_sum", &kept)?;
    b.op(Op::Unary(UnaryKind::Log), &[s as i32], &[ls]);
    l.emit(b, binary_op(BinaryKind::Sub), &[shifted as i32, ls as i32])
}

/// SLICE with the output's sizes; an axis that follows the batch is taken whole (size -1).
fn slice(b: &mut Builder, begin: &[usize], l: &Lowering) -> Result<Vec<usize>> {
    let (from, to) = (l.meta(0), &l.outputs[0]);
    let mut sizes = Vec::with_capacity(begin.len());
    for (a, &s) in begin.iter().enumerate() {
        if to.dynamic[a] {
            if s != 0 || !from.dynamic[a] || from.shape[a] != to.shape[a] {
                return Err(l.unsupported(format!(
                    "slicing axis {a}, whose size follows the batch, needs a fixed batch"
                )));
            }
            sizes.push(-1);
        } else {
            sizes.push(to.shape[a] as i32);
        }
    }
    let x = l.x(b, 0)?;
    let n = begin.len() as i32;
    let bv: Vec<i32> = begin.iter().map(|&v| v as i32).collect();
    let bt = b.const_i32("begin", &[n], &bv);
    let st = b.const_i32("size", &[n], &sizes);
    l.emit(b, Op::Slice, &[x, bt as i32, st as i32])
}
