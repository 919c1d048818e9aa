//! Elementwise text ops on string tensors: case, whitespace, regular expressions, length
//! and joining (`tf.strings.lower`, `regex_replace`, `join`, `reduce_join`, ...).

use crate::shape::{broadcast_shapes, normalize_axis, numel};
use crate::strings::host_op;
use crate::strings::re2::compile;
use crate::{Error, Result, Tensor, TfString};

/// Applies `f` to every element of a string tensor, keeping its shape.
fn map_strings(
    op: &'static str,
    attrs: String,
    t: &Tensor,
    f: impl Fn(&[u8]) -> Result<TfString> + Send + Sync + 'static,
) -> Result<Tensor> {
    host_op(op, attrs, &[t], move |x| {
        let out = x[0]
            .string_data(op)?
            .iter()
            .map(|s| f(s))
            .collect::<Result<Vec<_>>>()?;
        Tensor::from_vec::<TfString>(out, x[0].shape())
    })
}

/// The element as UTF-8 text (`op` names the caller when it is not).
fn utf8<'a>(op: &'static str, s: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(s).map_err(|e| {
        Error::invalid(
            op,
            format!("{} is not UTF-8 text ({e})", crate::strings::bytes_repr(s)),
        )
    })
}

/// ASCII (TensorFlow's default) or, with `unicode`, UTF-8 case mapping of every element.
fn change_case(op: &'static str, t: &Tensor, unicode: bool, upper: bool) -> Result<Tensor> {
    let attrs = if unicode { "encoding=utf-8" } else { "" };
    map_strings(op, attrs.into(), t, move |s| {
        Ok(TfString::from(match (unicode, upper) {
            (false, false) => s.to_ascii_lowercase(),
            (false, true) => s.to_ascii_uppercase(),
            (true, false) => utf8(op, s)?.to_lowercase().into_bytes(),
            (true, true) => utf8(op, s)?.to_uppercase().into_bytes(),
        }))
    })
}

/// `tf.strings.lower`: ASCII letters to lower case, other bytes unchanged (TensorFlow's
/// default, which Keras's `standardize="lower"` uses).
pub fn lower(t: &Tensor) -> Result<Tensor> {
    change_case("lower", t, false, false)
}

/// `tf.strings.lower(encoding="utf-8")`: Unicode lower case; elements must be UTF-8.
pub fn lower_unicode(t: &Tensor) -> Result<Tensor> {
    change_case("lower", t, true, false)
}

/// `tf.strings.upper`: ASCII letters to upper case.
pub fn upper(t: &Tensor) -> Result<Tensor> {
    change_case("upper", t, false, true)
}

/// `tf.strings.upper(encoding="utf-8")`: Unicode upper case; elements must be UTF-8.
pub fn upper_unicode(t: &Tensor) -> Result<Tensor> {
    change_case("upper", t, true, true)
}

/// `tf.strings.strip`: removes leading and trailing ASCII whitespace.
pub fn strip(t: &Tensor) -> Result<Tensor> {
    map_strings("strip", String::new(), t, |s| {
        Ok(TfString::copy_from_slice(s.trim_ascii()))
    })
}

/// An RE2 rewrite string (`\1` names a group, `\\` a backslash) in the `regex` crate's
/// replacement syntax (`${1}`, with `$` escaped as `$$`).
fn rewrite_template(rewrite: &str) -> Result<String> {
    let mut out = String::with_capacity(rewrite.len());
    let mut chars = rewrite.chars();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some(d @ '0'..='9') => out.push_str(&format!("${{{d}}}")),
                Some('\\') => out.push('\\'),
                other => {
                    return Err(Error::invalid(
                        "regex_replace",
                        format!(
                            "rewrite {rewrite:?} has a backslash before {other:?} (use \\\\ or \\0-\\9)"
                        ),
                    ))
                }
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `tf.strings.regex_replace`: replaces matches of `pattern` (RE2 syntax) with `rewrite`
/// (`\1` for a group), every match when `replace_global`, else the first.
pub fn regex_replace(
    t: &Tensor,
    pattern: &str,
    rewrite: &str,
    replace_global: bool,
) -> Result<Tensor> {
    let re = compile("regex_replace", pattern)?;
    let template = rewrite_template(rewrite)?;
    map_strings(
        "regex_replace",
        format!("pattern={pattern:?}, rewrite={rewrite:?}, replace_global={replace_global}"),
        t,
        move |s| {
            let limit = if replace_global { 0 } else { 1 };
            Ok(TfString::from(
                re.replacen(s, limit, template.as_bytes()).into_owned(),
            ))
        },
    )
}

/// `tf.strings.regex_full_match`: whether each whole element matches `pattern`.
pub fn regex_full_match(t: &Tensor, pattern: &str) -> Result<Tensor> {
    let re = compile("regex_full_match", &format!("^(?:{pattern})$"))?;
    host_op(
        "regex_full_match",
        format!("pattern={pattern:?}"),
        &[t],
        move |x| {
            let out: Vec<bool> = x[0]
                .string_data("regex_full_match")?
                .iter()
                .map(|s| re.is_match(s))
                .collect();
            Tensor::from_vec(out, x[0].shape())
        },
    )
}

/// What [`length`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LengthUnit {
    /// Bytes (TensorFlow's default).
    Byte,
    /// UTF-8 code points (elements must be UTF-8).
    Utf8Char,
}

/// `tf.strings.length`: each element's length as int32.
pub fn length(t: &Tensor, unit: LengthUnit) -> Result<Tensor> {
    host_op("length", format!("unit={unit:?}"), &[t], move |x| {
        length_eager(&x[0], unit)
    })
}

fn length_eager(t: &Tensor, unit: LengthUnit) -> Result<Tensor> {
    let out = t
        .string_data("length")?
        .iter()
        .map(|s| {
            let n = match unit {
                LengthUnit::Byte => s.len(),
                LengthUnit::Utf8Char => utf8("length", s)?.chars().count(),
            };
            i32::try_from(n).map_err(|_| Error::invalid("length", format!("{n} exceeds int32")))
        })
        .collect::<Result<Vec<i32>>>()?;
    Tensor::from_vec(out, t.shape())
}

/// `tf.strings.join`: elementwise concatenation of string tensors (broadcast together)
/// with `separator` between the parts.
pub fn join(inputs: &[&Tensor], separator: &str) -> Result<Tensor> {
    let sep = separator.to_string();
    host_op(
        "join",
        format!("separator={separator:?}"),
        inputs,
        move |x| join_eager(&x.iter().collect::<Vec<_>>(), &sep),
    )
}

fn join_eager(inputs: &[&Tensor], separator: &str) -> Result<Tensor> {
    let Some(first) = inputs.first() else {
        return Err(Error::invalid("join", "needs at least one input"));
    };
    let shape = inputs.iter().try_fold(first.shape().to_vec(), |s, t| {
        broadcast_shapes("join", &s, t.shape())
    })?;
    let parts = inputs
        .iter()
        .map(|t| {
            let b = t.broadcast_to(&shape)?;
            Ok(b.string_data("join")?.into_owned())
        })
        .collect::<Result<Vec<_>>>()?;
    let out = (0..numel(&shape))
        .map(|i| {
            let mut s = Vec::new();
            for (k, p) in parts.iter().enumerate() {
                if k > 0 {
                    s.extend_from_slice(separator.as_bytes());
                }
                s.extend_from_slice(&p[i]);
            }
            TfString::from(s)
        })
        .collect();
    Tensor::from_vec::<TfString>(out, &shape)
}

/// `tf.strings.reduce_join`: joins the elements along `axis` (all of them when `None`)
/// with `separator`.
pub fn reduce_join(
    t: &Tensor,
    axis: Option<isize>,
    keepdims: bool,
    separator: &str,
) -> Result<Tensor> {
    let sep = separator.to_string();
    host_op(
        "reduce_join",
        format!("axis={axis:?}, keepdims={keepdims}, separator={separator:?}"),
        &[t],
        move |x| reduce_join_eager(&x[0], axis, keepdims, &sep),
    )
}

fn reduce_join_eager(
    t: &Tensor,
    axis: Option<isize>,
    keepdims: bool,
    separator: &str,
) -> Result<Tensor> {
    let flat;
    let (t, a) = match axis {
        Some(a) => (t, normalize_axis("reduce_join", a, t.rank())?),
        None => {
            flat = t.reshape(&[t.numel() as isize])?;
            (&flat, 0)
        }
    };
    let shape = t.shape();
    let (outer, len, inner) = (numel(&shape[..a]), shape[a], numel(&shape[a + 1..]));
    let data = t.string_data("reduce_join")?;
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let mut s = Vec::new();
            for k in 0..len {
                if k > 0 {
                    s.extend_from_slice(separator.as_bytes());
                }
                s.extend_from_slice(&data[(o * len + k) * inner + i]);
            }
            out.push(TfString::from(s));
        }
    }
    let mut out_shape = shape.to_vec();
    if keepdims {
        out_shape[a] = 1;
    } else {
        out_shape.remove(a);
    }
    if axis.is_none() && keepdims {
        out_shape = vec![1; t.rank().max(1)];
    }
    Tensor::from_vec::<TfString>(out, &out_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Tensor {
        Tensor::from_strings(v, &[v.len()]).unwrap()
    }

    #[test]
    fn case_strip_and_regex_as_tensorflow() {
        let t = s(&["ÀbC", " \t a b \n"]);
        assert_eq!(
            lower(&t).unwrap().to_strings().unwrap(),
            ["Àbc", " \t a b \n"]
        );
        assert_eq!(lower_unicode(&t).unwrap().to_strings().unwrap()[0], "àbc");
        assert_eq!(strip(&t).unwrap().to_strings().unwrap()[1], "a b");
        let r = regex_replace(&s(&["hello world"]), "(o)", "[\\1]", true).unwrap();
        assert_eq!(r.to_strings().unwrap(), ["hell[o] w[o]rld"]);
        let r = regex_replace(&s(&["a$b"]), "\\$", "$$", false).unwrap();
        assert_eq!(r.to_strings().unwrap(), ["a$$b"]);
        assert!(regex_replace(&t, "(", "", true).is_err());
        let m = regex_full_match(&s(&["abc", "abcd"]), "a.c").unwrap();
        assert_eq!(m.to_vec::<bool>().unwrap(), [true, false]);
        assert_eq!(
            length(&t, LengthUnit::Utf8Char)
                .unwrap()
                .to_vec::<i32>()
                .unwrap(),
            [3, 8]
        );
        assert_eq!(
            length(&t, LengthUnit::Byte)
                .unwrap()
                .to_vec::<i32>()
                .unwrap()[0],
            4
        );
    }

    #[test]
    fn joins() {
        let t = Tensor::from_strings(&["a", "b", "c", "d"], &[2, 2]).unwrap();
        let r = reduce_join(&t, Some(1), false, "-").unwrap();
        assert_eq!(r.to_strings().unwrap(), ["a-b", "c-d"]);
        let r = reduce_join(&t, None, false, "-").unwrap();
        assert_eq!(
            (r.shape(), r.to_strings().unwrap()),
            (&[][..], vec!["a-b-c-d".to_string()])
        );
        let r = reduce_join(&t, Some(0), true, "").unwrap();
        assert_eq!(
            (r.shape(), r.to_strings().unwrap()),
            (&[1, 2][..], vec!["ac".into(), "bd".into()])
        );
        let j = join(
            &[&s(&["x", "y"]), &Tensor::from_strings(&["!"], &[]).unwrap()],
            " ",
        )
        .unwrap();
        assert_eq!(j.to_strings().unwrap(), ["x !", "y !"]);
        assert!(lower(&Tensor::scalar(1.0f32)).is_err());
    }
}
