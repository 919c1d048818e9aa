//! Tensors in TF Serving's JSON: nested lists of numbers (with `NaN`, `Infinity` and
//! `-Infinity` allowed for floats, as TF Serving allows), booleans for `DT_BOOL`.

use crate::error::{ServeError, ServeResult};
use crate::servable::{shape_string, TensorInfo};
use ferroflow_core::{DType, Element, Tensor};
use serde_json::Value;
use std::fmt::Write;

/// Parses a request body. Bare `NaN`, `Infinity` and `-Infinity` tokens, which standard
/// JSON lacks but TF Serving accepts, are read as those float values.
pub fn parse_body(body: &[u8]) -> ServeResult<Value> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(first) => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ServeError::invalid("the request body is not UTF-8 text"))?;
            let quoted = quote_non_finite(text).ok_or_else(|| json_error(&first))?;
            serde_json::from_str(&quoted).map_err(|_| json_error(&first))
        }
    }
}

fn json_error(e: &serde_json::Error) -> ServeError {
    ServeError::invalid(format!("JSON Parse error: {e}"))
}

/// The markers non-finite tokens become: strings no client would send as numbers.
const NAN: &str = "\u{0}NaN";
const INF: &str = "\u{0}Infinity";
const NEG_INF: &str = "\u{0}-Infinity";

/// Rewrites bare `NaN`/`Infinity`/`-Infinity` outside strings as marker strings;
/// `None` when there are none (the parse error was something else).
fn quote_non_finite(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut found = false;
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let token = [("NaN", NAN), ("-Infinity", NEG_INF), ("Infinity", INF)]
            .into_iter()
            .find(|(t, _)| rest.starts_with(t));
        if let Some((t, marker)) = token {
            found = true;
            out.push_str(&serde_json::to_string(marker).ok()?);
            rest = &rest[t.len()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    found.then_some(out)
}

/// A JSON leaf as a float: numbers and the non-finite markers.
fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s == NAN => Some(f64::NAN),
        Value::String(s) if s == INF => Some(f64::INFINITY),
        Value::String(s) if s == NEG_INF => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// A JSON leaf as an integer: integral numbers only.
fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        _ => None,
    }
}

/// The dimensions of a nested list, following first elements.
fn nested_shape(v: &Value) -> Vec<usize> {
    let mut shape = Vec::new();
    let mut cur = v;
    while let Value::Array(a) = cur {
        shape.push(a.len());
        match a.first() {
            Some(first) => cur = first,
            None => break,
        }
    }
    shape
}

/// Describes a JSON value for an error message.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(s) if s.starts_with('\u{0}') => "a non-finite number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(o) if o.contains_key("b64") => "a base64 ({\"b64\": ...}) value",
        Value::Object(_) => "an object",
    }
}

/// Converts a nested list (or a scalar) to a tensor of `info`'s dtype, checking that
/// it is rectangular and has `info`'s rank and fixed dimensions. `what` names the value
/// in errors.
pub fn tensor_from_json(v: &Value, info: &TensorInfo, what: &str) -> ServeResult<Tensor> {
    let mut shape = nested_shape(v);
    // An empty list ends the walk early: take the remaining dims from the signature.
    if shape.last() == Some(&0) && shape.len() < info.shape.len() {
        shape.extend(info.shape[shape.len()..].iter().map(|d| d.unwrap_or(0)));
    }
    if shape.len() != info.shape.len() {
        return Err(ServeError::invalid(format!(
            "{what}: expected a tensor of rank {} (shape {}), got a value of rank {} (shape {shape:?})",
            info.shape.len(),
            shape_string(&info.shape),
            shape.len()
        )));
    }
    if let Some((i, _)) = shape
        .iter()
        .zip(&info.shape)
        .enumerate()
        .find(|(_, (&d, w))| w.is_some_and(|w| w != d))
    {
        return Err(ServeError::invalid(format!(
            "{what}: dimension {i} must be {}, got shape {shape:?} (expected {})",
            info.shape[i].unwrap_or(0),
            shape_string(&info.shape)
        )));
    }
    let mut leaves: Vec<&Value> = Vec::with_capacity(shape.iter().product());
    flatten(v, &shape, 0, &mut leaves, what, &mut Vec::new())?;
    let bad = |i: usize, want: &str| {
        ServeError::invalid(format!(
            "{what}: element {i} is {}, but the tensor is {} ({want} expected)",
            kind(leaves[i]),
            info.dtype
        ))
    };
    let t = match info.dtype {
        DType::Bool => {
            let vals = leaves
                .iter()
                .enumerate()
                .map(|(i, l)| l.as_bool().ok_or_else(|| bad(i, "true or false")))
                .collect::<ServeResult<Vec<bool>>>()?;
            Tensor::from_vec(vals, &shape)
        }
        DType::I64 => {
            let vals = leaves
                .iter()
                .enumerate()
                .map(|(i, l)| as_int(l).ok_or_else(|| bad(i, "an integer")))
                .collect::<ServeResult<Vec<i64>>>()?;
            Tensor::from_vec(vals, &shape)
        }
        DType::I32 => ints::<i32>(&leaves, &shape, &bad)?,
        DType::U8 => ints::<u8>(&leaves, &shape, &bad)?,
        DType::I8 => ints::<i8>(&leaves, &shape, &bad)?,
        DType::F64 => {
            let vals = leaves
                .iter()
                .enumerate()
                .map(|(i, l)| as_float(l).ok_or_else(|| bad(i, "a number")))
                .collect::<ServeResult<Vec<f64>>>()?;
            Tensor::from_vec(vals, &shape)
        }
        DType::F32 | DType::F16 | DType::BF16 => {
            let vals = leaves
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    as_float(l)
                        .map(|f| f as f32)
                        .ok_or_else(|| bad(i, "a number"))
                })
                .collect::<ServeResult<Vec<f32>>>()?;
            Tensor::from_vec(vals, &shape).and_then(|t| t.cast(info.dtype))
        }
    };
    t.map_err(|e| ServeError::invalid(format!("{what}: {e}")))
}

/// Integers checked against the range of `T`.
fn ints<T: Element + TryFrom<i64>>(
    leaves: &[&Value],
    shape: &[usize],
    bad: &dyn Fn(usize, &str) -> ServeError,
) -> ServeResult<ferroflow_core::Result<Tensor>> {
    let vals = leaves
        .iter()
        .enumerate()
        .map(|(i, l)| {
            as_int(l)
                .and_then(|x| T::try_from(x).ok())
                .ok_or_else(|| bad(i, "an integer in range"))
        })
        .collect::<ServeResult<Vec<T>>>()?;
    Ok(Tensor::from_vec(vals, shape))
}

/// Collects the leaves of a rectangular nested list of `shape`, naming the first
/// element that breaks it.
fn flatten<'a>(
    v: &'a Value,
    shape: &[usize],
    depth: usize,
    out: &mut Vec<&'a Value>,
    what: &str,
    path: &mut Vec<usize>,
) -> ServeResult<()> {
    if depth == shape.len() {
        if v.is_array() {
            return Err(ServeError::invalid(format!(
                "{what}: element {path:?} is a list, but the tensor has rank {} (the lists are ragged)",
                shape.len()
            )));
        }
        out.push(v);
        return Ok(());
    }
    match v {
        Value::Array(a) if a.len() == shape[depth] => {
            for (i, x) in a.iter().enumerate() {
                path.push(i);
                flatten(x, shape, depth + 1, out, what, path)?;
                path.pop();
            }
            Ok(())
        }
        Value::Array(a) => Err(ServeError::invalid(format!(
            "{what}: the list at {path:?} has {} elements, expected {} (the lists are ragged)",
            a.len(),
            shape[depth]
        ))),
        other => Err(ServeError::invalid(format!(
            "{what}: element {path:?} is {}, expected a list of {} (the lists are ragged)",
            kind(other),
            shape[depth]
        ))),
    }
}

/// Writes a float as TF Serving does: shortest round-trip digits, or `NaN`,
/// `Infinity`, `-Infinity`.
fn write_float<F: ryu::Float>(out: &mut String, x: F, finite: bool, nan: bool, positive: bool) {
    if finite {
        let mut buf = ryu::Buffer::new();
        out.push_str(buf.format_finite(x));
    } else if nan {
        out.push_str("NaN");
    } else if positive {
        out.push_str("Infinity");
    } else {
        out.push_str("-Infinity");
    }
}

/// Element values of a tensor in row-major order, ready to write.
pub enum Values {
    /// f32 (and half floats, widened).
    F32(Vec<f32>),
    /// f64.
    F64(Vec<f64>),
    /// Integers of any width.
    Int(Vec<i64>),
    /// Booleans.
    Bool(Vec<bool>),
}

impl Values {
    /// The tensor's values.
    pub fn of(t: &Tensor) -> ServeResult<Values> {
        let v = match t.dtype() {
            DType::F64 => Values::F64(t.to_vec::<f64>()?),
            DType::Bool => Values::Bool(t.to_vec::<bool>()?),
            DType::F32 | DType::F16 | DType::BF16 => Values::F32(t.cast(DType::F32)?.to_vec()?),
            DType::I32 | DType::I64 | DType::U8 | DType::I8 => {
                Values::Int(t.cast(DType::I64)?.to_vec()?)
            }
        };
        Ok(v)
    }

    fn write(&self, out: &mut String, i: usize) {
        match self {
            Values::F32(v) => {
                let x = v[i];
                write_float(out, x, x.is_finite(), x.is_nan(), x > 0.0)
            }
            Values::F64(v) => {
                let x = v[i];
                write_float(out, x, x.is_finite(), x.is_nan(), x > 0.0)
            }
            Values::Int(v) => {
                let _ = write!(out, "{}", v[i]);
            }
            Values::Bool(v) => out.push_str(if v[i] { "true" } else { "false" }),
        }
    }
}

/// A tensor's values with its shape, writable whole or one batch row at a time.
pub struct JsonTensor {
    shape: Vec<usize>,
    values: Values,
}

impl JsonTensor {
    /// Reads the tensor's values once.
    pub fn new(t: &Tensor) -> ServeResult<Self> {
        Ok(JsonTensor {
            shape: t.shape().to_vec(),
            values: Values::of(t)?,
        })
    }

    /// Rows along the first dimension (1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Writes the whole tensor as nested lists.
    pub fn write_all(&self, out: &mut String) {
        self.write_block(out, &self.shape, 0);
    }

    /// Writes row `r` (the tensor without its first dimension).
    pub fn write_row(&self, out: &mut String, r: usize) {
        if self.shape.is_empty() {
            return self.values.write(out, 0);
        }
        let inner = &self.shape[1..];
        let n: usize = inner.iter().product();
        self.write_block(out, inner, r * n);
    }

    fn write_block(&self, out: &mut String, shape: &[usize], offset: usize) {
        match shape.split_first() {
            None => self.values.write(out, offset),
            Some((&d, rest)) => {
                let stride: usize = rest.iter().product();
                out.push('[');
                for i in 0..d {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_block(out, rest, offset + i * stride);
                }
                out.push(']');
            }
        }
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    out.push_str(&Value::String(s.to_string()).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(dtype: DType, shape: &[Option<usize>]) -> TensorInfo {
        TensorInfo {
            name: "x".into(),
            dtype,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn nested_lists_become_tensors() {
        let v = parse_body(br#"[[1, 2.5], [3, -4e2]]"#).unwrap();
        let t = tensor_from_json(&v, &info(DType::F32, &[None, Some(2)]), "x").unwrap();
        assert_eq!(t.shape(), [2, 2]);
        assert_eq!(t.to_vec::<f32>().unwrap(), [1.0, 2.5, 3.0, -400.0]);
        let v = parse_body(b"[1, 2, 3]").unwrap();
        let t = tensor_from_json(&v, &info(DType::I64, &[None]), "x").unwrap();
        assert_eq!(t.to_vec::<i64>().unwrap(), [1, 2, 3]);
        let t = tensor_from_json(
            &parse_body(b"[]").unwrap(),
            &info(DType::F32, &[None, Some(3)]),
            "x",
        )
        .unwrap();
        assert_eq!(t.shape(), [0, 3]);
    }

    #[test]
    fn non_finite_tokens_are_accepted_outside_strings() {
        let v =
            parse_body(br#"{"s": "NaN Infinity", "x": [NaN, Infinity, -Infinity, 1]}"#).unwrap();
        assert_eq!(v["s"], "NaN Infinity");
        let t = tensor_from_json(&v["x"], &info(DType::F32, &[None]), "x").unwrap();
        let x = t.to_vec::<f32>().unwrap();
        assert!(x[0].is_nan() && x[1] == f32::INFINITY && x[2] == f32::NEG_INFINITY);
        let mut out = String::new();
        JsonTensor::new(&t).unwrap().write_all(&mut out);
        assert_eq!(out, "[NaN,Infinity,-Infinity,1.0]");
        assert!(parse_body(b"{\"x\": [1,]}")
            .unwrap_err()
            .message
            .contains("JSON Parse error"));
    }

    #[test]
    fn bad_values_are_named() {
        let f = info(DType::F32, &[None, Some(2)]);
        let e = |s: &[u8], i: &TensorInfo| {
            tensor_from_json(&parse_body(s).unwrap(), i, "input 'x'")
                .unwrap_err()
                .message
        };
        assert!(
            e(b"[[1, 2], [3]]", &f).contains("ragged"),
            "{}",
            e(b"[[1, 2], [3]]", &f)
        );
        assert!(e(b"[[1, 2], 3]", &f).contains("ragged"));
        assert!(e(b"[[1, 2, 3]]", &f).contains("dimension 1 must be 2"));
        assert!(e(b"[1, 2]", &f).contains("rank 2"));
        assert!(e(b"[[1, \"a\"]]", &f).contains("element 1 is a string"));
        assert!(e(b"[1.5]", &info(DType::I32, &[None])).contains("integer"));
        assert!(e(b"[300]", &info(DType::U8, &[None])).contains("in range"));
        assert!(e(b"[1]", &info(DType::Bool, &[None])).contains("true or false"));
    }

    #[test]
    fn rows_and_whole_tensors_write_as_nested_lists() {
        let t = Tensor::from_vec(vec![1.0f32, 0.1, 2.0, 3.0, 4.0, 5.0], &[2, 3]).unwrap();
        let j = JsonTensor::new(&t).unwrap();
        let mut out = String::new();
        j.write_all(&mut out);
        assert_eq!(out, "[[1.0,0.1,2.0],[3.0,4.0,5.0]]");
        out.clear();
        j.write_row(&mut out, 1);
        assert_eq!(out, "[3.0,4.0,5.0]");
        let b = Tensor::from_vec(vec![true, false], &[2]).unwrap();
        out.clear();
        JsonTensor::new(&b).unwrap().write_row(&mut out, 1);
        assert_eq!(out, "false");
    }
}
