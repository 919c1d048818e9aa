//! The one place where core ops meet ONNX: each [`OpKind`] of a traced graph and the ONNX
//! nodes it lowers to, with their attributes and the opsets that change them.
//!
//! Layout: ferroflow's images are NHWC and its filters HWIO (as TF's); ONNX's are NCHW and
//! OIHW, so window ops are wrapped in transposes (onnxruntime folds the filter's and
//! cancels adjacent pairs when it optimises the graph).

use crate::builder::{float, int, ints, string, Builder};
use crate::tensor::{onnx_dtype, scalar};
use ferroflow_core::trace::{ConvSpec, OpKind};
use ferroflow_core::{BinaryOp, CmpOp, DType, Error, LogicOp, ReduceOp, Result, UnaryOp};

pub use ferroflow_graph::export::ValueMeta;

/// One op application to lower: its ONNX input names and the facts of its values.
pub struct Lowering<'a> {
    /// The op's name in ferroflow (for errors).
    pub op: &'a str,
    /// ONNX names of the op's inputs.
    pub inputs: &'a [String],
    /// Facts of the inputs.
    pub input_meta: &'a [ValueMeta],
    /// Facts of the outputs.
    pub output_meta: &'a [ValueMeta],
}

impl Lowering<'_> {
    fn unsupported(&self, why: impl std::fmt::Display) -> Error {
        Error::invalid("onnx export", format!("op '{}': {why}", self.op))
    }

    fn x(&self, i: usize) -> &str {
        &self.inputs[i]
    }
}

/// Lowers one op; returns the ONNX names of its outputs.
pub fn lower(b: &mut Builder, kind: &OpKind, l: &Lowering) -> Result<Vec<String>> {
    let one = |s: String| Ok(vec![s]);
    match kind {
        OpKind::Unary(op) => one(unary(b, *op, l.x(0), l.input_meta[0].dtype)?),
        OpKind::Binary(op) => one(binary(b, *op, l)?),
        OpKind::Compare(op) => {
            let (x, y) = (l.x(0), l.x(1));
            one(match op {
                CmpOp::Equal => b.node("Equal", &[x, y], vec![]),
                CmpOp::NotEqual => {
                    let e = b.node("Equal", &[x, y], vec![]);
                    b.node("Not", &[&e], vec![])
                }
                CmpOp::Less => b.node("Less", &[x, y], vec![]),
                CmpOp::LessEqual => b.node("LessOrEqual", &[x, y], vec![]),
                CmpOp::Greater => b.node("Greater", &[x, y], vec![]),
                CmpOp::GreaterEqual => b.node("GreaterOrEqual", &[x, y], vec![]),
            })
        }
        OpKind::Logic(op) => one(match op {
            LogicOp::And => b.node("And", &[l.x(0), l.x(1)], vec![]),
            LogicOp::Or => b.node("Or", &[l.x(0), l.x(1)], vec![]),
            LogicOp::Xor => b.node("Xor", &[l.x(0), l.x(1)], vec![]),
            LogicOp::Not => b.node("Not", &[l.x(0)], vec![]),
        }),
        OpKind::Select => one(b.node("Where", &[l.x(0), l.x(1), l.x(2)], vec![])),
        OpKind::Cast(dt) => one(b.node("Cast", &[l.x(0)], vec![int("to", onnx_dtype(*dt) as i64)])),
        OpKind::MatMul {
            transpose_a,
            transpose_b,
        } => {
            let a = maybe_swap_last(b, l.x(0), l.input_meta[0].shape.len(), *transpose_a);
            let c = maybe_swap_last(b, l.x(1), l.input_meta[1].shape.len(), *transpose_b);
            one(b.node("MatMul", &[&a, &c], vec![]))
        }
        OpKind::Reshape => {
            let shape = reshape_target(l)?;
            let s = b.int64s("shape", &shape);
            one(b.node("Reshape", &[l.x(0), &s], vec![]))
        }
        OpKind::Transpose(perm) => one(transpose(b, l.x(0), perm)),
        OpKind::BroadcastTo => {
            let (from, to) = (&l.input_meta[0], &l.output_meta[0]);
            let lead = to.shape.len() - from.shape.len();
            let mut shape = Vec::with_capacity(to.shape.len());
            for (i, (&d, &dy)) in to.shape.iter().zip(&to.dynamic).enumerate() {
                if !dy {
                    shape.push(d as i64);
                } else if i >= lead && from.dynamic[i - lead] {
                    shape.push(1); // Expand keeps the input's size there.
                } else {
                    return Err(l.unsupported(format!(
                        "broadcasting {:?} to a size that follows the batch ({:?}) needs a fixed batch",
                        from.shape, to.shape
                    )));
                }
            }
            let s = b.int64s("shape", &shape);
            one(b.node("Expand", &[l.x(0), &s], vec![]))
        }
        OpKind::Reduce { op, axes, keepdims } => one(reduce(b, *op, axes, *keepdims, l.x(0))),
        OpKind::Conv2d(spec) => {
            let x = transpose(b, l.x(0), &[0, 3, 1, 2]);
            let w = transpose(b, l.x(1), &[3, 2, 0, 1]);
            let mut attrs = window_attrs(spec);
            attrs.push(int("group", spec.groups as i64));
            let y = b.node("Conv", &[&x, &w], attrs);
            one(transpose(b, &y, &[0, 2, 3, 1]))
        }
        OpKind::Conv2dTranspose(spec) => {
            // The spec is the forward conv's: from this op's output (h, w) to its input.
            let (out, inp, filt) = (
                &l.output_meta[0].shape,
                &l.input_meta[0].shape,
                &l.input_meta[1].shape,
            );
            let extra = |axis: usize| {
                let (s, d, k) = match axis {
                    0 => (spec.strides.0, spec.dilations.0, filt[0]),
                    _ => (spec.strides.1, spec.dilations.1, filt[1]),
                };
                let reach = s * (inp[1 + axis] - 1) + (k - 1) * d + 1;
                (out[1 + axis] + spec.pads[axis] + spec.pads[2 + axis]) as i64 - reach as i64
            };
            let output_padding = [extra(0), extra(1)];
            if output_padding.iter().any(|&p| p < 0) {
                return Err(l.unsupported(format!("output size {out:?} is not reachable")));
            }
            let x = transpose(b, l.x(0), &[0, 3, 1, 2]);
            let w = transpose(b, l.x(1), &[3, 2, 0, 1]);
            let mut attrs = window_attrs(spec);
            attrs.push(ints("output_padding", &output_padding));
            let y = b.node("ConvTranspose", &[&x, &w], attrs);
            one(transpose(b, &y, &[0, 2, 3, 1]))
        }
        OpKind::Pool2d { max, ksize, spec } => {
            let x = transpose(b, l.x(0), &[0, 3, 1, 2]);
            let mut attrs = window_attrs(spec);
            attrs.retain(|a| a.name.as_deref() != Some("dilations"));
            attrs.push(ints("kernel_shape", &[ksize.0 as i64, ksize.1 as i64]));
            let op = if *max { "MaxPool" } else { "AveragePool" };
            let y = b.node(op, &[&x], attrs);
            one(transpose(b, &y, &[0, 2, 3, 1]))
        }
        OpKind::Softmax { log } => {
            let op = if *log { "LogSoftmax" } else { "Softmax" };
            one(b.node(op, &[l.x(0)], vec![int("axis", -1)]))
        }
        OpKind::Concat(axis) => {
            let ins: Vec<&str> = l.inputs.iter().map(String::as_str).collect();
            one(b.node("Concat", &ins, vec![int("axis", *axis as i64)]))
        }
        OpKind::Slice { begin } => {
            let (from, to) = (&l.input_meta[0], &l.output_meta[0]);
            let (mut starts, mut ends, mut axes) = (vec![], vec![], vec![]);
            for (a, &s) in begin.iter().enumerate() {
                if s == 0 && to.shape[a] == from.shape[a] && to.dynamic[a] == from.dynamic[a] {
                    continue;
                }
                if to.dynamic[a] {
                    return Err(l.unsupported(format!(
                        "slicing axis {a}, whose size follows the batch, needs a fixed batch"
                    )));
                }
                starts.push(s as i64);
                ends.push((s + to.shape[a]) as i64);
                axes.push(a as i64);
            }
            if axes.is_empty() {
                return one(b.node("Identity", &[l.x(0)], vec![]));
            }
            let (s, e, a) = (
                b.int64s("starts", &starts),
                b.int64s("ends", &ends),
                b.int64s("axes", &axes),
            );
            one(b.node("Slice", &[l.x(0), &s, &e, &a], vec![]))
        }
        OpKind::Gather(axis) => {
            one(b.node("Gather", &[l.x(0), l.x(1)], vec![int("axis", *axis as i64)]))
        }
        OpKind::Clip => {
            let lo = b.node("Max", &[l.x(0), l.x(1)], vec![]);
            one(b.node("Min", &[&lo, l.x(2)], vec![]))
        }
        OpKind::Identity => one(b.node("Identity", &[l.x(0)], vec![])),
        OpKind::Remap { maps, fill } => one(remap(b, maps, *fill, l)?),
        OpKind::Random => {
            Err(l.unsupported("random draws do not export (export the inference graph)"))
        }
        OpKind::Collective => Err(
            l.unsupported("collectives between workers do not export (export the inference graph)")
        ),
        OpKind::Other => Err(l.unsupported("no ONNX lowering")),
    }
}

/// A remap as one Gather of constant indices per axis that moves; an axis with `None`
/// entries is first padded by one `fill` element, which they then index.
fn remap(b: &mut Builder, maps: &[Vec<Option<usize>>], fill: f64, l: &Lowering) -> Result<String> {
    let from = &l.input_meta[0];
    let rank = from.shape.len();
    let mut x = l.x(0).to_string();
    for (a, map) in maps.iter().enumerate() {
        let n = from.shape[a];
        let identity = map.len() == n && map.iter().enumerate().all(|(i, &m)| m == Some(i));
        if identity && from.dynamic[a] == l.output_meta[0].dynamic[a] {
            continue;
        }
        if from.dynamic[a] || l.output_meta[0].dynamic[a] {
            return Err(l.unsupported(format!(
                "padding, tiling or reversing axis {a}, whose size follows the batch, needs a fixed batch"
            )));
        }
        if map.contains(&None) {
            let mut pads = vec![0i64; 2 * rank];
            pads[rank + a] = 1;
            let p = b.int64s("pads", &pads);
            let v = constant(b, from.dtype, fill)?;
            x = b.node("Pad", &[&x, &p, &v], vec![string("mode", "constant")]);
        }
        let idx: Vec<i64> = map.iter().map(|m| m.unwrap_or(n) as i64).collect();
        let i = b.int64s("indices", &idx);
        x = b.node("Gather", &[&x, &i], vec![int("axis", a as i64)]);
    }
    if x == l.x(0) {
        x = b.node("Identity", &[&x], vec![]);
    }
    Ok(x)
}

/// `strides`, `dilations` and `pads` of a window op.
fn window_attrs(spec: &ConvSpec) -> Vec<crate::proto::AttributeProto> {
    let p = spec.pads.map(|v| v as i64);
    vec![
        ints("strides", &[spec.strides.0 as i64, spec.strides.1 as i64]),
        ints(
            "dilations",
            &[spec.dilations.0 as i64, spec.dilations.1 as i64],
        ),
        ints("pads", &p),
    ]
}

fn transpose(b: &mut Builder, x: &str, perm: &[usize]) -> String {
    let p: Vec<i64> = perm.iter().map(|&v| v as i64).collect();
    b.node("Transpose", &[x], vec![ints("perm", &p)])
}

fn maybe_swap_last(b: &mut Builder, x: &str, rank: usize, swap: bool) -> String {
    if !swap || rank < 2 {
        return x.to_string();
    }
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.swap(rank - 1, rank - 2);
    transpose(b, x, &perm)
}

/// The `shape` input of a Reshape: fixed sizes as they are; a size that follows the batch
/// is 0 (copy the input's) where the input has the same size on the same axis, else the one
/// inferred axis (-1).
fn reshape_target(l: &Lowering) -> Result<Vec<i64>> {
    let (from, to) = (&l.input_meta[0], &l.output_meta[0]);
    let mut shape: Vec<i64> = to.shape.iter().map(|&d| d as i64).collect();
    let mut inferred = None;
    for (i, &dy) in to.dynamic.iter().enumerate() {
        if !dy {
            continue;
        }
        if from.dynamic.get(i) == Some(&true) && from.shape[i] == to.shape[i] {
            shape[i] = 0;
        } else if inferred.replace(i).is_none() {
            shape[i] = -1;
        } else {
            return Err(l.unsupported(format!(
                "reshaping {:?} to {:?} with two sizes that follow the batch needs a fixed batch",
                from.shape, to.shape
            )));
        }
    }
    // A zero-sized fixed axis would read as "copy": ONNX's allowzero is not worth it here.
    if to
        .shape
        .iter()
        .zip(&to.dynamic)
        .any(|(&d, &dy)| d == 0 && !dy)
    {
        return Err(l.unsupported("reshaping to an empty axis"));
    }
    Ok(shape)
}

fn reduce(b: &mut Builder, op: ReduceOp, axes: &[usize], keepdims: bool, x: &str) -> String {
    if axes.is_empty() {
        return b.node("Identity", &[x], vec![]);
    }
    let name = match op {
        ReduceOp::Sum => "ReduceSum",
        ReduceOp::Prod => "ReduceProd",
        ReduceOp::Max => "ReduceMax",
        ReduceOp::Min => "ReduceMin",
    };
    let a: Vec<i64> = axes.iter().map(|&v| v as i64).collect();
    let keep = int("keepdims", keepdims as i64);
    // ReduceSum takes its axes as an input from opset 13, the others from opset 18.
    if op == ReduceOp::Sum || b.opset >= 18 {
        let axes = b.int64s("axes", &a);
        b.node(name, &[x, &axes], vec![keep])
    } else {
        b.node(name, &[x], vec![ints("axes", &a), keep])
    }
}

fn constant(b: &mut Builder, dtype: DType, v: f64) -> Result<String> {
    Ok(b.initializer("c", scalar("c", dtype, v)?))
}

fn unary(b: &mut Builder, op: UnaryOp, x: &str, dt: DType) -> Result<String> {
    use UnaryOp as U;
    let simple = |b: &mut Builder, name: &str| b.node(name, &[x], vec![]);
    Ok(match op {
        U::Neg => simple(b, "Neg"),
        U::Abs => simple(b, "Abs"),
        U::Square => b.node("Mul", &[x, x], vec![]),
        U::Sign => simple(b, "Sign"),
        U::Relu => simple(b, "Relu"),
        U::Relu6 => {
            let (lo, hi) = (constant(b, dt, 0.0)?, constant(b, dt, 6.0)?);
            b.node("Clip", &[x, &lo, &hi], vec![])
        }
        U::Exp => simple(b, "Exp"),
        U::Log => simple(b, "Log"),
        U::Log1p => {
            let one = constant(b, dt, 1.0)?;
            let s = b.node("Add", &[x, &one], vec![]);
            b.node("Log", &[&s], vec![])
        }
        U::Sqrt => simple(b, "Sqrt"),
        U::Rsqrt => {
            let s = simple(b, "Sqrt");
            b.node("Reciprocal", &[&s], vec![])
        }
        U::Reciprocal => simple(b, "Reciprocal"),
        U::Tanh => simple(b, "Tanh"),
        U::Sigmoid => simple(b, "Sigmoid"),
        U::Gelu | U::GeluTanh if b.opset >= 20 => {
            let approx = if op == U::Gelu { "none" } else { "tanh" };
            b.node("Gelu", &[x], vec![string("approximate", approx)])
        }
        U::Gelu => {
            // x/2 · (1 + erf(x/√2))
            let r2 = constant(b, dt, std::f64::consts::SQRT_2)?;
            let (half, one) = (constant(b, dt, 0.5)?, constant(b, dt, 1.0)?);
            let d = b.node("Div", &[x, &r2], vec![]);
            let e = b.node("Erf", &[&d], vec![]);
            let s = b.node("Add", &[&e, &one], vec![]);
            let h = b.node("Mul", &[x, &half], vec![]);
            b.node("Mul", &[&h, &s], vec![])
        }
        U::GeluTanh => {
            // x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))
            let k = constant(b, dt, (2.0 / std::f64::consts::PI).sqrt())?;
            let (c, half, one) = (
                constant(b, dt, 0.044715)?,
                constant(b, dt, 0.5)?,
                constant(b, dt, 1.0)?,
            );
            let x2 = b.node("Mul", &[x, x], vec![]);
            let x3 = b.node("Mul", &[&x2, x], vec![]);
            let cx3 = b.node("Mul", &[&x3, &c], vec![]);
            let inner = b.node("Add", &[x, &cx3], vec![]);
            let scaled = b.node("Mul", &[&inner, &k], vec![]);
            let t = b.node("Tanh", &[&scaled], vec![]);
            let s = b.node("Add", &[&t, &one], vec![]);
            let h = b.node("Mul", &[x, &half], vec![]);
            b.node("Mul", &[&h, &s], vec![])
        }
        U::Silu => {
            let s = simple(b, "Sigmoid");
            b.node("Mul", &[x, &s], vec![])
        }
        U::Softplus => simple(b, "Softplus"),
        U::Elu(alpha) => b.node("Elu", &[x], vec![float("alpha", alpha)]),
        U::Selu => simple(b, "Selu"),
        U::LeakyRelu(alpha) => b.node("LeakyRelu", &[x], vec![float("alpha", alpha)]),
        U::Sin => simple(b, "Sin"),
        U::Cos => simple(b, "Cos"),
        U::Erf => simple(b, "Erf"),
        U::Floor => simple(b, "Floor"),
        U::Ceil => simple(b, "Ceil"),
        U::Round => simple(b, "Round"),
    })
}

fn binary(b: &mut Builder, op: BinaryOp, l: &Lowering) -> Result<String> {
    use BinaryOp as B;
    let (x, y) = (l.x(0), l.x(1));
    let float = l.input_meta[0].dtype.is_float();
    Ok(match op {
        B::Add => b.node("Add", &[x, y], vec![]),
        B::Sub => b.node("Sub", &[x, y], vec![]),
        B::Mul => b.node("Mul", &[x, y], vec![]),
        B::Div => b.node("Div", &[x, y], vec![]),
        B::Pow => b.node("Pow", &[x, y], vec![]),
        B::Maximum => b.node("Max", &[x, y], vec![]),
        B::Minimum => b.node("Min", &[x, y], vec![]),
        B::FloorDiv if float => {
            let d = b.node("Div", &[x, y], vec![]);
            b.node("Floor", &[&d], vec![])
        }
        B::FloorMod if float => {
            // x - floor(x / y) · y, the sign of the divisor as TF's floormod.
            let d = b.node("Div", &[x, y], vec![]);
            let f = b.node("Floor", &[&d], vec![]);
            let m = b.node("Mul", &[&f, y], vec![]);
            b.node("Sub", &[x, &m], vec![])
        }
        B::FloorMod => b.node("Mod", &[x, y], vec![int("fmod", 0)]),
        B::FloorDiv => return Err(l.unsupported("integer floor division has no ONNX lowering")),
        B::SquaredDifference => {
            let d = b.node("Sub", &[x, y], vec![]);
            b.node("Mul", &[&d, &d], vec![])
        }
    })
}
