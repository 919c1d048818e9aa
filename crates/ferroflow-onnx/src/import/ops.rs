//! ONNX ops run with ferroflow's eager ops: one table from op type to handler.
//!
//! Images arrive NCHW; window ops transpose to ferroflow's NHWC around the kernel (a view
//! on the way in). Values that only depend on shapes (`Shape`, `Range`, the sizes a
//! `Reshape` reads) are read on the host: under `function` they become constants of the
//! plan traced for those input shapes, which is what they are.

use super::attrs::Attrs;
use crate::proto::NodeProto;
use ferroflow_core::ops::conv::Padding;
use ferroflow_core::ops::remap::PadMode;
use ferroflow_core::ops::slice::SliceArg;
use ferroflow_core::{BinaryOp, CmpOp, DType, Error, ReduceOp, Result, Tensor, UnaryOp};
use std::collections::HashMap;

/// What a handler sees of one node application.
pub struct Ctx<'a> {
    pub(super) node: &'a NodeProto,
    ins: &'a [Option<Tensor>],
    /// Each input's channels-last (NHWC) form, where its producer computed in that layout.
    nhwc: &'a [Option<Tensor>],
    /// The channels-last forms of the outputs, where the handler computed in that layout.
    nhwc_out: std::cell::RefCell<Vec<Option<Tensor>>>,
    opset: i64,
    pub(super) a: Attrs<'a>,
    env: &'a HashMap<String, Tensor>,
}

type Handler = fn(&Ctx) -> Result<Vec<Tensor>>;

impl Ctx<'_> {
    fn op(&self) -> &str {
        self.node.op_type.as_deref().unwrap_or("")
    }

    pub(super) fn err(&self, why: impl std::fmt::Display) -> Error {
        Error::invalid("onnx", format!("{}: {why}", self.op()))
    }

    /// Required input `i`.
    pub(super) fn x(&self, i: usize) -> Result<&Tensor> {
        self.ins
            .get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| self.err(format!("input {i} is missing")))
    }

    /// Input `i` (rank 4, NCHW) in channels-last order: its producer's NHWC result where
    /// there is one, else a transposed view.
    fn x_nhwc(&self, i: usize) -> Result<Tensor> {
        match self.nhwc.get(i).and_then(Option::as_ref) {
            Some(t) => Ok(t.clone()),
            None => self.x(i)?.transpose(&[0, 2, 3, 1]),
        }
    }

    /// One output computed channels-last: kept as such for consumers that want it, and
    /// returned as the NCHW view the graph means.
    fn emit_nhwc(&self, y: Tensor) -> Result<Vec<Tensor>> {
        let logical = y.transpose(&[0, 3, 1, 2])?;
        *self.nhwc_out.borrow_mut() = vec![Some(y)];
        Ok(vec![logical])
    }

    /// Optional input `i`.
    pub(super) fn opt(&self, i: usize) -> Option<&Tensor> {
        self.ins.get(i).and_then(Option::as_ref)
    }

    /// The integer values of input `i` (a shape, axes, pads), read on the host.
    fn ints(&self, i: usize) -> Result<Vec<i64>> {
        ints(self.x(i)?)
    }

    /// Integer-list attribute `name` (opsets before `from`), or input `i` (from `from` on).
    fn ints_attr_or_input(&self, name: &str, i: usize, from: i64) -> Result<Option<Vec<i64>>> {
        if self.opset < from {
            Ok(self.a.ints(name))
        } else {
            self.opt(i).map(ints).transpose()
        }
    }
}

fn ints(t: &Tensor) -> Result<Vec<i64>> {
    t.cast(DType::I64)?.to_vec::<i64>()
}

fn one(t: Tensor) -> Result<Vec<Tensor>> {
    Ok(vec![t])
}

/// An axis in `-rank..rank`, normalised.
fn axis(c: &Ctx, a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(c.err(format!("axis {a} is out of range for rank {rank}")));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

/// What a node produced: its outputs (in the graph's layout) and, per output, its
/// channels-last form where one was computed.
pub type NodeOutputs = (Vec<Tensor>, Vec<Option<Tensor>>);

/// Runs one node; `nhwc` holds the channels-last forms of its inputs where known.
pub fn run(
    node: &NodeProto,
    ins: &[Option<Tensor>],
    nhwc: &[Option<Tensor>],
    opset: i64,
    env: &HashMap<String, Tensor>,
) -> Result<NodeOutputs> {
    let op = node.op_type.as_deref().unwrap_or("");
    let def = TABLE
        .iter()
        .find(|d| d.name == op)
        .ok_or_else(|| Error::invalid("onnx", format!("op type {op} is not supported")))?;
    let ctx = |ins: &'_ [Option<Tensor>], nhwc: &'_ [Option<Tensor>]| -> Result<NodeOutputs> {
        let c = Ctx {
            node,
            ins,
            nhwc,
            nhwc_out: std::cell::RefCell::new(Vec::new()),
            opset,
            a: Attrs::of(node),
            env,
        };
        let outs = (def.run)(&c)?;
        let mut channels_last = c.nhwc_out.into_inner();
        channels_last.resize(outs.len(), None);
        Ok((outs, channels_last))
    };
    if def.elementwise {
        if let Some(r) = channels_last_elementwise(ins, nhwc, |i| ctx(i, &[]))? {
            return Ok(r);
        }
    }
    ctx(ins, nhwc)
}

/// An elementwise op with an input already channels-last runs channels-last: every
/// input of rank <= 4 is brought to that order (broadcasting commutes with permuting the
/// axes), and each rank-4 output is returned as its NCHW view. `None` where it does not
/// apply.
fn channels_last_elementwise(
    ins: &[Option<Tensor>],
    nhwc: &[Option<Tensor>],
    run: impl Fn(&[Option<Tensor>]) -> Result<NodeOutputs>,
) -> Result<Option<NodeOutputs>> {
    let known = nhwc.iter().any(Option::is_some);
    if !known || ins.iter().flatten().any(|t| t.rank() > 4) {
        return Ok(None);
    }
    let permuted = ins
        .iter()
        .enumerate()
        .map(|(i, t)| match (t, nhwc.get(i).and_then(Option::as_ref)) {
            (_, Some(n)) => Ok(Some(n.clone())),
            (Some(t), None) => {
                let mut shape = vec![1usize; 4 - t.rank()];
                shape.extend_from_slice(t.shape());
                Ok(Some(t.reshape_to(&shape)?.transpose(&[0, 2, 3, 1])?))
            }
            (None, None) => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    let (outs, _) = run(&permuted)?;
    if outs.iter().any(|o| o.rank() != 4) {
        return Ok(None);
    }
    let logical = outs
        .iter()
        .map(|o| o.transpose(&[0, 3, 1, 2]))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some((logical, outs.into_iter().map(Some).collect())))
}

/// Whether import runs `op` (ONNX's default domain).
pub fn is_supported(op: &str) -> bool {
    TABLE.iter().any(|d| d.name == op)
}

/// The op types import runs.
pub fn supported_ops() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|d| d.name)
}

macro_rules! unary_ops {
    ($($name:literal => $op:expr),* $(,)?) => {
        &[$(($name, |c: &Ctx| one(c.x(0)?.unary($op)?)),)*]
    };
}

const UNARY: &[(&str, Handler)] = unary_ops! {
    "Relu" => UnaryOp::Relu, "Sigmoid" => UnaryOp::Sigmoid, "Tanh" => UnaryOp::Tanh,
    "Exp" => UnaryOp::Exp, "Log" => UnaryOp::Log, "Sqrt" => UnaryOp::Sqrt,
    "Neg" => UnaryOp::Neg, "Abs" => UnaryOp::Abs, "Reciprocal" => UnaryOp::Reciprocal,
    "Floor" => UnaryOp::Floor, "Ceil" => UnaryOp::Ceil, "Round" => UnaryOp::Round,
    "Sin" => UnaryOp::Sin, "Cos" => UnaryOp::Cos, "Erf" => UnaryOp::Erf,
    "Sign" => UnaryOp::Sign, "Softplus" => UnaryOp::Softplus,
};

macro_rules! binary_ops {
    ($($name:literal => $op:expr),* $(,)?) => {
        &[$(($name, |c: &Ctx| one(c.x(0)?.binary($op, c.x(1)?)?)),)*]
    };
}

const BINARY: &[(&str, Handler)] = binary_ops! {
    "Add" => BinaryOp::Add, "Sub" => BinaryOp::Sub, "Mul" => BinaryOp::Mul,
    "Div" => BinaryOp::Div, "Pow" => BinaryOp::Pow,
};

macro_rules! compare_ops {
    ($($name:literal => $op:expr),* $(,)?) => {
        &[$(($name, |c: &Ctx| one(c.x(0)?.compare($op, c.x(1)?)?)),)*]
    };
}

const COMPARE: &[(&str, Handler)] = compare_ops! {
    "Equal" => CmpOp::Equal, "Less" => CmpOp::Less, "Greater" => CmpOp::Greater,
    "LessOrEqual" => CmpOp::LessEqual, "GreaterOrEqual" => CmpOp::GreaterEqual,
};

macro_rules! reduce_ops {
    ($($name:literal => $op:expr),* $(,)?) => {
        &[$(($name, |c: &Ctx| reduce(c, $op)),)*]
    };
}

/// `None` is the mean.
const REDUCE: &[(&str, Handler)] = reduce_ops! {
    "ReduceSum" => Some(ReduceOp::Sum), "ReduceMax" => Some(ReduceOp::Max),
    "ReduceMin" => Some(ReduceOp::Min), "ReduceProd" => Some(ReduceOp::Prod),
    "ReduceMean" => None,
};

/// Elementwise ops beyond the unary and binary tables (activations with attributes,
/// variadic, logical).
const ELEMENTWISE: &[(&str, Handler)] = &[
    ("Gelu", |c| {
        let tanh = c.a.string("approximate", "none") == "tanh";
        one(c.x(0)?.unary(if tanh {
            UnaryOp::GeluTanh
        } else {
            UnaryOp::Gelu
        })?)
    }),
    ("HardSigmoid", |c| {
        let (alpha, beta) = (c.a.float("alpha", 0.2), c.a.float("beta", 0.5));
        one(c
            .x(0)?
            .mul_scalar(alpha)?
            .add_scalar(beta)?
            .clip_scalar(0.0, 1.0)?)
    }),
    ("HardSwish", |c| {
        let x = c.x(0)?;
        one(x.mul(
            &x.mul_scalar(1.0 / 6.0)?
                .add_scalar(0.5)?
                .clip_scalar(0.0, 1.0)?,
        )?)
    }),
    ("LeakyRelu", |c| {
        one(c.x(0)?.leaky_relu(c.a.float("alpha", 0.01))?)
    }),
    ("Elu", |c| one(c.x(0)?.elu(c.a.float("alpha", 1.0))?)),
    ("Selu", |c| {
        let x = c.x(0)?;
        let alpha = c.a.float("alpha", 1.673_263_192_176_818_8);
        let gamma = c.a.float("gamma", 1.050_701_022_148_132_3);
        let neg = x.exp()?.add_scalar(-1.0)?.mul_scalar(alpha)?;
        let pos = x.greater(&x.scalar_like(0.0)?)?;
        one(Tensor::where_(&pos, x, &neg)?.mul_scalar(gamma)?)
    }),
    ("PRelu", |c| {
        let x = c.x(0)?;
        let neg = x.less(&x.scalar_like(0.0)?)?;
        one(Tensor::where_(&neg, &x.mul(c.x(1)?)?, x)?)
    }),
    ("Softsign", |c| {
        let x = c.x(0)?;
        one(x.div(&x.abs()?.add_scalar(1.0)?)?)
    }),
    ("Clip", clip),
    ("Max", |c| variadic(c, BinaryOp::Maximum)),
    ("Min", |c| variadic(c, BinaryOp::Minimum)),
    ("Sum", |c| variadic(c, BinaryOp::Add)),
    ("Mean", |c| {
        let n = c.ins.iter().flatten().count();
        one(variadic(c, BinaryOp::Add)?
            .remove(0)
            .mul_scalar(1.0 / n as f64)?)
    }),
    ("Mod", modulo),
    ("Not", |c| one(c.x(0)?.logical_not()?)),
    ("And", |c| one(c.x(0)?.logical_and(c.x(1)?)?)),
    ("Or", |c| one(c.x(0)?.logical_or(c.x(1)?)?)),
    ("Xor", |c| one(c.x(0)?.logical_xor(c.x(1)?)?)),
    ("Where", |c| one(Tensor::where_(c.x(0)?, c.x(1)?, c.x(2)?)?)),
    ("Cast", cast),
    ("Identity", |c| one(c.x(0)?.clone())),
];

const OTHER: &[(&str, Handler)] = &[
    ("Conv", conv),
    ("ConvTranspose", conv_transpose),
    ("MaxPool", |c| pool(c, true)),
    ("AveragePool", |c| pool(c, false)),
    ("GlobalAveragePool", |c| global_pool(c, false)),
    ("GlobalMaxPool", |c| global_pool(c, true)),
    ("Gemm", gemm),
    ("MatMul", |c| one(matmul(c.x(0)?, c.x(1)?)?)),
    ("BatchNormalization", batch_norm),
    ("LayerNormalization", layer_norm),
    ("Softmax", |c| softmax(c, false)),
    ("LogSoftmax", |c| softmax(c, true)),
    ("Reshape", reshape),
    ("Flatten", |c| {
        let x = c.x(0)?;
        let a = axis(c, c.a.int("axis", 1), x.rank() + 1)?;
        let outer: usize = x.shape()[..a].iter().product();
        let inner: usize = x.shape()[a..].iter().product();
        one(x.reshape_to(&[outer, inner])?)
    }),
    ("Transpose", |c| {
        let x = c.x(0)?;
        let perm = match c.a.ints("perm") {
            Some(p) => p
                .iter()
                .map(|&v| axis(c, v, x.rank()))
                .collect::<Result<Vec<_>>>()?,
            None => (0..x.rank()).rev().collect(),
        };
        one(x.transpose(&perm)?)
    }),
    ("Concat", |c| {
        let parts: Vec<Tensor> = c.ins.iter().flatten().cloned().collect();
        let rank = parts.first().map_or(0, Tensor::rank);
        let a = axis(c, c.a.int("axis", 0), rank)?;
        one(Tensor::concat(&parts, a as isize)?)
    }),
    ("Split", split),
    ("Slice", slice),
    ("Squeeze", |c| {
        let x = c.x(0)?;
        let axes = c.ints_attr_or_input("axes", 1, 13)?.unwrap_or_default();
        let axes = axes
            .iter()
            .map(|&a| axis(c, a, x.rank()).map(|a| a as isize))
            .collect::<Result<Vec<_>>>()?;
        one(x.squeeze(&axes)?)
    }),
    ("Unsqueeze", |c| {
        let x = c.x(0)?;
        let axes = c
            .ints_attr_or_input("axes", 1, 13)?
            .ok_or_else(|| c.err("needs axes"))?;
        let out_rank = x.rank() + axes.len();
        let mut axes = axes
            .iter()
            .map(|&a| axis(c, a, out_rank))
            .collect::<Result<Vec<_>>>()?;
        axes.sort_unstable();
        let mut y = x.clone();
        for a in axes {
            y = y.expand_dims(a as isize)?;
        }
        one(y)
    }),
    ("Gather", gather),
    ("GatherElements", |c| {
        let x = c.x(0)?;
        let a = axis(c, c.a.int("axis", 0), x.rank())?;
        let idx = non_negative(c.x(1)?, x.shape()[a])?;
        one(x.take_along_axis(&idx, a as isize)?)
    }),
    ("Shape", |c| {
        let s: Vec<i64> = c.x(0)?.shape().iter().map(|&d| d as i64).collect();
        let r = s.len() as i64;
        let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let (start, end) = (clampi(c.a.int("start", 0)), clampi(c.a.int("end", r)));
        let part = s[start..end.max(start)].to_vec();
        let n = part.len();
        one(Tensor::from_vec(part, &[n])?)
    }),
    ("Size", |c| one(Tensor::scalar(c.x(0)?.numel() as i64))),
    ("ConstantOfShape", |c| {
        let shape = dims(c, &c.ints(0)?)?;
        let value =
            c.a.tensor("value")?
                .unwrap_or_else(|| Tensor::scalar(0.0f32));
        one(value.reshape_to(&[])?.broadcast_to(&shape)?.contiguous())
    }),
    ("Expand", |c| {
        let x = c.x(0)?;
        let want = dims(c, &c.ints(1)?)?;
        let shape = broadcast_shape(c, x.shape(), &want)?;
        bounded(c, &shape)?;
        one(x.broadcast_to(&shape)?)
    }),
    ("Tile", |c| {
        let reps = dims(c, &c.ints(1)?)?;
        let x = c.x(0)?;
        let out: Vec<usize> = x
            .shape()
            .iter()
            .zip(&reps)
            .map(|(&d, &r)| d.saturating_mul(r))
            .collect();
        bounded(c, &out)?;
        one(x.tile(&reps)?)
    }),
    ("Range", |c| {
        let (start, limit, delta) = (c.x(0)?, c.x(1)?, c.x(2)?);
        let [s, l, d] =
            [start, limit, delta].map(|t| t.cast(DType::F64).and_then(|t| t.to_scalar::<f64>()));
        let (s, l, d) = (s?, l?, d?);
        let n = if d == 0.0 {
            0.0
        } else {
            ((l - s) / d).ceil().max(0.0)
        };
        if n.is_nan() || n > MAX_ELEMENTS as f64 {
            return Err(c.err(format!("{n} elements exceeds the limit of {MAX_ELEMENTS}")));
        }
        let v: Vec<f64> = (0..n as usize).map(|i| s + i as f64 * d).collect();
        let len = v.len();
        one(Tensor::from_vec(v, &[len])?.cast(start.dtype())?)
    }),
    ("Pad", pad),
    ("Resize", resize),
    ("ArgMax", |c| arg(c, true)),
    ("ArgMin", |c| arg(c, false)),
    ("CastLike", |c| one(c.x(0)?.cast(c.x(1)?.dtype())?)),
    ("Dropout", |c| {
        let x = c.x(0)?;
        let mut out = vec![x.clone()];
        if c.node.output.len() > 1 {
            out.push(Tensor::from_vec(vec![true; x.numel()], x.shape())?);
        }
        Ok(out)
    }),
    ("Constant", constant),
    ("Einsum", |c| {
        let ops: Vec<Tensor> = c.ins.iter().flatten().cloned().collect();
        one(Tensor::einsum(&c.a.string("equation", ""), &ops)?)
    }),
    ("CumSum", |c| {
        let x = c.x(0)?;
        let a = axis(c, c.ints(1)?.first().copied().unwrap_or(0), x.rank())?;
        one(x.cumsum(
            a as isize,
            c.a.int("exclusive", 0) != 0,
            c.a.int("reverse", 0) != 0,
        )?)
    }),
    ("If", if_),
    ("Loop", loop_),
    ("LSTM", super::rnn::lstm),
    ("GRU", super::rnn::gru),
];

/// Every handler, by op type: the one list import and validation read.
static TABLE: std::sync::LazyLock<Vec<OpDef>> = std::sync::LazyLock::new(|| {
    let groups: [(&[(&'static str, Handler)], bool); 6] = [
        (UNARY, true),
        (BINARY, true),
        (COMPARE, true),
        (ELEMENTWISE, true),
        (REDUCE, false),
        (OTHER, false),
    ];
    groups
        .iter()
        .flat_map(|&(ops, elementwise)| {
            ops.iter().map(move |&(name, run)| OpDef {
                name,
                run,
                elementwise,
            })
        })
        .collect()
});

/// One op type: its handler, and whether it is elementwise (and so runs in whatever
/// layout its inputs are stored in).
struct OpDef {
    name: &'static str,
    run: Handler,
    elementwise: bool,
}

fn cast(c: &Ctx) -> Result<Vec<Tensor>> {
    let to = crate::tensor::dtype_of_code(c.a.int("to", 0))
        .ok_or_else(|| c.err(format!("cannot cast to element type {}", c.a.int("to", 0))))?;
    one(c.x(0)?.cast(to)?)
}

/// The most elements a tensor whose size a model computes may have (1 GiB of float32):
/// a hostile file must not make the loader allocate without bound.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// Checks that a shape a node is about to create stays within [`MAX_ELEMENTS`].
fn bounded(c: &Ctx, shape: &[usize]) -> Result<()> {
    match shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
        Some(n) if n <= MAX_ELEMENTS => Ok(()),
        _ => Err(c.err(format!(
            "the output shape {shape:?} exceeds the limit of {MAX_ELEMENTS} elements"
        ))),
    }
}

/// Sizes from host integers (negative ones refused), within [`MAX_ELEMENTS`] in all.
fn dims(c: &Ctx, v: &[i64]) -> Result<Vec<usize>> {
    let d = v
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| c.err(format!("negative size in {v:?}"))))
        .collect::<Result<Vec<_>>>()?;
    bounded(c, &d)?;
    Ok(d)
}

/// Numpy's two-way broadcast of two shapes.
fn broadcast_shape(c: &Ctx, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let x = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let y = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            match (x, y) {
                (x, y) if x == y => Ok(x),
                (1, y) => Ok(y),
                (x, 1) => Ok(x),
                _ => Err(c.err(format!("shapes {a:?} and {b:?} do not broadcast"))),
            }
        })
        .collect()
}

/// Negative indices counted from the end of an axis of size `n`.
fn non_negative(idx: &Tensor, n: usize) -> Result<Tensor> {
    let idx = idx.cast(DType::I64)?;
    let neg = idx.less(&idx.scalar_like(0.0)?)?;
    Tensor::where_(&neg, &idx.add_scalar(n as f64)?, &idx)
}

fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    // numpy: a vector operand gains a unit axis that the result then drops.
    match (a.rank(), b.rank()) {
        (1, 1) => a
            .expand_dims(0)?
            .matmul(&b.expand_dims(1)?)?
            .reshape_to(&[]),
        (1, _) => {
            let y = a.expand_dims(0)?.matmul(b)?;
            y.squeeze(&[-2])
        }
        (_, 1) => {
            let y = a.matmul(&b.expand_dims(1)?)?;
            y.squeeze(&[-1])
        }
        _ => a.matmul(b),
    }
}

fn gemm(c: &Ctx) -> Result<Vec<Tensor>> {
    let (ta, tb) = (c.a.int("transA", 0) != 0, c.a.int("transB", 0) != 0);
    // A transposed B (the usual [out, in] weight) as a view: when B is an initializer
    // the view folds into a row-major constant, which the product reads as it lies.
    let b = if tb {
        c.x(1)?.transpose(&[1, 0])?
    } else {
        c.x(1)?.clone()
    };
    let mut y = c.x(0)?.matmul_t(&b, ta, false)?;
    let alpha = c.a.float("alpha", 1.0);
    if alpha != 1.0 {
        y = y.mul_scalar(alpha)?;
    }
    if let Some(bias) = c.opt(2) {
        let beta = c.a.float("beta", 1.0);
        y = y.add(&if beta == 1.0 {
            bias.clone()
        } else {
            bias.mul_scalar(beta)?
        })?;
    }
    one(y)
}

/// Per-channel parameters of an NC... tensor of `rank`, shaped `[C, 1, ...]`.
fn channel(t: &Tensor, rank: usize) -> Result<Tensor> {
    let mut shape = vec![t.numel()];
    shape.extend(std::iter::repeat_n(1, rank.saturating_sub(2)));
    t.reshape_to(&shape)
}

fn batch_norm(c: &Ctx) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    let eps = c.a.float("epsilon", 1e-5);
    if x.rank() == 4 && c.nhwc.first().is_some_and(Option::is_some) {
        // Channels-last: the per-channel parameters broadcast along the last axis.
        let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| c.x(i).cloned());
        let (scale, bias, mean, var) = (scale?, bias?, mean?, var?);
        let k = scale.mul(&var.add_scalar(eps)?.rsqrt()?)?;
        let shift = bias.sub(&mean.mul(&k)?)?;
        return c.emit_nhwc(c.x_nhwc(0)?.mul(&k)?.add(&shift)?);
    }
    let r = x.rank();
    let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| c.x(i).and_then(|t| channel(t, r)));
    let (scale, bias, mean, var) = (scale?, bias?, mean?, var?);
    let k = scale.mul(&var.add_scalar(eps)?.rsqrt()?)?;
    let shift = bias.sub(&mean.mul(&k)?)?;
    one(x.mul(&k)?.add(&shift)?)
}

fn layer_norm(c: &Ctx) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    let a = axis(c, c.a.int("axis", -1), x.rank())?;
    let axes: Vec<isize> = (a..x.rank()).map(|v| v as isize).collect();
    let (mean, var) = x.moments(axes, true)?;
    let inv = var.add_scalar(c.a.float("epsilon", 1e-5))?.rsqrt()?;
    let mut y = x.sub(&mean)?.mul(&inv)?;
    if let Some(s) = c.opt(1) {
        y = y.mul(s)?;
    }
    if let Some(b) = c.opt(2) {
        y = y.add(b)?;
    }
    Ok(vec![y, mean, inv])
}

fn softmax(c: &Ctx, log: bool) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    let f = |t: &Tensor, a: isize| if log { t.log_softmax(a) } else { t.softmax(a) };
    if c.opset >= 13 {
        let a = axis(c, c.a.int("axis", -1), x.rank())?;
        return one(f(x, a as isize)?);
    }
    // Before opset 13: the input is seen as 2-D, split at `axis`.
    let a = axis(c, c.a.int("axis", 1), x.rank())?;
    let outer: usize = x.shape()[..a].iter().product();
    let inner: usize = x.shape()[a..].iter().product();
    one(f(&x.reshape_to(&[outer, inner])?, -1)?.reshape_to(x.shape())?)
}

fn clip(c: &Ctx) -> Result<Vec<Tensor>> {
    let mut y = c.x(0)?.clone();
    let (lo, hi) = if c.opset < 11 {
        (
            c.a.has("min")
                .then(|| y.scalar_like(c.a.float("min", 0.0)))
                .transpose()?,
            c.a.has("max")
                .then(|| y.scalar_like(c.a.float("max", 0.0)))
                .transpose()?,
        )
    } else {
        (c.opt(1).cloned(), c.opt(2).cloned())
    };
    if let Some(lo) = lo {
        y = y.binary(BinaryOp::Maximum, &lo)?;
    }
    if let Some(hi) = hi {
        y = y.binary(BinaryOp::Minimum, &hi)?;
    }
    one(y)
}

fn variadic(c: &Ctx, op: BinaryOp) -> Result<Vec<Tensor>> {
    let mut it = c.ins.iter().flatten();
    let first = it.next().ok_or_else(|| c.err("needs an input"))?.clone();
    let y = it.try_fold(first, |acc, t| acc.binary(op, t))?;
    one(y)
}

fn modulo(c: &Ctx) -> Result<Vec<Tensor>> {
    let (x, y) = (c.x(0)?, c.x(1)?);
    if c.a.int("fmod", 0) == 0 {
        return one(x.binary(BinaryOp::FloorMod, y)?);
    }
    // C's fmod: the sign of the dividend, x - trunc(x / y) · y.
    let q = x.div(y)?;
    let trunc = q.sign()?.mul(&q.abs()?.floor()?)?;
    one(x.sub(&trunc.mul(y)?)?)
}

fn reduce(c: &Ctx, op: Option<ReduceOp>) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    let from = if op == Some(ReduceOp::Sum) { 13 } else { 18 };
    let axes = c.ints_attr_or_input("axes", 1, from)?.unwrap_or_default();
    let keep = c.a.int("keepdims", 1) != 0;
    if axes.is_empty() && c.a.int("noop_with_empty_axes", 0) != 0 {
        return one(x.clone());
    }
    let axes: Vec<isize> = if axes.is_empty() {
        (0..x.rank() as isize).collect()
    } else {
        axes.iter()
            .map(|&a| axis(c, a, x.rank()).map(|a| a as isize))
            .collect::<Result<_>>()?
    };
    one(match op {
        Some(op) => x.reduce(op, axes, keep)?,
        None => x.mean(axes, keep)?,
    })
}

fn reshape(c: &Ctx) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    let allow_zero = c.a.int("allowzero", 0) != 0;
    let target: Vec<isize> = c
        .ints(1)?
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            0 if !allow_zero => x
                .shape()
                .get(i)
                .map(|&s| s as isize)
                .ok_or_else(|| c.err("a 0 beyond the input's rank")),
            d => Ok(d as isize),
        })
        .collect::<Result<_>>()?;
    one(x.reshape(&target)?)
}

fn split(c: &Ctx) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    let a = axis(c, c.a.int("axis", 0), x.rank())?;
    let sizes = c.ints_attr_or_input("split", 1, 13)?;
    match sizes {
        Some(s) if !s.is_empty() => {
            let s: Vec<isize> = s.iter().map(|&v| v as isize).collect();
            x.split(&s, a as isize)
        }
        _ => {
            let n = c.a.int("num_outputs", c.node.output.len() as i64).max(1) as usize;
            let d = x.shape()[a];
            // Opset 18: the last part may be smaller.
            let size = d.div_ceil(n);
            let s: Vec<isize> = (0..n)
                .map(|i| size.min(d.saturating_sub(i * size)) as isize)
                .collect();
            x.split(&s, a as isize)
        }
    }
}

fn slice(c: &Ctx) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    let (starts, ends) = if c.opset < 10 {
        (
            c.a.ints("starts").unwrap_or_default(),
            c.a.ints("ends").unwrap_or_default(),
        )
    } else {
        (c.ints(1)?, c.ints(2)?)
    };
    let axes = match c.opt(3) {
        Some(t) => ints(t)?,
        None => {
            c.a.ints("axes")
                .unwrap_or_else(|| (0..starts.len() as i64).collect())
        }
    };
    let steps = match c.opt(4) {
        Some(t) => ints(t)?,
        None => vec![1; starts.len()],
    };
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(c.err("starts, ends, axes and steps differ in length"));
    }
    let mut args = vec![SliceArg::Range(None, None, 1); x.rank()];
    let (mut begin, mut size) = (
        vec![0usize; x.rank()],
        x.shape().iter().map(|&d| d as isize).collect::<Vec<_>>(),
    );
    let mut unit_steps = true;
    for (((&s, &e), &a), &st) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
        let a = axis(c, a, x.rank())?;
        let n = x.shape()[a] as i64;
        if st == 0 {
            return Err(c.err("a step of 0"));
        }
        let at = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
        if st > 0 {
            let (s, e) = (at(s).clamp(0, n), at(e).clamp(0, n));
            let e = e.max(s);
            args[a] = SliceArg::Range(Some(s as isize), Some(e as isize), st as isize);
            begin[a] = s as usize;
            size[a] = (e - s) as isize;
            unit_steps &= st == 1;
        } else {
            unit_steps = false;
            let (s, e) = (at(s).clamp(-1, n - 1), at(e).clamp(-1, n - 1));
            args[a] = if s < 0 || e >= s {
                SliceArg::Range(Some(0), Some(0), 1)
            } else if e < 0 {
                SliceArg::Range(Some(s as isize), None, st as isize)
            } else {
                SliceArg::Range(Some(s as isize), Some(e as isize), st as isize)
            };
        }
    }
    if unit_steps {
        return one(x.slice(&begin, &size)?);
    }
    one(x.strided_slice(&args)?)
}

fn gather(c: &Ctx) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    let a = axis(c, c.a.int("axis", 0), x.rank())?;
    let idx = non_negative(c.x(1)?, x.shape()[a])?;
    one(x.gather(&idx, a as isize)?)
}

fn pad(c: &Ctx) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    let r = x.rank();
    let raw = if c.opset < 11 {
        c.a.ints("pads").unwrap_or_default()
    } else {
        c.ints(1)?
    };
    let axes: Vec<usize> = match c.opt(3) {
        Some(t) => ints(t)?
            .iter()
            .map(|&a| axis(c, a, r))
            .collect::<Result<_>>()?,
        None => (0..r).collect(),
    };
    if raw.len() != 2 * axes.len() || raw.iter().any(|&p| p < 0) {
        return Err(c.err(format!(
            "pads {raw:?} must be 2 x {} non-negative sizes",
            axes.len()
        )));
    }
    let mut pads = vec![(0usize, 0usize); r];
    for (i, &a) in axes.iter().enumerate() {
        pads[a] = (raw[i] as usize, raw[i + axes.len()] as usize);
    }
    let out: Vec<usize> = x
        .shape()
        .iter()
        .zip(&pads)
        .map(|(&d, &(b, e))| d.saturating_add(b).saturating_add(e))
        .collect();
    bounded(c, &out)?;
    let mode = match c.a.string("mode", "constant").as_str() {
        "constant" => {
            let v = match c.opt(2) {
                Some(t) => t
                    .cast(DType::F64)?
                    .to_vec::<f64>()?
                    .first()
                    .copied()
                    .unwrap_or(0.0),
                None => c.a.float("value", 0.0),
            };
            PadMode::Constant(v)
        }
        "reflect" => PadMode::Reflect,
        m => return Err(c.err(format!("mode '{m}' is not supported (constant, reflect)"))),
    };
    one(x.pad(&pads, mode)?)
}

fn arg(c: &Ctx, max: bool) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    let a = axis(c, c.a.int("axis", 0), x.rank())?;
    let src = if c.a.int("select_last_index", 0) != 0 {
        x.reverse(&[a as isize])?
    } else {
        x.clone()
    };
    let mut y = if max {
        src.argmax(a as isize)?
    } else {
        src.argmin(a as isize)?
    }
    .cast(DType::I64)?;
    if c.a.int("select_last_index", 0) != 0 {
        y = y.mul_scalar(-1.0)?.add_scalar((x.shape()[a] - 1) as f64)?;
    }
    if c.a.int("keepdims", 1) != 0 {
        y = y.expand_dims(a as isize)?;
    }
    one(y)
}

fn constant(c: &Ctx) -> Result<Vec<Tensor>> {
    if let Some(t) = c.a.tensor("value")? {
        return one(t);
    }
    if c.a.has("value_float") {
        return one(Tensor::scalar(c.a.float("value_float", 0.0) as f32));
    }
    if c.a.has("value_int") {
        return one(Tensor::scalar(c.a.int("value_int", 0)));
    }
    if let Some(v) = c.a.floats("value_floats") {
        let n = v.len();
        return one(Tensor::from_vec(v, &[n])?);
    }
    if let Some(v) = c.a.ints("value_ints") {
        let n = v.len();
        return one(Tensor::from_vec(v, &[n])?);
    }
    Err(c.err("no supported value attribute"))
}

/// Window geometry of one spatial axis.
struct Window {
    kernel: usize,
    stride: usize,
    dilation: usize,
    pads: (usize, usize),
}

/// Strides, dilations and pads (resolving `auto_pad`) for a 2-D window over (h, w).
fn windows(
    c: &Ctx,
    hw: (usize, usize),
    kernel: (usize, usize),
    one_d: bool,
) -> Result<[Window; 2]> {
    let lift = |v: Option<Vec<i64>>, default: i64, n: usize| -> Vec<usize> {
        let v = v.unwrap_or_else(|| vec![default; n]);
        let v: Vec<usize> = v.iter().map(|&x| x.max(0) as usize).collect();
        if one_d {
            match n {
                2 => vec![0, v[0], 0, v[1]],
                _ => vec![default as usize, v[0]],
            }
        } else {
            v
        }
    };
    let n = if one_d { 1 } else { 2 };
    let strides = lift(c.a.ints("strides"), 1, n);
    let dilations = lift(c.a.ints("dilations"), 1, n);
    let pads = if one_d {
        let p = c.a.ints("pads").unwrap_or_else(|| vec![0; 2]);
        vec![
            0,
            p[0].max(0) as usize,
            0,
            p.get(1).copied().unwrap_or(0).max(0) as usize,
        ]
    } else {
        lift(c.a.ints("pads"), 0, 4)
    };
    if strides.len() != 2 || dilations.len() != 2 || pads.len() != 4 {
        return Err(c.err("strides, dilations or pads do not match the spatial rank"));
    }
    let auto = c.a.string("auto_pad", "NOTSET");
    let ins = [hw.0, hw.1];
    let ks = [kernel.0, kernel.1];
    let mk = |i: usize| -> Result<Window> {
        let (k, s, d) = (ks[i], strides[i].max(1), dilations[i].max(1));
        let pads = match auto.as_str() {
            "NOTSET" => (pads[i], pads[i + 2]),
            "VALID" => (0, 0),
            "SAME_UPPER" | "SAME_LOWER" => {
                let out = ins[i].div_ceil(s);
                let total = ((out.max(1) - 1) * s + (k - 1) * d + 1).saturating_sub(ins[i]);
                if auto == "SAME_UPPER" {
                    (total / 2, total - total / 2)
                } else {
                    (total - total / 2, total / 2)
                }
            }
            other => return Err(c.err(format!("auto_pad '{other}' is not supported"))),
        };
        Ok(Window {
            kernel: k,
            stride: s,
            dilation: d,
            pads,
        })
    };
    Ok([mk(0)?, mk(1)?])
}

/// TF's SAME pads for a window: whether `w` pads exactly so.
fn is_tf_same(input: usize, w: &Window) -> bool {
    let out = input.div_ceil(w.stride);
    let total =
        ((out.max(1) - 1) * w.stride + (w.kernel - 1) * w.dilation + 1).saturating_sub(input);
    w.pads == (total / 2, total - total / 2)
}

/// An NC(L) or NCHW input as NHWC (a 1-D one gains a unit height).
fn to_nhwc(c: &Ctx, x: &Tensor) -> Result<(Tensor, bool)> {
    match x.rank() {
        3 => Ok((x.expand_dims(2)?.transpose(&[0, 2, 3, 1])?, true)),
        4 => Ok((c.x_nhwc(0)?, false)),
        r => Err(c.err(format!(
            "needs a 1-D or 2-D image (rank 3 or 4), got rank {r}"
        ))),
    }
}

/// The result of a window op computed channels-last, as the node's outputs.
fn from_nhwc(c: &Ctx, y: Tensor, one_d: bool) -> Result<Vec<Tensor>> {
    if one_d {
        one(y.transpose(&[0, 3, 1, 2])?.squeeze(&[2])?)
    } else {
        c.emit_nhwc(y)
    }
}

/// The padding of a window op over NHWC `x`: TF's VALID or SAME where the pads are
/// exactly those, else the explicit pads (no copy of the input either way).
fn padding_of(x: &Tensor, w: &[Window; 2]) -> Padding {
    let (h, wd) = (x.shape()[1], x.shape()[2]);
    if w.iter().all(|w| w.pads == (0, 0)) {
        Padding::Valid
    } else if is_tf_same(h, &w[0]) && is_tf_same(wd, &w[1]) {
        Padding::Same
    } else {
        Padding::Explicit([w[0].pads.0, w[1].pads.0, w[0].pads.1, w[1].pads.1])
    }
}

fn conv(c: &Ctx) -> Result<Vec<Tensor>> {
    let (x, wt) = (c.x(0)?, c.x(1)?);
    let (xn, one_d) = to_nhwc(c, x)?;
    let w4 = if one_d {
        wt.expand_dims(2)?
    } else {
        wt.clone()
    };
    if w4.rank() != 4 {
        return Err(c.err(format!(
            "weights {:?} do not match the input {:?}",
            wt.shape(),
            x.shape()
        )));
    }
    let group = c.a.int("group", 1).max(1) as usize;
    if w4.shape()[1] * group != xn.shape()[3] {
        return Err(c.err(format!(
            "weights {:?} with group {group} do not match {} input channels",
            wt.shape(),
            xn.shape()[3]
        )));
    }
    let k = (w4.shape()[2], w4.shape()[3]);
    let win = windows(c, (xn.shape()[1], xn.shape()[2]), k, one_d)?;
    // [M, C/g, kh, kw] -> [kh, kw, C/g, M]
    let filter = w4.transpose(&[2, 3, 1, 0])?;
    let (xp, padding) = (xn.clone(), padding_of(&xn, &win));
    let s = (win[0].stride, win[1].stride);
    let d = (win[0].dilation, win[1].dilation);
    let mut y = xp.conv2d(&filter, s, padding, d)?;
    if let Some(b) = c.opt(2) {
        y = y.add(b)?;
    }
    from_nhwc(c, y, one_d)
}

fn conv_transpose(c: &Ctx) -> Result<Vec<Tensor>> {
    let (x, wt) = (c.x(0)?, c.x(1)?);
    if c.a.int("group", 1) != 1 {
        return Err(c.err("grouped transposed convolution is not supported"));
    }
    let (xn, one_d) = to_nhwc(c, x)?;
    let w4 = if one_d {
        wt.expand_dims(2)?
    } else {
        wt.clone()
    };
    let k = (w4.shape()[2], w4.shape()[3]);
    let lift = |name: &str, default: i64| -> Vec<usize> {
        let v =
            c.a.ints(name)
                .unwrap_or_else(|| vec![default; if one_d { 1 } else { 2 }]);
        let v: Vec<usize> = v.iter().map(|&x| x.max(0) as usize).collect();
        if one_d {
            vec![default as usize, v[0]]
        } else {
            v
        }
    };
    let (s, d, op) = (
        lift("strides", 1),
        lift("dilations", 1),
        lift("output_padding", 0),
    );
    let ins = [xn.shape()[1], xn.shape()[2]];
    let ks = [k.0, k.1];
    let full: Vec<usize> = (0..2)
        .map(|i| s[i] * (ins[i] - 1) + (ks[i] - 1) * d[i] + 1 + op[i])
        .collect();
    let pads: Vec<(usize, usize)> = match c.a.ints("output_shape") {
        Some(out) => {
            let out: Vec<usize> = out
                .iter()
                .rev()
                .take(2)
                .rev()
                .map(|&v| v.max(0) as usize)
                .collect();
            let out = if one_d {
                vec![1, out[out.len() - 1]]
            } else {
                out
            };
            let upper = c.a.string("auto_pad", "NOTSET") == "SAME_UPPER";
            (0..2)
                .map(|i| {
                    let total = full[i].saturating_sub(out[i]);
                    if upper {
                        (total / 2, total - total / 2)
                    } else {
                        (total - total / 2, total / 2)
                    }
                })
                .collect()
        }
        None => {
            let p =
                c.a.ints("pads")
                    .unwrap_or_else(|| vec![0; if one_d { 2 } else { 4 }]);
            let p: Vec<usize> = p.iter().map(|&v| v.max(0) as usize).collect();
            if one_d {
                vec![(0, 0), (p[0], p[1])]
            } else {
                vec![(p[0], p[2]), (p[1], p[3])]
            }
        }
    };
    // [C, M, kh, kw] -> [kh, kw, M, C]
    let filter = w4.transpose(&[2, 3, 1, 0])?;
    let y = xn.conv2d_transpose(
        &filter,
        (full[0], full[1]),
        (s[0], s[1]),
        Padding::Valid,
        (d[0], d[1]),
    )?;
    let (hh, ww) = (
        full[0] - pads[0].0 - pads[0].1,
        full[1] - pads[1].0 - pads[1].1,
    );
    let mut y = y.slice(
        &[0, pads[0].0, pads[1].0, 0],
        &[-1, hh as isize, ww as isize, -1],
    )?;
    if let Some(b) = c.opt(2) {
        y = y.add(b)?;
    }
    from_nhwc(c, y, one_d)
}

fn pool(c: &Ctx, max: bool) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    let (xn, one_d) = to_nhwc(c, x)?;
    let ks =
        c.a.ints("kernel_shape")
            .ok_or_else(|| c.err("needs kernel_shape"))?;
    let k = if one_d {
        (1, ks[0] as usize)
    } else {
        (ks[0] as usize, ks[1] as usize)
    };
    let mut win = windows(c, (xn.shape()[1], xn.shape()[2]), k, one_d)?;
    if win.iter().any(|w| w.dilation != 1) {
        return Err(c.err("dilated pooling is not supported"));
    }
    if c.a.int("ceil_mode", 0) != 0 {
        // Extra padding after, so that the last partial window counts.
        for (i, w) in win.iter_mut().enumerate() {
            let n = xn.shape()[1 + i] + w.pads.0 + w.pads.1;
            let floor_out = (n - w.kernel) / w.stride + 1;
            let ceil_out = (n - w.kernel).div_ceil(w.stride) + 1;
            if ceil_out > floor_out && (ceil_out - 1) * w.stride < xn.shape()[1 + i] + w.pads.0 {
                w.pads.1 += (ceil_out - 1) * w.stride + w.kernel - n;
            }
        }
    }
    let s = (win[0].stride, win[1].stride);
    let p = padding_of(&xn, &win);
    let y = if max {
        xn.max_pool2d(k, s, p)?
    } else if p != Padding::Valid && c.a.int("count_include_pad", 0) != 0 {
        // Padded zeros count in the average: pad, then average whole windows.
        xn.pad(
            &[(0, 0), win[0].pads, win[1].pads, (0, 0)],
            PadMode::Constant(0.0),
        )?
        .avg_pool2d(k, s, Padding::Valid)?
    } else {
        // ferroflow's average counts only the real elements (ONNX's default).
        xn.avg_pool2d(k, s, p)?
    };
    from_nhwc(c, y, one_d)
}

fn global_pool(c: &Ctx, max: bool) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    if x.rank() == 4 && c.nhwc.first().is_some_and(Option::is_some) {
        let xn = c.x_nhwc(0)?;
        return c.emit_nhwc(if max {
            xn.max(vec![1, 2], true)?
        } else {
            xn.mean(vec![1, 2], true)?
        });
    }
    let axes: Vec<isize> = (2..x.rank() as isize).collect();
    one(if max {
        x.max(axes, true)?
    } else {
        x.mean(axes, true)?
    })
}

/// Resize: nearest or (bi)linear along each resized axis, as gathers of precomputed
/// source indices (and weights).
fn resize(c: &Ctx) -> Result<Vec<Tensor>> {
    let x = c.x(0)?;
    let r = x.rank();
    let mode = c.a.string("mode", "nearest");
    let coord = c.a.string("coordinate_transformation_mode", "half_pixel");
    let nearest = c.a.string("nearest_mode", "round_prefer_floor");
    let scales_in = c
        .opt(2)
        .filter(|t| t.numel() > 0)
        .map(|t| t.cast(DType::F64)?.to_vec::<f64>())
        .transpose()?;
    let sizes_in = c.opt(3).filter(|t| t.numel() > 0).map(ints).transpose()?;
    let (out, scales): (Vec<usize>, Vec<f64>) = match (sizes_in, scales_in) {
        (Some(s), _) => {
            let out = dims(c, &s)?;
            if out.len() != r {
                return Err(c.err("sizes must give every axis"));
            }
            let sc = out
                .iter()
                .zip(x.shape())
                .map(|(&o, &i)| o as f64 / i.max(1) as f64)
                .collect();
            (out, sc)
        }
        (None, Some(sc)) if sc.len() == r && sc.iter().all(|s| s.is_finite() && *s > 0.0) => {
            let out: Vec<usize> = sc
                .iter()
                .zip(x.shape())
                .map(|(&s, &i)| (s * i as f64).floor().min(usize::MAX as f64) as usize)
                .collect();
            bounded(c, &out)?;
            (out, sc)
        }
        _ => return Err(c.err("needs scales or sizes for every axis")),
    };
    if c.a.int("antialias", 0) != 0 || mode == "cubic" || c.a.has("axes") {
        return Err(c.err(format!(
            "mode '{mode}' with antialias or axes is not supported (nearest, linear)"
        )));
    }
    let mut y = x.clone();
    for a in 0..r {
        let (n_in, n_out, s) = (x.shape()[a], out[a], scales[a]);
        if n_in == n_out && (s - 1.0).abs() < 1e-12 {
            continue;
        }
        let src = |o: usize| -> f64 {
            let o = o as f64;
            match coord.as_str() {
                "asymmetric" => o / s,
                "align_corners" if n_out > 1 => o * (n_in as f64 - 1.0) / (n_out as f64 - 1.0),
                "align_corners" => 0.0,
                "pytorch_half_pixel" if n_out <= 1 => 0.0,
                "tf_half_pixel_for_nn" => (o + 0.5) / s,
                _ => (o + 0.5) / s - 0.5,
            }
        };
        let last = n_in as i64 - 1;
        if mode == "nearest" {
            let idx: Vec<i64> = (0..n_out)
                .map(|o| {
                    let v = src(o);
                    let i = match nearest.as_str() {
                        "floor" => v.floor(),
                        "ceil" => v.ceil(),
                        "round_prefer_ceil" => (v + 0.5).floor(),
                        _ => (v - 0.5).ceil(),
                    };
                    (i as i64).clamp(0, last)
                })
                .collect();
            y = y.gather(&Tensor::from_vec(idx, &[n_out])?, a as isize)?;
        } else if mode == "linear" {
            let (mut i0, mut i1, mut w1) = (Vec::new(), Vec::new(), Vec::new());
            for o in 0..n_out {
                let v = src(o).clamp(0.0, last as f64);
                let f = v.floor();
                i0.push(f as i64);
                i1.push((f as i64 + 1).min(last));
                w1.push(v - f);
            }
            let lo = y.gather(&Tensor::from_vec(i0, &[n_out])?, a as isize)?;
            let hi = y.gather(&Tensor::from_vec(i1, &[n_out])?, a as isize)?;
            let mut wshape = vec![1; r];
            wshape[a] = n_out;
            let w = Tensor::from_vec(w1, &wshape)?.cast(y.dtype())?;
            y = lo.add(&hi.sub(&lo)?.mul(&w)?)?;
        } else {
            return Err(c.err(format!("mode '{mode}' is not supported (nearest, linear)")));
        }
    }
    one(y)
}

/// `If`: the branch its condition picks, over the enclosing scope.
fn if_(c: &Ctx) -> Result<Vec<Tensor>> {
    let cond = c.x(0)?.cast(DType::Bool)?.to_vec::<bool>()?;
    let branch = c.a.graph(if cond.first().copied().unwrap_or(false) {
        "then_branch"
    } else {
        "else_branch"
    })?;
    let mut env = c.env.clone();
    super::run_graph(branch, c.opset, &mut env)?;
    branch
        .output
        .iter()
        .map(|o| {
            let n = o.name.clone().unwrap_or_default();
            env.get(&n)
                .cloned()
                .ok_or_else(|| c.err(format!("branch output '{n}' was not computed")))
        })
        .collect()
}

/// `Loop`: runs the body while the trip count and the condition allow, carrying its
/// loop-carried values; scan outputs are stacked on a new first axis.
fn loop_(c: &Ctx) -> Result<Vec<Tensor>> {
    let body = c.a.graph("body")?;
    let max_trips = c
        .opt(0)
        .map(|t| t.cast(DType::I64)?.to_scalar::<i64>())
        .transpose()?
        .unwrap_or(i64::MAX);
    let mut cond = c
        .opt(1)
        .map(|t| t.cast(DType::Bool)?.to_scalar::<bool>())
        .transpose()?
        .unwrap_or(true);
    let mut carried: Vec<Tensor> = c
        .ins
        .iter()
        .skip(2)
        .map(|t| {
            t.clone()
                .ok_or_else(|| c.err("a loop-carried value is missing"))
        })
        .collect::<Result<_>>()?;
    let names: Vec<String> = body
        .input
        .iter()
        .map(|v| v.name.clone().unwrap_or_default())
        .collect();
    let outs: Vec<String> = body
        .output
        .iter()
        .map(|v| v.name.clone().unwrap_or_default())
        .collect();
    if names.len() != carried.len() + 2 || outs.len() < carried.len() + 1 {
        return Err(c.err("the body's inputs and outputs do not match the loop's"));
    }
    let mut scans: Vec<Vec<Tensor>> = vec![Vec::new(); outs.len() - 1 - carried.len()];
    // Prepared once: the body's initializers and liveness are the same at every iteration.
    let plan = super::GraphPlan::new(body, c.env)?;
    let mut i = 0i64;
    while i < max_trips && cond {
        if i > 10_000_000 {
            return Err(c.err("more than 10,000,000 iterations"));
        }
        let mut env = c.env.clone();
        env.insert(names[0].clone(), Tensor::scalar(i));
        env.insert(names[1].clone(), Tensor::scalar(cond));
        for (n, v) in names[2..].iter().zip(&carried) {
            env.insert(n.clone(), v.clone());
        }
        plan.run(c.opset, &mut env)?;
        let get = |n: &String| {
            env.get(n)
                .cloned()
                .ok_or_else(|| c.err(format!("body output '{n}' was not computed")))
        };
        cond = get(&outs[0])?.cast(DType::Bool)?.to_scalar::<bool>()?;
        carried = outs[1..=carried.len()]
            .iter()
            .map(get)
            .collect::<Result<_>>()?;
        for (s, n) in scans.iter_mut().zip(&outs[1 + carried.len()..]) {
            s.push(get(n)?);
        }
        i += 1;
    }
    let mut result = carried;
    for s in scans {
        if s.is_empty() {
            return Err(c.err("a scan output of a loop that ran 0 times has no shape"));
        }
        result.push(Tensor::stack(&s, 0)?);
    }
    Ok(result)
}
