//! String tensors (`tf.strings`): building them, reading them back, printing them as
//! Python does, and the text ops preprocessing needs.

mod convert;
mod hash;
mod ragged;
mod re2;
mod text;

pub use convert::{as_string, to_number};
pub use hash::{to_hash_bucket_fast, to_hash_bucket_strong};
pub use ragged::{split, Ragged};
pub use text::{
    join, length, lower, lower_unicode, reduce_join, regex_full_match, regex_replace, strip, upper,
    upper_unicode, LengthUnit,
};

use crate::ops::compare::CmpOp;
use crate::shape::broadcast_shapes;
use crate::{DType, Error, Result, Tensor, TfString};

/// Runs a string op computed on the host as one op that a tracing `function` records and
/// calls again on each run's inputs ([`crate::trace::opaque`]); `attrs` must tell apart
/// applications that differ (a pattern, a separator) so that none are merged.
fn host_op(
    name: &'static str,
    attrs: String,
    inputs: &[&Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor> + Send + Sync + 'static,
) -> Result<Tensor> {
    let inputs: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
    let mut out = crate::trace::opaque(name, || attrs, &inputs, move |x| Ok(vec![f(x)?]))?;
    Ok(out.remove(0))
}

impl Tensor {
    /// A [`DType::String`] tensor of UTF-8 (or any byte) strings laid out row-major as
    /// `shape`.
    pub fn from_strings<S: AsRef<[u8]>>(values: &[S], shape: &[usize]) -> Result<Tensor> {
        let data = values
            .iter()
            .map(|v| TfString::copy_from_slice(v.as_ref()))
            .collect();
        Tensor::from_vec::<TfString>(data, shape)
    }

    /// The elements of a string tensor in row-major order as text (bytes that are not
    /// UTF-8 are replaced by U+FFFD, as Python's `decode(errors="replace")`).
    pub fn to_strings(&self) -> Result<Vec<String>> {
        Ok(self
            .string_data("to_strings")?
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect())
    }

    /// The elements of a string tensor (`op` names the caller in the dtype error).
    pub(crate) fn string_data(&self, op: &'static str) -> Result<std::borrow::Cow<'_, [TfString]>> {
        if self.dtype() != DType::String {
            return Err(Error::UnsupportedDType {
                op,
                dtype: self.dtype(),
            });
        }
        self.contiguous_data::<TfString>()
    }
}

/// `a == b` or `a != b` of string tensors, with broadcasting (strings have no order in
/// TensorFlow, so the other comparisons are an error).
pub(crate) fn compare(op: CmpOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let equal = match op {
        CmpOp::Equal => true,
        CmpOp::NotEqual => false,
        _ => {
            return Err(Error::UnsupportedDType {
                op: op.name(),
                dtype: DType::String,
            })
        }
    };
    let shape = broadcast_shapes(op.name(), a.shape(), b.shape())?;
    let (x, y) = (a.broadcast_to(&shape)?, b.broadcast_to(&shape)?);
    let (x, y) = (x.string_data(op.name())?, y.string_data(op.name())?);
    let out = x
        .iter()
        .zip(y.iter())
        .map(|(p, q)| (p == q) == equal)
        .collect();
    Tensor::from_vec::<bool>(out, &shape)
}

/// `where(cond, x, y)` of string tensors, with broadcasting.
pub(crate) fn select(cond: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let shape = broadcast_shapes(
        "where",
        &broadcast_shapes("where", cond.shape(), x.shape())?,
        y.shape(),
    )?;
    let c = cond.broadcast_to(&shape)?.to_vec::<bool>()?;
    let (x, y) = (x.broadcast_to(&shape)?, y.broadcast_to(&shape)?);
    let (x, y) = (x.string_data("where")?, y.string_data("where")?);
    let out = c
        .iter()
        .zip(x.iter().zip(y.iter()))
        .map(|(&c, (p, q))| if c { p.clone() } else { q.clone() })
        .collect();
    Tensor::from_vec::<TfString>(out, &shape)
}

/// Python's `repr` of a bytes value: `b'abc'` (`b"it's"` when it holds a single quote and
/// no double one), with `\n`, `\\`, quote and `\xNN` escapes.
pub fn bytes_repr(s: &[u8]) -> String {
    let quote = if s.contains(&b'\'') && !s.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 3);
    out.push('b');
    out.push(quote);
    for &b in s {
        match b {
            b'\\' => out.push_str("\\\\"),
            b if b as char == quote => {
                out.push('\\');
                out.push(quote);
            }
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_print_like_tensorflow() {
        let t = Tensor::from_strings(&["a", "it's", "é"], &[3]).unwrap();
        assert_eq!(t.dtype(), DType::String);
        assert_eq!(t.to_strings().unwrap(), vec!["a", "it's", "é"]);
        assert_eq!(
            t.to_string(),
            "Tensor([b'a' b\"it's\" b'\\xc3\\xa9'], shape=(3,), dtype=string)"
        );
        assert!(Tensor::scalar(1.0f32).to_strings().is_err());
    }
}
