//! Lowering of each Keras layer class to TFLite builtin operators.

use super::Builder;
use crate::ir::{Activation, BinaryKind, Op, Padding, ReduceKind, UnaryKind, Window};
use ferroflow_core::{BinaryOp, Error, Result, Tensor};
use ferroflow_keras::layer::{Layer, LayerExt, TensorSpec};
use ferroflow_keras::layers::operation::{Elementwise, Operation, OperationArg};
use serde_json::{Map, Value};

/// Lowers one call of `layer` on tensors `inputs`; returns its output tensors.
pub(super) fn lower(
    b: &mut Builder,
    layer: &dyn Layer,
    inputs: &[usize],
    outputs: &[TensorSpec],
) -> Result<Vec<usize>> {
    let cfg = layer.get_config();
    let name = layer.name().to_string();
    let x = inputs
        .first()
        .copied()
        .ok_or_else(|| unsupported("a layer without inputs"))?;
    let out_spec = outputs
        .first()
        .ok_or_else(|| unsupported("a layer without outputs"))?;
    if let Some(op) = layer.as_operation() {
        return Ok(vec![operation(b, &name, op, inputs, out_spec)?]);
    }
    let y = match layer.class_name() {
        "Dense" => dense(b, layer, &cfg, x, out_spec)?,
        "Conv2D" => conv2d(b, layer, &cfg, x, out_spec, false)?,
        "DepthwiseConv2D" => conv2d(b, layer, &cfg, x, out_spec, true)?,
        "MaxPooling2D" | "AveragePooling2D" => pool2d(b, layer, &cfg, x, out_spec)?,
        "GlobalAveragePooling2D"
        | "GlobalMaxPooling2D"
        | "GlobalAveragePooling1D"
        | "GlobalMaxPooling1D" => global_pool(b, layer, &cfg, x, out_spec)?,
        "BatchNormalization" => batch_norm(b, layer, &cfg, x)?,
        "LayerNormalization" => layer_norm(b, layer, &cfg, x)?,
        "Activation" => {
            let act = str_of(&cfg, "activation")?;
            activation(b, &name, &act, x)?
        }
        "ReLU" => relu_layer(b, &name, &cfg, x)?,
        "Dropout" => x,
        "Flatten" | "Reshape" => reshape(b, &name, x, out_spec)?,
        "Rescaling" => rescaling(b, &name, &cfg, x)?,
        "Normalization" => normalization(b, layer, &cfg, x)?,
        "Concatenate" => concatenate(b, &name, &cfg, inputs, out_spec)?,
        "Add" | "Subtract" | "Multiply" | "Maximum" | "Minimum" | "Average" => {
            merge(b, &name, layer.class_name(), inputs)?
        }
        "Embedding" => embedding(b, layer, x, out_spec)?,
        "ZeroPadding2D" => zero_padding(b, &name, &cfg, x, out_spec)?,
        other => {
            return Err(unsupported(&format!(
                "layer class {other} has no TFLite lowering"
            )))
        }
    };
    Ok(vec![y])
}

/// An elementwise binary op without a fused activation.
fn bin(kind: BinaryKind) -> Op {
    Op::Binary {
        kind,
        act: Activation::None,
    }
}

fn unsupported(what: &str) -> Error {
    Error::invalid("tflite export", what.to_string())
}

/// The weight of `layer` whose name ends in `/{suffix}`.
fn weight(layer: &dyn Layer, suffix: &str) -> Result<Option<Tensor>> {
    let tail = format!("/{suffix}");
    Ok(layer
        .weights()
        .into_iter()
        .find(|w| w.variable.name().ends_with(&tail))
        .map(|w| w.variable.value()))
}

fn required(layer: &dyn Layer, suffix: &str) -> Result<Tensor> {
    weight(layer, suffix)?.ok_or_else(|| unsupported(&format!("has no '{suffix}' weight")))
}

fn str_of(cfg: &Map<String, Value>, key: &str) -> Result<String> {
    match cfg.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) | None => Ok("linear".into()),
        Some(v) => Err(unsupported(&format!("option {key}={v} is not supported"))),
    }
}

fn bool_of(cfg: &Map<String, Value>, key: &str, default: bool) -> bool {
    cfg.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn f64_of(cfg: &Map<String, Value>, key: &str, default: f64) -> f64 {
    cfg.get(key).and_then(Value::as_f64).unwrap_or(default)
}

fn pair(cfg: &Map<String, Value>, key: &str, default: usize) -> Result<(usize, usize)> {
    match cfg.get(key) {
        Some(Value::Array(v)) if v.len() == 2 => {
            let g = |i: usize| v[i].as_u64().map(|x| x as usize);
            match (g(0), g(1)) {
                (Some(a), Some(c)) => Ok((a, c)),
                _ => Err(unsupported(&format!("option {key} must be two integers"))),
            }
        }
        Some(Value::Number(n)) => {
            let v = n.as_u64().unwrap_or(default as u64) as usize;
            Ok((v, v))
        }
        Some(Value::Null) | None => Ok((default, default)),
        Some(v) => Err(unsupported(&format!("option {key}={v} is not supported"))),
    }
}

fn padding(cfg: &Map<String, Value>) -> Result<Padding> {
    match str_of(cfg, "padding")?.as_str() {
        "same" => Ok(Padding::Same),
        "valid" | "linear" => Ok(Padding::Valid),
        other => Err(unsupported(&format!("padding '{other}' is not supported"))),
    }
}

fn channels_last(cfg: &Map<String, Value>) -> Result<()> {
    match cfg.get("data_format").and_then(Value::as_str) {
        None | Some("channels_last") => Ok(()),
        Some(f) => Err(unsupported(&format!(
            "data_format '{f}' is not supported (TFLite is channels_last)"
        ))),
    }
}

/// The activation a TFLite op can carry for a Keras activation name, if any. (The schema
/// also has TANH, but LiteRT's kernels clamp only to the ReLU ranges and ignore it.)
fn fusable(act: &str) -> Option<Activation> {
    match act {
        "linear" => Some(Activation::None),
        "relu" => Some(Activation::Relu),
        "relu6" => Some(Activation::Relu6),
        _ => None,
    }
}

/// Applies `act` after an op whose output is `y`; fusable ones become the op's option,
/// others separate ops.
fn finish_activation(b: &mut Builder, name: &str, act: &str, y: usize) -> Result<usize> {
    if let Some(a) = fusable(act) {
        if a != Activation::None {
            let last = b.model.ops.last_mut().expect("an op was just added");
            if let Some(slot) = last.op.fused_activation_mut() {
                *slot = a;
            }
        }
        return Ok(y);
    }
    activation(b, name, act, y)
}

/// `keras.layers.ReLU`: RELU, RELU6 or LEAKY_RELU; other ceilings and thresholds have
/// no TFLite builtin.
fn relu_layer(b: &mut Builder, name: &str, cfg: &Map<String, Value>, x: usize) -> Result<usize> {
    let num = |k: &str| cfg.get(k).and_then(Value::as_f64);
    let (max, slope, threshold) = (
        num("max_value"),
        num("negative_slope").unwrap_or(0.0),
        num("threshold").unwrap_or(0.0),
    );
    match (max, slope, threshold) {
        (None, s, t) if s == 0.0 && t == 0.0 => activation(b, name, "relu", x),
        (Some(m), s, t) if m == 6.0 && s == 0.0 && t == 0.0 => activation(b, name, "relu6", x),
        (None, s, t) if s > 0.0 && t == 0.0 => {
            let y = b.like(name, x);
            b.op(Op::LeakyRelu { alpha: s as f32 }, &[x as i32], &[y]);
            Ok(y)
        }
        _ => Err(unsupported(&format!(
            "ReLU with max_value={max:?}, negative_slope={slope}, threshold={threshold} has no TFLite builtin"
        ))),
    }
}

/// A standalone activation op (or ops) on `x`.
pub(super) fn activation(b: &mut Builder, name: &str, act: &str, x: usize) -> Result<usize> {
    let unary = |b: &mut Builder, kind: UnaryKind| {
        let y = b.like(name, x);
        b.op(Op::Unary(kind), &[x as i32], &[y]);
        y
    };
    Ok(match act {
        "linear" => x,
        "relu" => unary(b, UnaryKind::Relu),
        "relu6" => unary(b, UnaryKind::Relu6),
        "sigmoid" => unary(b, UnaryKind::Logistic),
        "tanh" => unary(b, UnaryKind::Tanh),
        "elu" => unary(b, UnaryKind::Elu),
        "exponential" => unary(b, UnaryKind::Exp),
        "hard_silu" | "hard_swish" => unary(b, UnaryKind::HardSwish),
        "softmax" => {
            let y = b.like(name, x);
            b.op(Op::Softmax { beta: 1.0 }, &[x as i32], &[y]);
            y
        }
        "gelu" => {
            let y = b.like(name, x);
            b.op(Op::Gelu { approximate: false }, &[x as i32], &[y]);
            y
        }
        "leaky_relu" => {
            let y = b.like(name, x);
            b.op(Op::LeakyRelu { alpha: 0.2 }, &[x as i32], &[y]);
            y
        }
        "silu" | "swish" => {
            let s = b.like(&format!("{name}/sigmoid"), x);
            b.op(Op::Unary(UnaryKind::Logistic), &[x as i32], &[s]);
            let y = b.like(name, x);
            b.op(bin(BinaryKind::Mul), &[x as i32, s as i32], &[y]);
            y
        }
        other => {
            return Err(unsupported(&format!(
                "activation '{other}' has no TFLite builtin"
            )))
        }
    })
}

/// The layer's bias as a constant, or zeros for `channels` outputs when it has none
/// (TFLite kernels take a bias input either way).
fn bias(
    b: &mut Builder,
    layer: &dyn Layer,
    cfg: &Map<String, Value>,
    channels: usize,
) -> Result<usize> {
    let name = format!("{}/bias", layer.name());
    Ok(match weight(layer, "bias")? {
        Some(v) if bool_of(cfg, "use_bias", true) => b.constant(&name, &v)?,
        _ => b.const_f32(&name, &[channels as i32], &vec![0.0; channels]),
    })
}

fn dense(
    b: &mut Builder,
    layer: &dyn Layer,
    cfg: &Map<String, Value>,
    x: usize,
    out: &TensorSpec,
) -> Result<usize> {
    let name = layer.name();
    let kernel = required(layer, "kernel")?; // [in, units]
    let w = b.constant(&format!("{name}/kernel"), &kernel.t()?.contiguous())?;
    let bias = bias(b, layer, cfg, kernel.shape()[1])?;
    let keep_num_dims = out.shape.len() > 2;
    let y = b.activation_tensor(name, out)?;
    b.op(
        Op::FullyConnected {
            act: Activation::None,
            keep_num_dims,
            asymmetric_inputs: false,
        },
        &[x as i32, w as i32, bias as i32],
        &[y],
    );
    finish_activation(b, name, &str_of(cfg, "activation")?, y)
}

fn conv2d(
    b: &mut Builder,
    layer: &dyn Layer,
    cfg: &Map<String, Value>,
    x: usize,
    out: &TensorSpec,
    depthwise: bool,
) -> Result<usize> {
    let name = layer.name();
    channels_last(cfg)?;
    if cfg.get("groups").and_then(Value::as_u64).unwrap_or(1) != 1 {
        return Err(unsupported(
            "grouped convolution (groups > 1) is not supported",
        ));
    }
    let window = Window {
        padding: padding(cfg)?,
        stride: pair(cfg, "strides", 1)?,
        dilation: pair(cfg, "dilation_rate", 1)?,
    };
    let key = if depthwise {
        "depthwise_kernel"
    } else {
        "kernel"
    };
    let kernel = weight(layer, key)?
        .or(weight(layer, "kernel")?)
        .ok_or_else(|| unsupported("has no kernel"))?;
    let k = kernel.shape().to_vec(); // [kh, kw, in, out] or [kh, kw, in, multiplier]
    let channels = if depthwise { k[2] * k[3] } else { k[3] };
    let filter = if depthwise {
        kernel.reshape(&[1, k[0] as isize, k[1] as isize, channels as isize])?
    } else {
        kernel.transpose(&[3, 0, 1, 2])?.contiguous()
    };
    let w = b.constant(&format!("{name}/kernel"), &filter)?;
    let bias = bias(b, layer, cfg, channels)?;
    let y = b.activation_tensor(name, out)?;
    let op = if depthwise {
        Op::DepthwiseConv2d {
            window,
            multiplier: k[3],
            act: Activation::None,
        }
    } else {
        Op::Conv2d {
            window,
            act: Activation::None,
        }
    };
    b.op(op, &[x as i32, w as i32, bias as i32], &[y]);
    finish_activation(b, name, &str_of(cfg, "activation")?, y)
}

fn pool2d(
    b: &mut Builder,
    layer: &dyn Layer,
    cfg: &Map<String, Value>,
    x: usize,
    out: &TensorSpec,
) -> Result<usize> {
    channels_last(cfg)?;
    let filter = pair(cfg, "pool_size", 2)?;
    let stride = match cfg.get("strides") {
        Some(Value::Null) | None => filter,
        _ => pair(cfg, "strides", filter.0)?,
    };
    let y = b.activation_tensor(layer.name(), out)?;
    b.op(
        Op::Pool2d {
            max: layer.class_name() == "MaxPooling2D",
            window: Window {
                padding: padding(cfg)?,
                stride,
                dilation: (1, 1),
            },
            filter,
            act: Activation::None,
        },
        &[x as i32],
        &[y],
    );
    Ok(y)
}

fn global_pool(
    b: &mut Builder,
    layer: &dyn Layer,
    cfg: &Map<String, Value>,
    x: usize,
    out: &TensorSpec,
) -> Result<usize> {
    channels_last(cfg)?;
    let rank = b.model.tensors[x].shape.len();
    let axes: Vec<i32> = (1..rank as i32 - 1).collect();
    let name = layer.name();
    let axes_t = b.const_i32(&format!("{name}/axes"), &[axes.len() as i32], &axes);
    let kind = if layer.class_name().starts_with("GlobalMax") {
        ReduceKind::Max
    } else {
        ReduceKind::Mean
    };
    let y = b.activation_tensor(name, out)?;
    b.op(
        Op::Reduce {
            kind,
            keep_dims: bool_of(cfg, "keepdims", false),
        },
        &[x as i32, axes_t as i32],
        &[y],
    );
    Ok(y)
}

/// Inference-mode batch normalisation as `x * scale + shift` per channel (folded into a
/// preceding convolution or dense layer afterwards when possible).
fn batch_norm(
    b: &mut Builder,
    layer: &dyn Layer,
    cfg: &Map<String, Value>,
    x: usize,
) -> Result<usize> {
    let rank = b.model.tensors[x].shape.len() as i64;
    let axis = cfg.get("axis").and_then(Value::as_i64).unwrap_or(-1);
    if axis != -1 && axis != rank - 1 {
        return Err(unsupported(&format!(
            "BatchNormalization over axis {axis} (only the last axis is supported)"
        )));
    }
    let eps = f64_of(cfg, "epsilon", 1e-3) as f32;
    let mean = required(layer, "moving_mean")?.to_vec::<f32>()?;
    let var = required(layer, "moving_variance")?.to_vec::<f32>()?;
    let c = mean.len();
    let gamma = match weight(layer, "gamma")? {
        Some(g) => g.to_vec::<f32>()?,
        None => vec![1.0; c],
    };
    let beta = match weight(layer, "beta")? {
        Some(v) => v.to_vec::<f32>()?,
        None => vec![0.0; c],
    };
    let scale: Vec<f32> = (0..c).map(|i| gamma[i] / (var[i] + eps).sqrt()).collect();
    let shift: Vec<f32> = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
    let name = layer.name();
    affine(b, name, x, &scale, &shift)
}

/// `x * scale + shift` with per-channel (last axis) or scalar constants.
fn affine(b: &mut Builder, name: &str, x: usize, scale: &[f32], shift: &[f32]) -> Result<usize> {
    let s = b.const_f32(&format!("{name}/scale"), &[scale.len() as i32], scale);
    let m = b.like(&format!("{name}/mul"), x);
    b.op(bin(BinaryKind::Mul), &[x as i32, s as i32], &[m]);
    let o = b.const_f32(&format!("{name}/offset"), &[shift.len() as i32], shift);
    let y = b.like(name, x);
    b.op(bin(BinaryKind::Add), &[m as i32, o as i32], &[y]);
    Ok(y)
}

/// The `axis` option of a normalisation layer (one axis or a list; the last by default).
fn axes_of(cfg: &Map<String, Value>) -> Vec<i64> {
    match cfg.get("axis") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_i64).collect(),
        Some(Value::Number(n)) => vec![n.as_i64().unwrap_or(-1)],
        _ => vec![-1],
    }
}

/// LayerNormalization as TFLite's builtin decomposition: mean, squared difference, mean,
/// rsqrt, then scale and offset.
fn layer_norm(
    b: &mut Builder,
    layer: &dyn Layer,
    cfg: &Map<String, Value>,
    x: usize,
) -> Result<usize> {
    let name = layer.name();
    let rank = b.model.tensors[x].shape.len() as i64;
    let axes = axes_of(cfg);
    let axes: Vec<i32> = axes
        .iter()
        .map(|&a| (if a < 0 { a + rank } else { a }) as i32)
        .collect();
    if bool_of(cfg, "rms_scaling", false) {
        return Err(unsupported(
            "LayerNormalization with rms_scaling is not supported",
        ));
    }
    let eps = f64_of(cfg, "epsilon", 1e-3) as f32;
    let mut reduced = b.model.tensors[x].shape.clone();
    for &a in &axes {
        reduced[a as usize] = 1;
    }
    let axes_t = b.const_i32(&format!("{name}/axes"), &[axes.len() as i32], &axes);
    let mean = b.shaped(&format!("{name}/mean"), &reduced, x);
    let mean_op = Op::Reduce {
        kind: ReduceKind::Mean,
        keep_dims: true,
    };
    b.op(mean_op.clone(), &[x as i32, axes_t as i32], &[mean]);
    let sq = b.like(&format!("{name}/squared_difference"), x);
    b.op(
        bin(BinaryKind::SquaredDifference),
        &[x as i32, mean as i32],
        &[sq],
    );
    let var = b.shaped(&format!("{name}/variance"), &reduced, x);
    b.op(mean_op, &[sq as i32, axes_t as i32], &[var]);
    let eps_t = b.const_f32(&format!("{name}/epsilon"), &[], &[eps]);
    let var_eps = b.shaped(&format!("{name}/variance_eps"), &reduced, x);
    b.op(
        bin(BinaryKind::Add),
        &[var as i32, eps_t as i32],
        &[var_eps],
    );
    let inv = b.shaped(&format!("{name}/rsqrt"), &reduced, x);
    b.op(Op::Unary(UnaryKind::Rsqrt), &[var_eps as i32], &[inv]);
    let centered = b.like(&format!("{name}/centered"), x);
    b.op(bin(BinaryKind::Sub), &[x as i32, mean as i32], &[centered]);
    let mut y = b.like(&format!("{name}/normalized"), x);
    b.op(bin(BinaryKind::Mul), &[centered as i32, inv as i32], &[y]);
    if let Some(g) = weight(layer, "gamma")? {
        let g = b.constant(&format!("{name}/gamma"), &g)?;
        let z = b.like(&format!("{name}/scaled"), x);
        b.op(bin(BinaryKind::Mul), &[y as i32, g as i32], &[z]);
        y = z;
    }
    if let Some(beta) = weight(layer, "beta")? {
        let beta = b.constant(&format!("{name}/beta"), &beta)?;
        let z = b.like(name, x);
        b.op(bin(BinaryKind::Add), &[y as i32, beta as i32], &[z]);
        y = z;
    }
    Ok(y)
}

fn reshape(b: &mut Builder, name: &str, x: usize, out: &TensorSpec) -> Result<usize> {
    let mut target: Vec<i32> = out
        .shape
        .iter()
        .map(|d| d.map_or(-1, |v| v as i32))
        .collect();
    if target.iter().filter(|&&d| d == -1).count() > 1 {
        return Err(unsupported(
            "a reshape with more than one unknown dimension",
        ));
    }
    if target.first() == Some(&-1) || out.shape.first() == Some(&None) {
        target[0] = -1;
    }
    let shape_t = b.const_i32(&format!("{name}/shape"), &[target.len() as i32], &target);
    let y = b.activation_tensor(name, out)?;
    b.op(
        Op::Reshape { new_shape: target },
        &[x as i32, shape_t as i32],
        &[y],
    );
    Ok(y)
}

fn rescaling(b: &mut Builder, name: &str, cfg: &Map<String, Value>, x: usize) -> Result<usize> {
    let list = |key: &str, default: f64| -> Result<Vec<f32>> {
        match cfg.get(key) {
            Some(Value::Array(a)) => Ok(a
                .iter()
                .filter_map(Value::as_f64)
                .map(|v| v as f32)
                .collect()),
            Some(v) => Ok(vec![v.as_f64().unwrap_or(default) as f32]),
            None => Ok(vec![default as f32]),
        }
    };
    let scale = list("scale", 1.0)?;
    let offset = list("offset", 0.0)?;
    affine(b, name, x, &scale, &offset)
}

/// `keras.layers.Normalization`: `(x - mean) / max(sqrt(var), 1e-7)` (SUB, then MUL by
/// the reciprocal), or `x * std + mean` when inverted; features on the last axis.
fn normalization(
    b: &mut Builder,
    layer: &dyn Layer,
    cfg: &Map<String, Value>,
    x: usize,
) -> Result<usize> {
    let name = layer.name();
    let shape = b.model.tensors[x].shape.clone();
    let rank = shape.len() as i64;
    let axes = axes_of(cfg);
    if axes.len() != 1 || (axes[0] != -1 && axes[0] != rank - 1) {
        return Err(unsupported(&format!(
            "Normalization over axes {axes:?} (only the last axis is supported)"
        )));
    }
    let c = shape.last().copied().unwrap_or(1).max(1) as usize;
    let stat = |key: &str| -> Result<Vec<f32>> {
        let values: Vec<f32> = match cfg.get(key) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_f64)
                .map(|v| v as f32)
                .collect(),
            Some(Value::Number(n)) => vec![n.as_f64().unwrap_or(0.0) as f32],
            _ => required(layer, key)?.to_vec::<f32>()?,
        };
        match values.len() {
            1 => Ok(vec![values[0]; c]),
            n if n == c => Ok(values),
            n => Err(unsupported(&format!(
                "Normalization with {n} {key} values for {c} features"
            ))),
        }
    };
    let mean = stat("mean")?;
    let std: Vec<f32> = stat("variance")?
        .iter()
        .map(|v| v.sqrt().max(1e-7))
        .collect();
    let m = b.const_f32(&format!("{name}/mean"), &[c as i32], &mean);
    let (first, second) = if bool_of(cfg, "invert", false) {
        let s = b.const_f32(&format!("{name}/std"), &[c as i32], &std);
        ((BinaryKind::Mul, s), (BinaryKind::Add, m))
    } else {
        // A product with the reciprocal, as TF's converter emits (int8 kernels have no
        // DIV); within a rounding of Keras's quotient.
        let inv: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
        let s = b.const_f32(&format!("{name}/inverse_std"), &[c as i32], &inv);
        ((BinaryKind::Sub, m), (BinaryKind::Mul, s))
    };
    let t = b.like(&format!("{name}/centred"), x);
    b.op(bin(first.0), &[x as i32, first.1 as i32], &[t]);
    let y = b.like(name, x);
    b.op(bin(second.0), &[t as i32, second.1 as i32], &[y]);
    Ok(y)
}

fn concatenate(
    b: &mut Builder,
    name: &str,
    cfg: &Map<String, Value>,
    inputs: &[usize],
    out: &TensorSpec,
) -> Result<usize> {
    let rank = out.shape.len() as i64;
    let axis = cfg.get("axis").and_then(Value::as_i64).unwrap_or(-1);
    let axis = if axis < 0 { axis + rank } else { axis };
    let y = b.activation_tensor(name, out)?;
    let ins: Vec<i32> = inputs.iter().map(|&i| i as i32).collect();
    b.op(
        Op::Concatenation {
            axis: axis as i32,
            act: Activation::None,
        },
        &ins,
        &[y],
    );
    Ok(y)
}

fn merge(b: &mut Builder, name: &str, class: &str, inputs: &[usize]) -> Result<usize> {
    if inputs.len() < 2 {
        return Err(unsupported(&format!(
            "merge layer {class} with {} input(s)",
            inputs.len()
        )));
    }
    let kind = match class {
        "Add" | "Average" => BinaryKind::Add,
        "Subtract" => BinaryKind::Sub,
        "Multiply" => BinaryKind::Mul,
        "Maximum" => BinaryKind::Maximum,
        _ => BinaryKind::Minimum,
    };
    let mut acc = inputs[0];
    for (k, &next) in inputs.iter().enumerate().skip(1) {
        let out_name = if k + 1 == inputs.len() && class != "Average" {
            name.to_string()
        } else {
            format!("{name}/{k}")
        };
        let y = b.like(&out_name, acc);
        b.op(bin(kind), &[acc as i32, next as i32], &[y]);
        acc = y;
    }
    if class == "Average" {
        let inv = b.const_f32(&format!("{name}/count"), &[], &[1.0 / inputs.len() as f32]);
        let y = b.like(name, acc);
        b.op(bin(BinaryKind::Mul), &[acc as i32, inv as i32], &[y]);
        acc = y;
    }
    Ok(acc)
}

/// An operation node (`x + 3.0`): its constants become scalar tensors.
fn operation(
    b: &mut Builder,
    name: &str,
    op: &Operation,
    inputs: &[usize],
    out: &TensorSpec,
) -> Result<usize> {
    let Elementwise::Binary(bop) = op.op() else {
        return Err(unsupported(&format!(
            "comparison operation '{}' has no TFLite lowering",
            op.class_name()
        )));
    };
    let kind = match bop {
        BinaryOp::Add => BinaryKind::Add,
        BinaryOp::Sub => BinaryKind::Sub,
        BinaryOp::Mul => BinaryKind::Mul,
        BinaryOp::Div => BinaryKind::Div,
        BinaryOp::Pow => BinaryKind::Pow,
        BinaryOp::Maximum => BinaryKind::Maximum,
        BinaryOp::Minimum => BinaryKind::Minimum,
        BinaryOp::SquaredDifference => BinaryKind::SquaredDifference,
        other => {
            return Err(unsupported(&format!(
                "operation {} has no TFLite lowering",
                other.name()
            )))
        }
    };
    let mut tensors = inputs.iter();
    let mut operands = Vec::with_capacity(2);
    for (k, arg) in op.args().iter().enumerate() {
        operands.push(match arg {
            OperationArg::Tensor => *tensors
                .next()
                .ok_or_else(|| unsupported("an operation without its tensor input"))?
                as i32,
            OperationArg::Scalar(v) => {
                b.const_f32(&format!("{name}/constant{k}"), &[], &[*v as f32]) as i32
            }
        });
    }
    let y = b.activation_tensor(name, out)?;
    b.op(bin(kind), &operands, &[y]);
    Ok(y)
}

fn embedding(b: &mut Builder, layer: &dyn Layer, x: usize, out: &TensorSpec) -> Result<usize> {
    let name = layer.name();
    let table = required(layer, "embeddings")?;
    let params = b.constant(&format!("{name}/embeddings"), &table)?;
    let mut ids = x;
    if b.model.tensors[x].dtype != crate::ir::ElementType::I32 {
        ids = b.like(&format!("{name}/ids"), x);
        b.model.tensors[ids].dtype = crate::ir::ElementType::I32;
        b.op(Op::Cast, &[x as i32], &[ids]);
    }
    let y = b.activation_tensor(name, out)?;
    b.op(Op::Gather { axis: 0 }, &[params as i32, ids as i32], &[y]);
    Ok(y)
}

fn zero_padding(
    b: &mut Builder,
    name: &str,
    cfg: &Map<String, Value>,
    x: usize,
    out: &TensorSpec,
) -> Result<usize> {
    channels_last(cfg)?;
    let p = cfg.get("padding").cloned().unwrap_or(Value::Null);
    let rows: Vec<(i64, i64)> = match &p {
        Value::Array(a) if a.len() == 2 && a.iter().all(Value::is_array) => a
            .iter()
            .map(|r| {
                let r = r.as_array().expect("checked");
                (r[0].as_i64().unwrap_or(0), r[1].as_i64().unwrap_or(0))
            })
            .collect(),
        Value::Array(a) if a.len() == 2 => a
            .iter()
            .map(|v| (v.as_i64().unwrap_or(0), v.as_i64().unwrap_or(0)))
            .collect(),
        Value::Number(n) => vec![(n.as_i64().unwrap_or(0), n.as_i64().unwrap_or(0)); 2],
        other => return Err(unsupported(&format!("padding {other} is not supported"))),
    };
    let pads = [
        0,
        0,
        rows[0].0 as i32,
        rows[0].1 as i32,
        rows[1].0 as i32,
        rows[1].1 as i32,
        0,
        0,
    ];
    let pads_t = b.const_i32(&format!("{name}/paddings"), &[4, 2], &pads);
    let y = b.activation_tensor(name, out)?;
    b.op(Op::Pad, &[x as i32, pads_t as i32], &[y]);
    Ok(y)
}
