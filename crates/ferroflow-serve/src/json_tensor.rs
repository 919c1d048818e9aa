//! Tensors in TF Serving's JSON: nested lists of numbers (with `NaN`, `Infinity` and
//! `-Infinity` allowed for floats, as TF Serving allows), booleans for `DT_BOOL`, strings
//! for `DT_STRING` (binary ones as `{"b64": "..."}`, which is also how outputs whose name
//! ends in `_bytes` are written).

use crate::error::{ServeError, ServeResult};
use crate::json::{Budget, Json};
use crate::servable::{shape_string, TensorInfo};
use base64::Engine;
use ferroflow_core::{DType, Element, Tensor, TfString};
use std::fmt::Write;

/// The dimensions of a nested list, following first elements (a guess that
/// [`tensor_from_json`] then checks element by element; nothing is allocated from it).
fn nested_shape(v: &Json) -> Vec<usize> {
    let mut shape = Vec::new();
    let mut cur = Some(v);
    while let Some(node) = cur {
        cur = None;
        match node {
            Json::List(a) => {
                shape.push(a.len());
                cur = a.first();
            }
            Json::Ints(a) => shape.push(a.len()),
            Json::Floats(a) => shape.push(a.len()),
            _ => {}
        }
    }
    shape
}

/// A leaf of a nested list: a packed number or a value.
#[derive(Clone, Copy)]
enum Leaf<'a> {
    Int(i64),
    Float(f64),
    Value(&'a Json),
}

impl Leaf<'_> {
    fn as_f64(self) -> Option<f64> {
        match self {
            Leaf::Int(i) => Some(i as f64),
            Leaf::Float(f) => Some(f),
            Leaf::Value(v) => v.as_f64(),
        }
    }

    fn as_i64(self) -> Option<i64> {
        match self {
            Leaf::Int(i) => Some(i),
            Leaf::Float(f) => crate::json::float_as_int(f),
            Leaf::Value(v) => v.as_i64(),
        }
    }

    /// A string's bytes: a JSON string, or `{"b64": "..."}` decoded (`Err` names a bad
    /// encoding).
    fn as_bytes(self) -> Option<Result<TfString, String>> {
        match self {
            Leaf::Value(Json::Str(s)) => Some(Ok(TfString::from(s.clone()))),
            Leaf::Value(Json::Object(o)) => match o.as_slice() {
                [(k, Json::Str(s))] if k == "b64" => Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map(TfString::from)
                        .map_err(|e| format!("its \"b64\" value is not base64 ({e})")),
                ),
                _ => None,
            },
            _ => None,
        }
    }

    fn as_bool(self) -> Option<bool> {
        match self {
            Leaf::Value(Json::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Leaf::Int(_) => "a number",
            Leaf::Float(f) if f.is_finite() => "a number",
            Leaf::Float(_) => "a non-finite number",
            Leaf::Value(v) => v.kind(),
        }
    }
}

/// Converts a nested list (or a scalar) to a tensor of `info`'s dtype, checking that
/// it is rectangular and has `info`'s rank and fixed dimensions. `what` names the value
/// in errors; the tensor's bytes are charged to `budget`.
pub fn tensor_from_json(
    v: &Json,
    info: &TensorInfo,
    what: &str,
    budget: &Budget,
) -> ServeResult<Tensor> {
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
    let bad = |i: usize, leaf: Leaf, want: &str| {
        ServeError::invalid(format!(
            "{what}: element {i} is {}, but the tensor is {} ({want} expected)",
            leaf.kind(),
            info.dtype
        ))
    };
    let walk = Walk {
        shape: &shape,
        what,
    };
    let t = match info.dtype {
        DType::Bool => {
            let vals = walk.collect(v, |i, l| {
                l.as_bool().ok_or_else(|| bad(i, l, "true or false"))
            })?;
            Tensor::from_vec(vals, &shape)
        }
        DType::I64 => {
            let vals = walk.collect(v, |i, l| l.as_i64().ok_or_else(|| bad(i, l, "an integer")))?;
            Tensor::from_vec(vals, &shape)
        }
        DType::I32 => ints::<i32>(&walk, v, &bad)?,
        DType::U8 => ints::<u8>(&walk, v, &bad)?,
        DType::I8 => ints::<i8>(&walk, v, &bad)?,
        DType::F64 => {
            let vals = walk.collect(v, |i, l| l.as_f64().ok_or_else(|| bad(i, l, "a number")))?;
            Tensor::from_vec(vals, &shape)
        }
        DType::F32 | DType::F16 | DType::BF16 => {
            let vals = walk.collect(v, |i, l| {
                l.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| bad(i, l, "a number"))
            })?;
            Tensor::from_vec(vals, &shape).and_then(|t| t.cast(info.dtype))
        }
        DType::String => {
            let vals = walk.collect(v, |i, l| match l.as_bytes() {
                Some(Ok(s)) => Ok(s),
                Some(Err(e)) => Err(ServeError::invalid(format!("{what}: element {i}: {e}"))),
                None => Err(bad(i, l, "a string or {\"b64\": ...}")),
            })?;
            Tensor::from_vec::<TfString>(vals, &shape)
        }
    };
    let t = t.map_err(|e| ServeError::invalid(format!("{what}: {e}")))?;
    budget.charge_n(t.numel(), t.dtype().size_in_bytes())?;
    Ok(t)
}

/// Integers checked against the range of `T`.
fn ints<T: Element + TryFrom<i64>>(
    walk: &Walk,
    v: &Json,
    bad: &dyn Fn(usize, Leaf, &str) -> ServeError,
) -> ServeResult<ferroflow_core::Result<Tensor>> {
    let vals = walk.collect(v, |i, l| {
        l.as_i64()
            .and_then(|x| T::try_from(x).ok())
            .ok_or_else(|| bad(i, l, "an integer in range"))
    })?;
    Ok(Tensor::from_vec(vals, walk.shape))
}

/// A walk over the leaves of a nested list of a given shape, naming the first element
/// that breaks the shape (checked while walking, never trusted up front).
struct Walk<'s> {
    shape: &'s [usize],
    what: &'s str,
}

impl Walk<'_> {
    /// Converts every leaf in row-major order with `f(flat index, leaf)`.
    fn collect<T>(
        &self,
        v: &Json,
        mut f: impl FnMut(usize, Leaf) -> ServeResult<T>,
    ) -> ServeResult<Vec<T>> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        self.visit(v, 0, &mut path, &mut |l| {
            let x = f(out.len(), l)?;
            out.push(x);
            Ok(())
        })?;
        Ok(out)
    }

    fn visit(
        &self,
        v: &Json,
        depth: usize,
        path: &mut Vec<usize>,
        f: &mut dyn FnMut(Leaf) -> ServeResult<()>,
    ) -> ServeResult<()> {
        let what = self.what;
        let shape = self.shape;
        if depth == shape.len() {
            if v.is_list() {
                return Err(ServeError::invalid(format!(
                    "{what}: element {path:?} is a list, but the tensor has rank {} (the lists are ragged)",
                    shape.len()
                )));
            }
            return f(Leaf::Value(v));
        }
        let ragged = |len: usize, path: &[usize]| {
            ServeError::invalid(format!(
                "{what}: the list at {path:?} has {len} elements, expected {} (the lists are ragged)",
                shape[depth]
            ))
        };
        match v {
            Json::List(a) if a.len() == shape[depth] => {
                for (i, x) in a.iter().enumerate() {
                    path.push(i);
                    self.visit(x, depth + 1, path, f)?;
                    path.pop();
                }
                Ok(())
            }
            Json::Ints(a) if a.len() == shape[depth] && depth + 1 == shape.len() => {
                a.iter().try_for_each(|&x| f(Leaf::Int(x)))
            }
            Json::Floats(a) if a.len() == shape[depth] && depth + 1 == shape.len() => {
                a.iter().try_for_each(|&x| f(Leaf::Float(x)))
            }
            Json::Ints(_) | Json::Floats(_) if v.list_len() == Some(shape[depth]) => {
                path.push(0);
                Err(ServeError::invalid(format!(
                    "{what}: element {path:?} is a number, expected a list of {} (the lists are ragged)",
                    shape[depth + 1]
                )))
            }
            v if v.is_list() => Err(ragged(v.list_len().unwrap_or(0), path)),
            other => Err(ServeError::invalid(format!(
                "{what}: element {path:?} is {}, expected a list of {} (the lists are ragged)",
                other.kind(),
                shape[depth]
            ))),
        }
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
    /// Strings, as text or (when `b64`) as `{"b64": "..."}`.
    Str {
        /// The elements.
        values: Vec<TfString>,
        /// Whether each is written base64-encoded.
        b64: bool,
    },
}

impl Values {
    /// The tensor's values (strings written as `{"b64": ...}` when `b64`).
    pub fn of(t: &Tensor, b64: bool) -> ServeResult<Values> {
        let v = match t.dtype() {
            DType::String => Values::Str {
                values: t.to_vec::<TfString>()?,
                b64,
            },
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
            Values::Str { values, b64: false } => {
                write_str(out, &String::from_utf8_lossy(&values[i]))
            }
            Values::Str { values, b64: true } => {
                out.push_str("{\"b64\":\"");
                base64::engine::general_purpose::STANDARD.encode_string(&values[i], out);
                out.push_str("\"}");
            }
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
        JsonTensor::named(t, "")
    }

    /// Reads the values of output `name`: strings are written base64-encoded when the
    /// name ends in `_bytes`, as TF Serving does.
    pub fn named(t: &Tensor, name: &str) -> ServeResult<Self> {
        Ok(JsonTensor {
            shape: t.shape().to_vec(),
            values: Values::of(t, name.ends_with("_bytes"))?,
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
    out.push_str(&serde_json::Value::String(s.to_string()).to_string());
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

    fn budget() -> Budget {
        Budget::new(1 << 20)
    }

    fn decode(body: &[u8], i: &TensorInfo) -> ServeResult<Tensor> {
        tensor_from_json(&Json::parse(body, &budget())?, i, "input 'x'", &budget())
    }

    #[test]
    fn nested_lists_become_tensors() {
        let t = decode(
            br#"[[1, 2.5], [3, -4e2]]"#,
            &info(DType::F32, &[None, Some(2)]),
        )
        .unwrap();
        assert_eq!(t.shape(), [2, 2]);
        assert_eq!(t.to_vec::<f32>().unwrap(), [1.0, 2.5, 3.0, -400.0]);
        let t = decode(b"[1, 2, 3]", &info(DType::I64, &[None])).unwrap();
        assert_eq!(t.to_vec::<i64>().unwrap(), [1, 2, 3]);
        let t = decode(b"[9007199254740993]", &info(DType::I64, &[None])).unwrap();
        assert_eq!(t.to_vec::<i64>().unwrap(), [9007199254740993]);
        let t = decode(b"[]", &info(DType::F32, &[None, Some(3)])).unwrap();
        assert_eq!(t.shape(), [0, 3]);
        let t = decode(b"[[true], [false]]", &info(DType::Bool, &[None, Some(1)])).unwrap();
        assert_eq!(t.to_vec::<bool>().unwrap(), [true, false]);
        let t = decode(b"[NaN, -Infinity]", &info(DType::F32, &[None])).unwrap();
        let x = t.to_vec::<f32>().unwrap();
        assert!(x[0].is_nan() && x[1] == f32::NEG_INFINITY);
        let mut out = String::new();
        JsonTensor::new(&t).unwrap().write_all(&mut out);
        assert_eq!(out, "[NaN,-Infinity]");
    }

    #[test]
    fn strings_as_text_and_b64() {
        let i = info(DType::String, &[None]);
        let t = decode(br#"["caf\u00e9", {"b64": "AP8="}, ""]"#, &i).unwrap();
        let v = t.to_vec::<TfString>().unwrap();
        assert_eq!(v[0], "café".as_bytes());
        assert_eq!(v[1], [0u8, 255][..]);
        let mut out = String::new();
        JsonTensor::named(&t, "scores").unwrap().write_all(&mut out);
        assert_eq!(out, "[\"café\",\"\\u0000\u{fffd}\",\"\"]");
        let mut out = String::new();
        JsonTensor::named(&t, "ids_bytes")
            .unwrap()
            .write_all(&mut out);
        assert_eq!(out, r#"[{"b64":"Y2Fmw6k="},{"b64":"AP8="},{"b64":""}]"#);
        let e = decode(br#"[{"b64": "%%"}]"#, &i).unwrap_err().message;
        assert!(e.contains("element 0") && e.contains("not base64"), "{e}");
        let e = decode(b"[1]", &i).unwrap_err().message;
        assert!(e.contains("a string or"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let f = info(DType::F32, &[None, Some(2)]);
        let e = |s: &[u8], i: &TensorInfo| decode(s, i).unwrap_err().message;
        assert!(
            e(b"[[1, 2], [3]]", &f).contains("ragged"),
            "{}",
            e(b"[[1, 2], [3]]", &f)
        );
        assert!(e(b"[[1, 2], 3]", &f).contains("ragged"));
        assert!(e(b"[[1, 2], [[3], 4]]", &f).contains("ragged"));
        assert!(e(b"[[1, 2, 3]]", &f).contains("dimension 1 must be 2"));
        assert!(e(b"[1, 2]", &f).contains("rank 2"));
        assert!(e(b"[[1, \"a\"]]", &f).contains("element 1 is a string"));
        assert!(e(b"[1.5]", &info(DType::I32, &[None])).contains("integer"));
        assert!(e(b"[300]", &info(DType::U8, &[None])).contains("in range"));
        assert!(e(b"[1]", &info(DType::Bool, &[None])).contains("true or false"));
    }

    #[test]
    fn a_shape_guessed_from_first_elements_is_never_allocated() {
        // The first row claims 10^6 columns and 10^6 rows follow it (10^12 elements):
        // the walk finds the second row short before anything of that size exists.
        let mut body = String::from("[[");
        body.push_str(&vec!["0"; 1_000_000].join(","));
        body.push(']');
        body.push_str(&",[]".repeat(1_000_000 - 1));
        body.push(']');
        let budget = Budget::new(body.len() * crate::json::MEMORY_PER_BODY_BYTE);
        let v = Json::parse(body.as_bytes(), &budget).unwrap();
        let e = tensor_from_json(&v, &info(DType::F32, &[None, None]), "x", &budget).unwrap_err();
        assert!(
            e.message
                .contains("the list at [1] has 0 elements, expected 1000000"),
            "{}",
            e.message
        );
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
