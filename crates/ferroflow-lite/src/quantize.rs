//! Post-training quantisation of a float [`LiteModel`], following TFLite's int8
//! quantisation spec:
//!
//! - **dynamic range**: the weights of fully-connected and convolution layers become int8
//!   (symmetric, per output channel); activations stay float and the kernels quantise them
//!   on the fly (`Optimize.DEFAULT` without a representative dataset);
//! - **full integer**: every activation becomes int8 (asymmetric, per tensor, ranges from a
//!   representative dataset), weights int8 per channel, biases int32 at
//!   `input_scale * weight_scale`; inputs and outputs int8 or float (then QUANTIZE and
//!   DEQUANTIZE ops are added at the edges).

use crate::interpreter::Interpreter;
use crate::ir::{
    BinaryKind, ElementType, LiteModel, LiteOp, LiteTensor, Op, Quantization, UnaryKind,
};
use ferroflow_core::{Error, Result, Tensor};

/// Weights with fewer elements stay float in dynamic-range mode (as in TensorFlow's
/// converter: quantising them saves little and costs accuracy).
const DYNAMIC_MIN_ELEMENTS: usize = 1024;

/// The weight input of `op` and the axis its per-channel scales run along.
fn weight_axis(op: &LiteOp) -> Option<(usize, usize)> {
    let w = *op.inputs.get(1)?;
    if w < 0 {
        return None;
    }
    match op.op {
        Op::FullyConnected { .. } | Op::Conv2d { .. } => Some((w as usize, 0)),
        Op::DepthwiseConv2d { .. } => Some((w as usize, 3)),
        _ => None,
    }
}

/// Symmetric per-channel int8 quantisation of `values` (shape `shape`) along `axis`:
/// returns the int8 bytes and one scale per channel (`max|w| / 127`).
fn quantize_weights(values: &[f32], shape: &[i32], axis: usize) -> (Vec<u8>, Vec<f32>) {
    let channels = shape[axis].max(1) as usize;
    let inner: usize = shape[axis + 1..].iter().map(|&d| d as usize).product();
    let channel_of = |i: usize| (i / inner.max(1)) % channels;
    let mut max_abs = vec![0f32; channels];
    for (i, v) in values.iter().enumerate() {
        let c = channel_of(i);
        max_abs[c] = max_abs[c].max(v.abs());
    }
    let scales: Vec<f32> = max_abs
        .iter()
        .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 })
        .collect();
    let q = values
        .iter()
        .enumerate()
        .map(|(i, v)| (v / scales[channel_of(i)]).round().clamp(-127.0, 127.0) as i8 as u8)
        .collect();
    (q, scales)
}

fn to_int8_weights(t: &mut LiteTensor, axis: usize) {
    let values = t.f32_values().expect("float constant");
    let (q, scales) = quantize_weights(&values, &t.shape, axis);
    t.dtype = ElementType::I8;
    t.data = Some(q);
    t.quant = Some(Quantization {
        zero_point: vec![0; scales.len()],
        scale: scales,
        axis,
    });
}

/// Dynamic-range quantisation: int8 weights for FULLY_CONNECTED and CONV_2D layers with at
/// least 1024 weights, whose fully-connected layers then quantise their inputs
/// asymmetrically at run time; everything else unchanged.
pub fn dynamic_range(model: &LiteModel) -> LiteModel {
    let mut m = model.clone();
    let weights: Vec<(usize, usize)> = m
        .ops
        .iter()
        .filter(|op| matches!(op.op, Op::FullyConnected { .. } | Op::Conv2d { .. }))
        .filter_map(weight_axis)
        .collect();
    let readers = m.readers();
    for (w, axis) in weights {
        let t = &m.tensors[w];
        if t.dtype == ElementType::F32
            && t.data.is_some()
            && t.numel() >= DYNAMIC_MIN_ELEMENTS
            && readers[w] == 1
        {
            to_int8_weights(&mut m.tensors[w], axis);
        }
    }
    // As TensorFlow's converter does: hybrid fully-connected layers quantise their input
    // rows asymmetrically (LiteRT's XNNPACK and builtin kernels both honour the flag).
    for op in &mut m.ops {
        let hybrid = op
            .inputs
            .get(1)
            .is_some_and(|&w| w >= 0 && m.tensors[w as usize].dtype == ElementType::I8);
        if let Op::FullyConnected {
            asymmetric_inputs, ..
        } = &mut op.op
        {
            *asymmetric_inputs = hybrid;
        }
    }
    m
}

/// Per-tensor asymmetric int8 parameters for values in `[lo, hi]` (the range is widened
/// to contain 0, so zero is exact).
fn activation_params(lo: f32, hi: f32) -> Quantization {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = if hi > lo {
        (hi - lo) / 255.0
    } else {
        1.0 / 255.0
    };
    let zero_point = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i64;
    Quantization::per_tensor(scale, zero_point)
}

/// Input and output types of a fully quantised model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoType {
    /// Float inputs and outputs, with QUANTIZE / DEQUANTIZE ops at the edges.
    Float,
    /// int8 inputs and outputs, quantised with the model's parameters.
    Int8,
}

/// Rows of representative data per calibration batch.
pub const CALIBRATION_BATCH: usize = 32;

/// Splits representative data (one tensor per model input, rows are samples, at most
/// `max_rows` of them used) into calibration batches for [`full_integer`], each input cast
/// to the model's input type.
pub fn calibration_batches(
    model: &LiteModel,
    data: &[Tensor],
    max_rows: usize,
) -> Result<Vec<Vec<Tensor>>> {
    if data.len() != model.inputs.len() {
        return Err(Error::invalid(
            "tflite quantize",
            format!(
                "representative data needs one tensor per model input ({}), got {}",
                model.inputs.len(),
                data.len()
            ),
        ));
    }
    let rows = data
        .first()
        .and_then(|d| d.shape().first().copied())
        .unwrap_or(0);
    if rows == 0 || data.iter().any(|d| d.shape().first() != Some(&rows)) {
        return Err(Error::invalid(
            "tflite quantize",
            "representative inputs must hold the same number (> 0) of rows",
        ));
    }
    let rows = rows.min(max_rows);
    (0..rows)
        .step_by(CALIBRATION_BATCH)
        .map(|start| {
            let len = CALIBRATION_BATCH.min(rows - start);
            data.iter()
                .zip(&model.inputs)
                .map(|(d, &t)| {
                    let mut begin = vec![0; d.rank()];
                    begin[0] = start;
                    let mut size = vec![-1; d.rank()];
                    size[0] = len as isize;
                    d.slice(&begin, &size)?
                        .cast(crate::interpreter::core_dtype(model.tensors[t].dtype))
                })
                .collect()
        })
        .collect()
}

/// Full-integer post-training quantisation with ranges measured on `samples` (each one a
/// list of input batches in the model's input order).
pub fn full_integer(model: &LiteModel, samples: &[Vec<Tensor>], io: IoType) -> Result<LiteModel> {
    if samples.is_empty() {
        return Err(Error::invalid(
            "tflite quantize",
            "full-integer quantisation needs a representative dataset",
        ));
    }
    let mut m = model.clone();
    separate_fixed_outputs(&mut m);
    let ranges = calibrate(&m, samples)?;
    let n = m.tensors.len();
    let params = activation_quantization(&m, &ranges);
    // Constants: weights per channel, biases int32, other float constants per tensor.
    // For each bias: the (input, weights) of its layer.
    let mut bias_of: Vec<Option<(usize, usize)>> = vec![None; n];
    for op in &m.ops {
        if let (Some((w, _)), Some(&b)) = (weight_axis(op), op.inputs.get(2)) {
            if b >= 0 {
                bias_of[b as usize] = Some((op.inputs[0] as usize, w));
            }
        }
    }
    let weight_axes: Vec<(usize, usize)> = m.ops.iter().filter_map(weight_axis).collect();
    for &(w, axis) in &weight_axes {
        if m.tensors[w].data.is_some() && m.tensors[w].dtype == ElementType::F32 {
            to_int8_weights(&mut m.tensors[w], axis);
        }
    }
    for (b, layer) in bias_of.iter().enumerate() {
        if let Some((x, w)) = *layer {
            let x_scale = params[x]
                .as_ref()
                .map(|q| q.scale[0])
                .ok_or_else(|| Error::invalid("tflite quantize", "layer input without a range"))?;
            let w_scales = m.tensors[w]
                .quant
                .as_ref()
                .map(|q| q.scale.clone())
                .unwrap_or_default();
            let t = &mut m.tensors[b];
            let Some(values) = t.f32_values() else {
                continue;
            };
            let scales: Vec<f32> = (0..values.len())
                .map(|c| x_scale * w_scales.get(c).or(w_scales.first()).copied().unwrap_or(1.0))
                .collect();
            let q: Vec<u8> = values
                .iter()
                .zip(&scales)
                .map(|(v, s)| {
                    ((v / s).round() as i64).clamp(i32::MIN as i64, i32::MAX as i64) as i32
                })
                .flat_map(|v: i32| v.to_le_bytes())
                .collect();
            t.dtype = ElementType::I32;
            t.data = Some(q);
            t.quant = Some(Quantization {
                zero_point: vec![0; scales.len()],
                scale: scales,
                axis: 0,
            });
        }
    }
    for t in m.tensors.iter_mut() {
        if t.dtype == ElementType::F32 && t.data.is_some() {
            let values = t.f32_values().expect("float constant");
            let q = float_const_params(t).expect("float constant");
            let (s, z) = (q.scale[0], q.zero_point[0] as f32);
            t.data = Some(
                values
                    .iter()
                    .map(|v| ((v / s).round() + z).clamp(-128.0, 127.0) as i8 as u8)
                    .collect(),
            );
            t.dtype = ElementType::I8;
            t.quant = Some(q);
        }
    }
    for (i, p) in params.into_iter().enumerate() {
        if let Some(p) = p {
            m.tensors[i].dtype = ElementType::I8;
            m.tensors[i].quant = Some(p);
        }
    }
    if io == IoType::Float {
        add_float_edges(&mut m);
    }
    Ok(m)
}

/// The fixed parameters of `op`'s int8 output, for ops whose int8 kernels require them:
/// SOFTMAX and LOGISTIC (1/256, -128), TANH (1/128, 0).
fn fixed_output(op: &Op) -> Option<Quantization> {
    match op {
        Op::Softmax { .. } | Op::Unary(UnaryKind::Logistic) => {
            Some(Quantization::per_tensor(1.0 / 256.0, -128))
        }
        Op::Unary(UnaryKind::Tanh) => Some(Quantization::per_tensor(1.0 / 128.0, 0)),
        _ => None,
    }
}

/// Whether `op`'s int8 kernel needs its inputs to share its output's parameters.
fn joins(op: &Op) -> bool {
    matches!(
        op,
        Op::Pool2d { .. }
            | Op::Reshape { .. }
            | Op::Pad
            | Op::Transpose
            | Op::Gather { .. }
            | Op::Concatenation { .. }
            | Op::Binary {
                kind: BinaryKind::Maximum | BinaryKind::Minimum,
                ..
            }
    )
}

/// The inputs of a joining op that share its output's parameters: all of a
/// concatenation's and of MAXIMUM/MINIMUM's (LiteRT's int8 kernels compare the integers
/// as they are), the data input (the first) of the others.
fn joined_inputs(op: &LiteOp) -> &[i32] {
    match op.op {
        Op::Concatenation { .. } | Op::Binary { .. } => &op.inputs,
        _ => &op.inputs[..1],
    }
}

/// A fixed-range output (softmax, logistic, tanh) read by an op that must share
/// parameters with other tensors gets a requantising QUANTIZE in between, so the fixed
/// range does not clip the others (TensorFlow's converter does the same).
fn separate_fixed_outputs(m: &mut LiteModel) {
    let mut k = 0;
    while k < m.ops.len() {
        if fixed_output(&m.ops[k].op).is_none() {
            k += 1;
            continue;
        }
        let t = m.ops[k].outputs[0];
        let joined = m
            .ops
            .iter()
            .any(|op| joins(&op.op) && op.inputs.contains(&t));
        if !joined {
            k += 1;
            continue;
        }
        let twin = LiteTensor {
            name: format!("{}_requantized", m.tensors[t as usize].name),
            ..m.tensors[t as usize].clone()
        };
        let t2 = m.add_tensor(twin) as i32;
        for op in m.ops.iter_mut().filter(|op| joins(&op.op)) {
            for i in op.inputs.iter_mut().filter(|i| **i == t) {
                *i = t2;
            }
        }
        m.ops.insert(
            k + 1,
            LiteOp {
                op: Op::Quantize,
                inputs: vec![t],
                outputs: vec![t2],
            },
        );
        k += 2;
    }
}

/// int8 parameters of every float activation: its calibrated range, widened over the
/// tensors whose int8 kernels must share parameters (inputs and outputs of pools, reshapes,
/// pads, transposes, gathers; every input of a concatenation and its output), except the
/// fixed output ranges of SOFTMAX and LOGISTIC (1/256, -128) and TANH (1/128, 0).
fn activation_quantization(
    m: &LiteModel,
    ranges: &[Option<(f32, f32)>],
) -> Vec<Option<Quantization>> {
    let n = m.tensors.len();
    // Union-find over tensors that must share parameters.
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let join = |a: usize, b: usize, parent: &mut Vec<usize>| {
        let (ra, rb) = (root(parent, a), root(parent, b));
        if ra != rb {
            parent[ra] = rb;
        }
    };
    let mut fixed: Vec<Option<Quantization>> = vec![None; n];
    for op in &m.ops {
        let out = op.outputs[0] as usize;
        if joins(&op.op) {
            for &i in joined_inputs(op) {
                join(i as usize, out, &mut parent);
            }
        }
        if let Some(q) = fixed_output(&op.op) {
            fixed[out] = Some(q);
        }
    }
    let quantized = |t: &LiteTensor| t.dtype == ElementType::F32;
    let mut group_range: Vec<Option<(f32, f32)>> = vec![None; n];
    let mut group_fixed: Vec<Option<Quantization>> = vec![None; n];
    for i in 0..n {
        if !quantized(&m.tensors[i]) {
            continue;
        }
        let r = root(&mut parent, i);
        let own = if m.tensors[i].data.is_some() {
            const_range(&m.tensors[i])
        } else {
            ranges[i]
        };
        if let Some((lo, hi)) = own {
            group_range[r] = Some(match group_range[r] {
                Some((a, b)) => (a.min(lo), b.max(hi)),
                None => (lo, hi),
            });
        }
        if fixed[i].is_some() {
            group_fixed[r] = fixed[i].clone();
        }
    }
    (0..n)
        .map(|i| {
            let t = &m.tensors[i];
            if !quantized(t) || t.data.is_some() {
                return None;
            }
            let r = root(&mut parent, i);
            Some(group_fixed[r].clone().unwrap_or_else(|| {
                let (lo, hi) = group_range[r].unwrap_or((0.0, 0.0));
                activation_params(lo, hi)
            }))
        })
        .collect()
}

/// The range of a float constant's values, widened to contain 0.
fn const_range(t: &LiteTensor) -> Option<(f32, f32)> {
    let v = t.f32_values()?;
    let lo = v.iter().copied().fold(0f32, f32::min);
    let hi = v.iter().copied().fold(0f32, f32::max);
    Some((lo, hi))
}

/// Per-tensor parameters of a float constant from its own range.
fn float_const_params(t: &LiteTensor) -> Option<Quantization> {
    const_range(t).map(|(lo, hi)| activation_params(lo, hi))
}

/// Runs the float model on every sample and records each activation's (min, max).
fn calibrate(model: &LiteModel, samples: &[Vec<Tensor>]) -> Result<Vec<Option<(f32, f32)>>> {
    let interp = Interpreter::new(model.clone())?;
    let mut ranges: Vec<Option<(f32, f32)>> = vec![None; model.tensors.len()];
    for s in samples {
        let vals = interp.run_all(s)?;
        for (i, v) in vals.iter().enumerate() {
            let (Some(v), true) = (v, model.tensors[i].data.is_none()) else {
                continue;
            };
            if !v.dtype().is_float() || v.numel() == 0 {
                continue;
            }
            let d = v.cast(ferroflow_core::DType::F32)?.to_vec::<f32>()?;
            let lo = d.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = d.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            ranges[i] = Some(match ranges[i] {
                Some((a, b)) => (a.min(lo), b.max(hi)),
                None => (lo, hi),
            });
        }
    }
    Ok(ranges)
}

/// Float inputs and outputs around an int8 model: each int8 input gets a float twin and a
/// QUANTIZE op, each int8 output a DEQUANTIZE op into a float twin (which keep the names).
fn add_float_edges(m: &mut LiteModel) {
    let mut head = Vec::new();
    for k in 0..m.inputs.len() {
        if let Some((f, q)) = float_twin(m, m.inputs[k]) {
            head.push(LiteOp {
                op: Op::Quantize,
                inputs: vec![f as i32],
                outputs: vec![q as i32],
            });
            m.inputs[k] = f;
        }
    }
    m.ops.splice(0..0, head);
    for k in 0..m.outputs.len() {
        if let Some((f, q)) = float_twin(m, m.outputs[k]) {
            m.ops.push(LiteOp {
                op: Op::Dequantize,
                inputs: vec![q as i32],
                outputs: vec![f as i32],
            });
            m.outputs[k] = f;
        }
    }
}

/// A float copy of int8 tensor `q` that takes over its name: (float tensor, `q`).
fn float_twin(m: &mut LiteModel, q: usize) -> Option<(usize, usize)> {
    if m.tensors[q].dtype != ElementType::I8 {
        return None;
    }
    let float = LiteTensor {
        dtype: ElementType::F32,
        quant: None,
        ..m.tensors[q].clone()
    };
    m.tensors[q].name = format!("{}_int8", m.tensors[q].name);
    Some((m.add_tensor(float), q))
}
