//! Native int8 kernels: ops whose activations are int8 (per-tensor) and whose weights are
//! int8 (per-channel or per-tensor, zero point 0) run on the integers, accumulating in
//! int32 and requantising as LiteRT does, instead of through float.
//!
//! [`NativeOp::prepare`] decides per operator at load, from the tensors' types and
//! quantisation, and packs the weights once; the interpreter runs the float path for
//! every other operator. Outputs are allocated from the core's buffer cache
//! (`ferroflow_core::alloc`), to which tensors return their buffers when dropped: a plain
//! `Vec` would be cached on drop but never taken again, and the cache would fill up.

/// Defines `fn $name(this: &$ty, args..)`, which runs `this.$body(args..)` compiled for
/// AVX-512 or AVX2 when the CPU has them. The body must be `#[inline(always)]`: it is then
/// compiled into each variant (a closure handed to a feature-enabled function may not be
/// inlined into it, and runs on baseline SSE2 code).
macro_rules! vectorised {
    ($name:ident: $ty:ty => $body:ident($($arg:ident: $aty:ty),*)) => {
        fn $name(this: &$ty, $($arg: $aty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2")]
                unsafe fn v4(this: &$ty, $($arg: $aty),*) {
                    this.$body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma,bmi2")]
                unsafe fn v3(this: &$ty, $($arg: $aty),*) {
                    this.$body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512dq")
                {
                    // SAFETY: the features were detected on this CPU.
                    return unsafe { v4(this, $($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { v3(this, $($arg),*) };
                }
            }
            this.$body($($arg),*)
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod amx;
mod binary;
mod conv;
#[cfg(target_arch = "x86_64")]
mod depthwise_avx2;
#[cfg(target_arch = "x86_64")]
mod depthwise_avx512;
mod gemm;
#[cfg(target_arch = "x86_64")]
mod madd_avx2;
mod mean;
mod requant;
#[cfg(target_arch = "x86_64")]
mod row_tiles;
pub(crate) mod table;
#[cfg(target_arch = "x86_64")]
mod vnni;
pub(crate) mod window;

use crate::interpreter::le;
use crate::ir::{
    Activation, BinaryKind, ElementType, LiteModel, LiteTensor, Op, ReduceKind, UnaryKind, Window,
};
use binary::{Binary, Repeat};
use conv::{Conv, Depthwise, Pool};
use ferroflow_core::{DType, Error, Result, Tensor};
use gemm::PackedWeights;
use mean::Mean;
use requant::{activation_range, Requant};
use window::Geometry;

/// An operator prepared to run on int8 values.
#[derive(Clone, Debug)]
pub(crate) enum NativeOp {
    /// `FULLY_CONNECTED`.
    FullyConnected {
        weights: PackedWeights,
        keep_num_dims: bool,
    },
    /// `CONV_2D`.
    Conv2d { conv: Conv, window: Window },
    /// `DEPTHWISE_CONV_2D`.
    Depthwise { dw: Depthwise, window: Window },
    /// `MAX_POOL_2D` / `AVERAGE_POOL_2D`.
    Pool { pool: Pool, window: Window },
    /// `ADD`, `SUB` or `MUL` of two int8 tensors of one shape, or one broadcasting as
    /// [`Repeat`] allows; the second may be a constant (its values and shape).
    Binary {
        op: Binary,
        constant: Option<(Vec<i8>, Vec<usize>)>,
    },
    /// `LOGISTIC`, `TANH` and int8 -> int8 `QUANTIZE`: a table of the 256 outputs.
    Table(Box<[i8; 256]>),
    /// `MEAN` over constant axes.
    Mean(Mean),
}

/// Scale and zero point of an int8 activation quantised per tensor.
fn activation(t: &LiteTensor) -> Option<(f32, i32)> {
    t.data.is_none().then(|| per_tensor(t)).flatten()
}

/// Scale and zero point of an int8 tensor (an activation or a constant) quantised per
/// tensor.
fn per_tensor(t: &LiteTensor) -> Option<(f32, i32)> {
    let q = t.quant.as_ref()?;
    let (&s, &z) = (q.scale.first()?, q.zero_point.first()?);
    (t.dtype == ElementType::I8 && q.scale.len() == 1)
        .then(|| (s, i32::try_from(z).ok()))
        .and_then(|(s, z)| Some((s, z?)))
        .filter(|(s, z)| s.is_finite() && *s > 0.0 && (-128..=127).contains(z))
}

/// An int8 constant quantised symmetrically (zero point 0) per tensor or per channel
/// along `axis`, which must have `channels` entries: its values and scales.
fn weights(t: &LiteTensor, axis: usize, channels: usize) -> Option<(Vec<i8>, Vec<f32>)> {
    let q = t.quant.as_ref()?;
    let data = t.data.as_ref()?;
    let per_channel = q.scale.len() > 1;
    let ok = t.dtype == ElementType::I8
        && data.len() == t.numel()
        && q.zero_point.iter().all(|&z| z == 0)
        && q.zero_point.len() == q.scale.len()
        && (!per_channel || (q.axis == axis && q.scale.len() == channels));
    ok.then(|| (data.iter().map(|&b| b as i8).collect(), q.scale.clone()))
}

/// An int32 constant of `n` values (a bias).
fn bias(t: &LiteTensor, n: usize) -> Option<Vec<i32>> {
    let data = t.data.as_ref()?;
    (t.dtype == ElementType::I32 && data.len() == n * 4).then(|| le(data, i32::from_le_bytes))
}

/// The values of a constant int32 or int64 tensor of axes.
fn axes(t: &LiteTensor) -> Option<Vec<i64>> {
    let data = t.data.as_ref()?;
    match t.dtype {
        ElementType::I32 => Some(
            le(data, i32::from_le_bytes)
                .into_iter()
                .map(i64::from)
                .collect(),
        ),
        ElementType::I64 => Some(le(data, i64::from_le_bytes)),
        _ => None,
    }
}

/// The outputs of `f` for the 256 int8 inputs, as LiteRT's int8 LOGISTIC and TANH tables
/// are made: each input dequantised, `f` in float32, multiplied by the inverse output
/// scale, rounded to nearest even, the zero point added, saturated.
fn table(x: (f32, i32), y: (f32, i32), f: fn(f32) -> f32) -> Option<[i8; 256]> {
    let inverse = 1.0 / y.0;
    if !inverse.is_finite() {
        return None;
    }
    let mut t = [0i8; 256];
    for q in -128i32..=127 {
        let v = f(x.0 * (q - x.1) as f32) * inverse;
        let r = v.round_ties_even().clamp(-1e6, 1e6) as i32 + y.1;
        t[q as u8 as usize] = r.clamp(-128, 127) as i8;
    }
    Some(t)
}

/// The outputs of an int8 -> int8 QUANTIZE (a requantisation) for the 256 inputs, as
/// LiteRT's XNNPACK delegate computes them: the scale ratio as a multiplier with 8
/// fractional bits (rounded to nearest even), `(zp_out * 256 + (q - zp_in) * m + 128) >> 8`,
/// saturated. XNNPACK takes ratios in [2^-8, 2^7]; others stay on the float path.
fn requantize_table(x: (f32, i32), y: (f32, i32)) -> Option<[i8; 256]> {
    let ratio = x.0 / y.0;
    if !(1.0 / 256.0..=128.0).contains(&ratio) {
        return None;
    }
    let m = (256.0 * ratio).round_ties_even() as i64;
    let mut t = [0i8; 256];
    for q in -128i64..=127 {
        let acc = ((y.1 as i64) << 8) + (q - x.1 as i64) * m + 0x80;
        t[q as u8 as usize] = (acc >> 8).clamp(-128, 127) as i8;
    }
    Some(t)
}

/// The int8 `MUL(t, LOGISTIC(t))` (swish; `MUL(LOGISTIC(t), t)` when `!t_first`) as
/// one table over `t`: for each of its 256 values, the logistic's table entry, then the
/// product exactly as the two int8 kernels give it. `None` unless both ops run on int8.
pub(crate) fn swish_table(
    model: &LiteModel,
    logistic: usize,
    mul: usize,
    t_first: bool,
) -> Option<Box<[i8; 256]>> {
    let (NativeOp::Table(sigmoid), NativeOp::Binary { op, constant: None }) = (
        NativeOp::prepare(model, logistic)?,
        NativeOp::prepare(model, mul)?,
    ) else {
        return None;
    };
    let t: Vec<i8> = (0..=255u8).map(|b| b as i8).collect();
    let s = table::lookup(&sigmoid, &t);
    let y = if t_first {
        op.run(&t, &s)
    } else {
        op.run(&s, &t)
    };
    let mut out = Box::new([0i8; 256]);
    for (&q, &v) in t.iter().zip(&y) {
        out[q as u8 as usize] = v;
    }
    Some(out)
}

impl NativeOp {
    /// Operator `k` of `model` prepared for int8, or `None` when it must run in float
    /// (other types, float activations, weights computed at run time...).
    pub(crate) fn prepare(model: &LiteModel, k: usize) -> Option<NativeOp> {
        let op = model.ops.get(k)?;
        let tensor = |j: usize| -> Option<&LiteTensor> {
            let i = usize::try_from(*op.inputs.get(j)?).ok()?;
            model.tensors.get(i)
        };
        let out = model
            .tensors
            .get(usize::try_from(*op.outputs.first()?).ok()?)?;
        if op.outputs.len() != 1 {
            return None;
        }
        let (x, y) = (activation(tensor(0)?)?, activation(out)?);
        // The bias, when there is one, must be an int32 constant.
        let bias_of = |j: usize, n: usize| -> Option<Option<Vec<i32>>> {
            match op.inputs.get(j) {
                None | Some(-1) => Some(None),
                Some(_) => bias(tensor(j)?, n).map(Some),
            }
        };
        Some(match &op.op {
            Op::FullyConnected {
                act, keep_num_dims, ..
            } => {
                let w = tensor(1)?;
                let [n, _] = w.shape[..] else { return None };
                let n = usize::try_from(n).ok()?;
                let (values, scales) = weights(w, 0, n)?;
                let rq = Requant::new(x.0, &scales, y, *act)?;
                NativeOp::FullyConnected {
                    weights: PackedWeights::new(values, bias_of(2, n)?, n, x.1, rq)?,
                    keep_num_dims: *keep_num_dims,
                }
            }
            Op::Conv2d { window, act } => {
                let w = tensor(1)?;
                let [n, kh, kw, _] = w.shape[..] else {
                    return None;
                };
                let n = usize::try_from(n).ok()?;
                let (values, scales) = weights(w, 0, n)?;
                let rq = Requant::new(x.0, &scales, y, *act)?;
                NativeOp::Conv2d {
                    conv: Conv {
                        kernel: (usize::try_from(kh).ok()?, usize::try_from(kw).ok()?),
                        input_zp: x.1 as i8,
                        weights: PackedWeights::new(values, bias_of(2, n)?, n, x.1, rq)?,
                    },
                    window: *window,
                }
            }
            Op::DepthwiseConv2d {
                window,
                act,
                multiplier,
            } => {
                let w = tensor(1)?;
                let [1, kh, kw, n] = w.shape[..] else {
                    return None;
                };
                let n = usize::try_from(n).ok()?;
                let cin = usize::try_from(*tensor(0)?.shape.last()?).ok()?;
                let m = if cin > 0 && n % cin == 0 {
                    n / cin
                } else {
                    return None;
                };
                if *multiplier != 0 && *multiplier != m {
                    return None;
                }
                let (values, scales) = weights(w, 3, n)?;
                NativeOp::Depthwise {
                    dw: Depthwise::new(
                        (usize::try_from(kh).ok()?, usize::try_from(kw).ok()?),
                        m,
                        x.1,
                        values,
                        bias_of(2, n)?.unwrap_or_else(|| vec![0; n]),
                        Requant::new(x.0, &scales, y, *act)?.per_channel(n),
                    ),
                    window: *window,
                }
            }
            // The integer pools keep the input's parameters, which the converter gives
            // their outputs.
            Op::Pool2d {
                max,
                window,
                filter,
                act,
            } if x == y => NativeOp::Pool {
                pool: Pool {
                    max: *max,
                    filter: *filter,
                    range: activation_range(*act, y.0, y.1)?,
                },
                window: *window,
            },
            Op::Binary {
                kind: kind @ (BinaryKind::Add | BinaryKind::Sub | BinaryKind::Mul),
                act,
            } if !matches!(act, Activation::Tanh) => {
                let b = tensor(1)?;
                let constant = match &b.data {
                    Some(bytes) if bytes.len() == b.numel() => Some((
                        bytes.iter().map(|&v| v as i8).collect(),
                        b.shape
                            .iter()
                            .map(|&d| usize::try_from(d).ok())
                            .collect::<Option<Vec<usize>>>()?,
                    )),
                    Some(_) => return None,
                    None => None,
                };
                NativeOp::Binary {
                    op: Binary {
                        kind: *kind,
                        a: x,
                        b: per_tensor(b)?,
                        out: y,
                        act: *act,
                    },
                    constant,
                }
            }
            Op::Unary(kind @ (UnaryKind::Logistic | UnaryKind::Tanh)) => {
                let f: fn(f32) -> f32 = match kind {
                    UnaryKind::Logistic => |v| 1.0 / (1.0 + (-v).exp()),
                    _ => f32::tanh,
                };
                NativeOp::Table(Box::new(table(x, y, f)?))
            }
            Op::Quantize => NativeOp::Table(Box::new(requantize_table(x, y)?)),
            Op::Reduce {
                kind: ReduceKind::Mean,
                keep_dims,
            } => NativeOp::Mean(Mean {
                axes: axes(tensor(1)?)?,
                keep_dims: *keep_dims,
                x,
                y,
            }),
            _ => return None,
        })
    }

    /// How many of the op's first inputs are int8 activations it reads.
    pub(crate) fn activations(&self) -> usize {
        match self {
            NativeOp::Binary { constant: None, .. } => 2,
            _ => 1,
        }
    }

    /// The op's output for its int8 activation inputs (`None`: this call must run in
    /// float, as an ADD whose inputs broadcast in a way it does not take).
    pub(crate) fn run(&self, inputs: &[&Tensor]) -> Result<Option<Tensor>> {
        if inputs.len() != self.activations() || inputs.iter().any(|x| x.dtype() != DType::I8) {
            return Err(Error::invalid(
                "int8 kernel",
                format!("{} inputs, not all int8", inputs.len()),
            ));
        }
        let x = inputs[0];
        let data = x.data::<i8>()?;
        let shape = x.shape();
        let out = match self {
            NativeOp::FullyConnected {
                weights,
                keep_num_dims,
            } => {
                let k = weights.k;
                if k == 0 || !x.numel().is_multiple_of(k) {
                    return Err(Error::shapes(
                        "FULLY_CONNECTED",
                        "input does not fit the weights",
                        shape,
                        &[weights.n, k],
                    ));
                }
                let m = x.numel() / k;
                let mut out = ferroflow_core::alloc::overwritable::<i8>(m * weights.n);
                weights.multiply(&data, &mut out);
                let out_shape = match (keep_num_dims, shape.split_last()) {
                    (true, Some((_, lead))) => [lead, &[weights.n]].concat(),
                    _ => vec![m, weights.n],
                };
                Tensor::from_vec(out, &out_shape)
            }
            NativeOp::Conv2d { conv, window } => {
                let g = Geometry::new("CONV_2D", shape, conv.kernel, window)?;
                if g.channels * conv.kernel.0 * conv.kernel.1 != conv.weights.k {
                    return Err(Error::shapes(
                        "CONV_2D",
                        "input channels do not fit the filter",
                        shape,
                        &[conv.weights.n, conv.kernel.0, conv.kernel.1],
                    ));
                }
                crate::kernels::check_output_size(
                    "CONV_2D",
                    &[g.batch, g.h.out, g.w.out, conv.weights.n],
                )?;
                let out = conv.run(&data, &g);
                Tensor::from_vec(out, &[g.batch, g.h.out, g.w.out, conv.weights.n])
            }
            NativeOp::Depthwise { dw, window } => {
                let g = Geometry::new("DEPTHWISE_CONV_2D", shape, dw.kernel, window)?;
                let n = g.channels * dw.multiplier;
                if n != dw.bias.len() {
                    return Err(Error::shapes(
                        "DEPTHWISE_CONV_2D",
                        "input channels do not fit the filter",
                        shape,
                        &[1, dw.kernel.0, dw.kernel.1, dw.bias.len()],
                    ));
                }
                crate::kernels::check_output_size(
                    "DEPTHWISE_CONV_2D",
                    &[g.batch, g.h.out, g.w.out, n],
                )?;
                let out = dw.run(&data, &g);
                Tensor::from_vec(out, &[g.batch, g.h.out, g.w.out, n])
            }
            NativeOp::Pool { pool, window } => {
                let op = if pool.max {
                    "MAX_POOL_2D"
                } else {
                    "AVERAGE_POOL_2D"
                };
                let g = Geometry::new(op, shape, pool.filter, window)?;
                let out = pool.run(&data, &g);
                Tensor::from_vec(out, &[g.batch, g.h.out, g.w.out, g.channels])
            }
            NativeOp::Binary { op, constant } => {
                let (b_data, b_shape) = match constant {
                    Some((values, shape)) => (std::borrow::Cow::Borrowed(&values[..]), &shape[..]),
                    None => (inputs[1].data::<i8>()?, inputs[1].shape()),
                };
                if b_shape == shape {
                    return Tensor::from_vec(op.run(&data, &b_data), shape).map(Some);
                }
                let repeated = if let Some(r) = Repeat::of(shape, b_shape) {
                    op.run_repeated(&data, &b_data, r, false)
                        .map(|y| (y, shape))
                } else if let Some(r) = Repeat::of(b_shape, shape) {
                    op.run_repeated(&b_data, &data, r, true)
                        .map(|y| (y, b_shape))
                } else {
                    None
                };
                // Other broadcasts run in float.
                let Some((y, out_shape)) = repeated else {
                    return Ok(None);
                };
                Tensor::from_vec(y, out_shape)
            }
            NativeOp::Table(t) => Tensor::from_vec(table::lookup(t, &data), shape),
            NativeOp::Mean(mean) => match mean.run(&data, shape) {
                Some((y, y_shape)) => Tensor::from_vec(y, &y_shape),
                None => return Ok(None),
            },
        };
        out.map(Some)
    }
}
