//! Strings to numbers and back (`tf.strings.to_number`, `tf.strings.as_string`).

use crate::strings::bytes_repr;
use crate::trace::record_other as record;
use crate::{DType, Error, Result, Tensor, TfString};

/// `tf.strings.to_number`: parses every element as `dtype` (float32, float64, int32 or
/// int64), ignoring surrounding whitespace; `inf` and `nan` parse as floats. An element that
/// is not a number is an error naming it, as TensorFlow's.
pub fn to_number(t: &Tensor, dtype: DType) -> Result<Tensor> {
    let data = t.string_data("to_number")?;
    fn parse_all<T: std::str::FromStr>(raw: &[TfString]) -> Result<Vec<T>> {
        raw.iter()
            .map(|r| {
                std::str::from_utf8(r)
                    .ok()
                    .and_then(|s| s.trim().parse::<T>().ok())
                    .ok_or_else(|| not_a_number(r))
            })
            .collect()
    }
    let out = match dtype {
        DType::F32 => Tensor::from_vec(parse_all::<f32>(&data)?, t.shape()),
        DType::F64 => Tensor::from_vec(parse_all::<f64>(&data)?, t.shape()),
        DType::I32 => Tensor::from_vec(parse_all::<i32>(&data)?, t.shape()),
        DType::I64 => Tensor::from_vec(parse_all::<i64>(&data)?, t.shape()),
        d => {
            return Err(Error::UnsupportedDType {
                op: "to_number",
                dtype: d,
            })
        }
    }?;
    record(
        "to_number",
        || format!("out_type={dtype}"),
        &[t],
        &out,
        move |x| to_number(&x[0], dtype),
    );
    Ok(out)
}

fn not_a_number(s: &[u8]) -> Error {
    Error::invalid(
        "to_number",
        format!(
            "StringToNumberOp could not correctly convert string: {}",
            bytes_repr(s)
        ),
    )
}

/// `tf.strings.as_string`: numbers and booleans as text, as TensorFlow writes them: floats
/// with `precision` decimals (6 when `None`, C's `%f`), `nan` and `inf`; integers in
/// decimal; booleans as `true` / `false`. Strings pass through.
pub fn as_string(t: &Tensor, precision: Option<usize>) -> Result<Tensor> {
    let digits = precision.unwrap_or(6);
    let out: Vec<TfString> = match t.dtype() {
        DType::String => return Ok(t.clone()),
        DType::Bool => t
            .to_vec::<bool>()?
            .iter()
            .map(|&b| TfString::from_static(if b { b"true" } else { b"false" }))
            .collect(),
        d if d.is_float() => t
            .to_f64_vec()
            .into_iter()
            .map(|v| {
                TfString::from(if v.is_nan() {
                    "nan".to_string()
                } else if v.is_infinite() {
                    (if v > 0.0 { "inf" } else { "-inf" }).to_string()
                } else {
                    format!("{v:.digits$}")
                })
            })
            .collect(),
        _ => t
            .cast(DType::I64)?
            .to_vec::<i64>()?
            .iter()
            .map(|v| TfString::from(v.to_string()))
            .collect(),
    };
    let out = Tensor::from_vec::<TfString>(out, t.shape())?;
    record(
        "as_string",
        || format!("precision={digits}"),
        &[t],
        &out,
        move |x| as_string(&x[0], precision),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_and_print_as_tensorflow() {
        let t = Tensor::from_strings(&[" 1.5", "1e3", "inf", "-NaN"], &[4]).unwrap();
        let x = to_number(&t, DType::F32).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(&x[..3], [1.5, 1000.0, f32::INFINITY]);
        assert!(x[3].is_nan());
        let e = to_number(&Tensor::from_strings(&["12a"], &[1]).unwrap(), DType::I32)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("could not correctly convert string: b'12a'"),
            "{e}"
        );
        let i = to_number(
            &Tensor::from_strings(&["+12", "-7"], &[2]).unwrap(),
            DType::I64,
        )
        .unwrap();
        assert_eq!(i.to_vec::<i64>().unwrap(), [12, -7]);
        let f = Tensor::from_vec(vec![1.5f32, f32::NAN, f32::NEG_INFINITY, 1e20], &[4]).unwrap();
        assert_eq!(
            as_string(&f, None).unwrap().to_strings().unwrap(),
            ["1.500000", "nan", "-inf", "100000002004087734272.000000"]
        );
        let b = Tensor::from_vec(vec![true, false], &[2]).unwrap();
        assert_eq!(
            as_string(&b, None).unwrap().to_strings().unwrap(),
            ["true", "false"]
        );
        let n = Tensor::from_vec(vec![-3i32, 40], &[2]).unwrap();
        assert_eq!(
            as_string(&n, Some(2)).unwrap().to_strings().unwrap(),
            ["-3", "40"]
        );
    }
}
