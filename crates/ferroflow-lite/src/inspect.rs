//! What a `.tflite` file contains, read straight from the flatbuffer (checked by the
//! flatbuffers verifier) without building the model: so files that ferroflow cannot run
//! are described too, with the reason for each operator it cannot run.

use crate::custom::CustomOps;
use crate::ir::Op;
use crate::read;
use crate::schema as fb;
use ferroflow_core::{Error, Result};
use serde_json::{json, Map, Value};

fn bad(msg: impl Into<String>) -> Error {
    Error::Format {
        path: "tflite model".into(),
        msg: msg.into(),
    }
}

/// Quantisation of one tensor: `per_tensor` or `per_channel` (with its axis), the scales
/// and zero points (the first 8 of a per-channel list, and their number).
fn quantization_json(q: &fb::QuantizationParameters<'_>) -> Value {
    let scale: Vec<f32> = q.scale().map(|s| s.iter().collect()).unwrap_or_default();
    if scale.is_empty() {
        return Value::Null;
    }
    let zero: Vec<i64> = q
        .zero_point()
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    let kind = if scale.len() > 1 {
        "per_channel"
    } else {
        "per_tensor"
    };
    let mut m = Map::new();
    m.insert("kind".into(), json!(kind));
    if scale.len() > 1 {
        m.insert("axis".into(), json!(q.quantized_dimension()));
        m.insert("channels".into(), json!(scale.len()));
    }
    m.insert(
        "scale".into(),
        json!(scale.iter().take(8).collect::<Vec<_>>()),
    );
    m.insert(
        "zero_point".into(),
        json!(zero.iter().take(8).collect::<Vec<_>>()),
    );
    Value::Object(m)
}

/// A tensor's shape with dynamic dimensions (`shape_signature` -1) as `null`.
fn shape_json(t: &fb::Tensor<'_>) -> Value {
    let shape: Vec<i32> = t.shape().map(|s| s.iter().collect()).unwrap_or_default();
    let sig: Vec<i32> = t
        .shape_signature()
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    Value::Array(
        shape
            .iter()
            .enumerate()
            .map(|(d, &v)| match sig.get(d) {
                Some(&-1) => Value::Null,
                _ => json!(v),
            })
            .collect(),
    )
}

fn type_name(t: fb::TensorType) -> String {
    t.variant_name().unwrap_or("UNKNOWN").to_string()
}

/// Describes `.tflite` bytes as JSON: `format`, `format_version`, `description`,
/// `subgraphs` (how many), `signature_keys`, `inputs` / `outputs` of the main subgraph
/// (name, dtype, shape with `null` for dynamic dimensions, quantization); over every
/// subgraph: `operators` (how many), `ops` (one entry per operator kind and version: `op`,
/// `version`, `count`, `supported`, and `reason` when ferroflow cannot run it),
/// `unsupported_ops`, `unsupported_tensor_types` (element types ferroflow cannot read),
/// `parameters` (constant tensors: `count` of values, `bytes`,
/// `tensors`), `tensor_types` (tensors per element type) and `quantization` (how many
/// tensors are quantised per tensor and per channel).
pub fn inspect(bytes: &[u8]) -> Result<Value> {
    let model = read::verified_root(bytes)?;
    let subgraphs = model.subgraphs().ok_or_else(|| bad("no subgraphs"))?;
    if subgraphs.is_empty() {
        return Err(bad("no subgraphs"));
    }
    let sg = subgraphs.get(0);
    let tensors = sg.tensors();
    let tensor = |i: i32| {
        tensors
            .filter(|ts| i >= 0 && (i as usize) < ts.len())
            .map(|ts| ts.get(i as usize))
    };
    let io = |list: Option<flatbuffers::Vector<'_, i32>>| -> Value {
        Value::Array(
            list.map(|l| l.iter().collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(|i| match tensor(i) {
                    Some(t) => json!({
                        "name": t.name().unwrap_or_default(),
                        "dtype": type_name(t.type_()),
                        "shape": shape_json(&t),
                        "quantization": t.quantization().map_or(Value::Null, |q| quantization_json(&q)),
                    }),
                    None => json!({"name": format!("tensor {i} (missing)")}),
                })
                .collect(),
        )
    };
    let codes = read::operator_codes(&model);
    // Operator kinds in order of first use, with their counts and whether ferroflow runs them.
    let mut ops: Vec<(String, i32, usize, Option<String>)> = Vec::new();
    // Every subgraph's operators (WHILE conditions and bodies too).
    for o in subgraphs
        .iter()
        .flat_map(|g| g.operators().into_iter().flatten())
    {
        let Some((code, version, custom)) = codes.get(o.opcode_index() as usize) else {
            return Err(bad(format!(
                "an operator uses opcode {} of {}",
                o.opcode_index(),
                codes.len()
            )));
        };
        let name = match (code.variant_name(), custom) {
            (Some("CUSTOM"), Some(c)) => format!("CUSTOM({c})"),
            (Some(n), _) => n.to_string(),
            (None, _) => format!("BUILTIN_{}", code.0),
        };
        let reason = match read::operator(*code, *version, custom.as_deref(), &o) {
            Err(Error::Format { msg, .. }) => Some(msg),
            Err(other) => Some(other.to_string()),
            Ok(Op::Custom { name, .. }) if !CustomOps::is_builtin(&name) => Some(format!(
                "custom op '{name}' has no built-in kernel (an application can register one)"
            )),
            Ok(_) => None,
        };
        match ops
            .iter_mut()
            .find(|(n, v, _, _)| *n == name && v == version)
        {
            Some(entry) => {
                entry.2 += 1;
                if entry.3.is_none() {
                    entry.3 = reason;
                }
            }
            None => ops.push((name, *version, 1, reason)),
        }
    }
    let unsupported: Vec<&str> = ops
        .iter()
        .filter(|o| o.3.is_some())
        .map(|o| o.0.as_str())
        .collect();
    let mut types: Map<String, Value> = Map::new();
    let mut unreadable: Vec<String> = Vec::new();
    let (mut per_tensor, mut per_channel) = (0usize, 0usize);
    let (mut values, mut param_bytes, mut constants) = (0u64, 0u64, 0usize);
    let buffers = model.buffers();
    for t in subgraphs
        .iter()
        .flat_map(|g| g.tensors().into_iter().flatten())
    {
        let name = type_name(t.type_());
        if read::element_type(t.type_()).is_err() && !unreadable.contains(&name) {
            unreadable.push(name.clone());
        }
        let n = types.get(&name).and_then(Value::as_u64).unwrap_or(0);
        types.insert(name, json!(n + 1));
        match t.quantization().and_then(|q| q.scale()).map(|s| s.len()) {
            Some(1) => per_tensor += 1,
            Some(k) if k > 1 => per_channel += 1,
            _ => {}
        }
        let data = buffers
            .filter(|b| t.buffer() > 0 && (t.buffer() as usize) < b.len())
            .and_then(|b| b.get(t.buffer() as usize).data())
            .map_or(0, |d| d.len());
        if data > 0 {
            constants += 1;
            param_bytes += data as u64;
            let numel: u64 = t
                .shape()
                .map(|s| {
                    s.iter()
                        .fold(1u64, |n, d| n.saturating_mul(d.max(0) as u64))
                })
                .unwrap_or(1);
            values = values.saturating_add(numel);
        }
    }
    let signature_keys: Vec<String> = model
        .signature_defs()
        .map(|s| {
            s.iter()
                .filter_map(|d| d.signature_key().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let ops_json: Vec<Value> = ops
        .iter()
        .map(|(name, version, count, reason)| {
            let mut m = Map::new();
            m.insert("op".into(), json!(name));
            m.insert("version".into(), json!(version));
            m.insert("count".into(), json!(count));
            m.insert("supported".into(), json!(reason.is_none()));
            if let Some(r) = reason {
                m.insert("reason".into(), json!(r));
            }
            Value::Object(m)
        })
        .collect();
    Ok(json!({
        "format": "tflite",
        "format_version": model.version(),
        "description": model.description().unwrap_or_default(),
        "subgraphs": subgraphs.len(),
        "signature_keys": signature_keys,
        "inputs": io(sg.inputs()),
        "outputs": io(sg.outputs()),
        "operators": subgraphs.iter().map(|g| g.operators().map_or(0, |o| o.len())).sum::<usize>(),
        "ops": ops_json,
        "unsupported_ops": unsupported,
        "parameters": {"count": values, "bytes": param_bytes, "tensors": constants},
        "tensor_types": types,
        "unsupported_tensor_types": unreadable,
        "quantization": {"per_tensor": per_tensor, "per_channel": per_channel},
    }))
}
