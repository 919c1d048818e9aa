//! `tensorflow.TensorProto` to and from ferroflow tensors, in both of its encodings: the
//! typed `*_val` fields (with TF's rule that fewer values than the shape holds are padded
//! with the last one, and none means zeros) and the `tensor_content` bytes. Strings travel
//! in `string_val`, as TensorFlow's clients write them.

use super::proto::tensorflow::{tensor_shape_proto, DataType, TensorProto, TensorShapeProto};
use crate::error::{Code, ServeError, ServeResult};
use crate::servable::TensorInfo;
use ferroflow_core::{DType, Element, Tensor, TfString};

/// The TF dtype of a ferroflow dtype.
pub fn data_type(d: DType) -> DataType {
    match d {
        DType::F32 => DataType::DtFloat,
        DType::F64 => DataType::DtDouble,
        DType::I32 => DataType::DtInt32,
        DType::I64 => DataType::DtInt64,
        DType::Bool => DataType::DtBool,
        DType::U8 => DataType::DtUint8,
        DType::I8 => DataType::DtInt8,
        DType::F16 => DataType::DtHalf,
        DType::BF16 => DataType::DtBfloat16,
        DType::String => DataType::DtString,
    }
}

/// A signature shape (`None` for any size) as a `TensorShapeProto` (-1 for any size).
pub fn shape_proto(dims: impl IntoIterator<Item = Option<usize>>) -> TensorShapeProto {
    TensorShapeProto {
        dim: dims
            .into_iter()
            .map(|d| tensor_shape_proto::Dim {
                size: d.map_or(-1, |d| d as i64),
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

fn dtype_name(code: i32) -> String {
    DataType::try_from(code)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("dtype {code}"))
}

/// Converts a request's tensor for input `info`: its dtype must be the input's, its
/// shape is checked and its size bounded by `max_bytes` before anything is allocated.
pub fn tensor_from_proto(
    p: &TensorProto,
    info: &TensorInfo,
    max_bytes: usize,
) -> ServeResult<Tensor> {
    let what = format!("input '{}'", info.name);
    let want = data_type(info.dtype);
    if p.dtype != want as i32 {
        return Err(ServeError::invalid(format!(
            "{what} expects {} ({}), got {}",
            want.as_str_name(),
            info.dtype,
            dtype_name(p.dtype)
        )));
    }
    let shape = p
        .tensor_shape
        .as_ref()
        .map(|s| {
            if s.unknown_rank {
                return Err(ServeError::invalid(format!("{what} has an unknown rank")));
            }
            s.dim
                .iter()
                .map(|d| {
                    usize::try_from(d.size).map_err(|_| {
                        ServeError::invalid(format!("{what} has dimension {}", d.size))
                    })
                })
                .collect::<ServeResult<Vec<usize>>>()
        })
        .transpose()?
        .unwrap_or_default();
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|n| n.saturating_mul(info.dtype.size_in_bytes()) <= max_bytes)
        .ok_or_else(|| {
            ServeError::new(
                Code::ResourceExhausted,
                format!("{what} of shape {shape:?} is larger than the request limit of {max_bytes} bytes"),
            )
        })?;
    let t = if info.dtype == DType::String {
        if !p.tensor_content.is_empty() {
            return Err(ServeError::invalid(format!(
                "{what}: strings go in string_val, not tensor_content"
            )));
        }
        let strings = p
            .string_val
            .iter()
            .map(|s| TfString::copy_from_slice(s))
            .collect();
        Tensor::from_vec::<TfString>(pad(strings, numel, &what)?, &shape)
    } else if !p.tensor_content.is_empty() {
        let need = numel * info.dtype.size_in_bytes();
        if p.tensor_content.len() != need {
            return Err(ServeError::invalid(format!(
                "{what}: tensor_content holds {} bytes, shape {shape:?} of {} needs {need}",
                p.tensor_content.len(),
                info.dtype
            )));
        }
        Tensor::from_le_bytes(info.dtype, &shape, &p.tensor_content)
    } else {
        match info.dtype {
            DType::F32 => filled(&p.float_val, numel, &shape, &what),
            DType::F64 => filled(&p.double_val, numel, &shape, &what),
            DType::I64 => filled(&p.int64_val, numel, &shape, &what),
            DType::Bool => filled(&p.bool_val, numel, &shape, &what),
            DType::I32 => filled(&p.int_val, numel, &shape, &what),
            DType::U8 => narrowed::<u8>(&p.int_val, numel, &shape, &what),
            DType::I8 => narrowed::<i8>(&p.int_val, numel, &shape, &what),
            DType::F16 | DType::BF16 => {
                let bits = narrowed_values::<u16>(&p.half_val, &what)?;
                let bytes: Vec<u8> = pad(bits, numel, &what)?
                    .iter()
                    .flat_map(|b| b.to_le_bytes())
                    .collect();
                Tensor::from_le_bytes(info.dtype, &shape, &bytes)
            }
            DType::String => unreachable!("strings are read above"),
        }
    };
    let t = t.map_err(|e| ServeError::invalid(format!("{what}: {}", e.one_line())))?;
    Ok(t)
}

/// TF's filling rule: no values make zeros, fewer values than `n` are padded with the
/// last one, more are an error.
fn pad<T: Clone + Default>(mut v: Vec<T>, n: usize, what: &str) -> ServeResult<Vec<T>> {
    if v.len() > n {
        return Err(ServeError::invalid(format!(
            "{what} has {} values for a shape of {n} elements",
            v.len()
        )));
    }
    let last = v.last().cloned().unwrap_or_default();
    v.resize(n, last);
    Ok(v)
}

fn filled<T: Element + Copy + Default>(
    vals: &[T],
    n: usize,
    shape: &[usize],
    what: &str,
) -> ferroflow_core::Result<Tensor> {
    match pad(vals.to_vec(), n, what) {
        Ok(v) => Tensor::from_vec(v, shape),
        Err(e) => Err(ferroflow_core::Error::invalid("TensorProto", e.message)),
    }
}

/// `int_val` entries as a narrower integer type, each checked to fit.
fn narrowed_values<T: TryFrom<i32>>(vals: &[i32], what: &str) -> ServeResult<Vec<T>> {
    vals.iter()
        .map(|&x| {
            T::try_from(x).map_err(|_| {
                ServeError::invalid(format!("{what}: value {x} is out of range for its dtype"))
            })
        })
        .collect()
}

fn narrowed<T: Element + Copy + Default + TryFrom<i32>>(
    vals: &[i32],
    n: usize,
    shape: &[usize],
    what: &str,
) -> ferroflow_core::Result<Tensor> {
    match narrowed_values::<T>(vals, what).and_then(|v| pad(v, n, what)) {
        Ok(v) => Tensor::from_vec(v, shape),
        Err(e) => Err(ferroflow_core::Error::invalid("TensorProto", e.message)),
    }
}

/// A response tensor: its dtype, shape and little-endian `tensor_content`, as TF
/// Serving writes numeric outputs (strings in `string_val`).
pub fn tensor_to_proto(t: &Tensor) -> TensorProto {
    let strings = t.data::<TfString>().ok();
    TensorProto {
        dtype: data_type(t.dtype()) as i32,
        tensor_shape: Some(shape_proto(t.shape().iter().map(|&d| Some(d)))),
        tensor_content: if strings.is_some() {
            Vec::new()
        } else {
            t.to_le_bytes()
        },
        string_val: strings.map_or_else(Vec::new, |s| s.iter().map(|b| b.to_vec()).collect()),
        ..Default::default()
    }
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

    fn proto(dtype: DataType, shape: &[i64]) -> TensorProto {
        TensorProto {
            dtype: dtype as i32,
            tensor_shape: Some(TensorShapeProto {
                dim: shape
                    .iter()
                    .map(|&size| tensor_shape_proto::Dim {
                        size,
                        name: String::new(),
                    })
                    .collect(),
                unknown_rank: false,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn both_encodings_and_the_fill_rule() {
        let i = info(DType::F32, &[None, Some(2)]);
        let mut p = proto(DataType::DtFloat, &[2, 2]);
        p.float_val = vec![1.0, 2.0, 3.0, 4.0];
        let a = tensor_from_proto(&p, &i, 1 << 20).unwrap();
        let back = tensor_to_proto(&a);
        let b = tensor_from_proto(&back, &i, 1 << 20).unwrap();
        assert_eq!(b.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0]);
        p.float_val = vec![7.0];
        let c = tensor_from_proto(&p, &i, 1 << 20).unwrap();
        assert_eq!(c.to_vec::<f32>().unwrap(), [7.0; 4]);
        p.float_val.clear();
        let z = tensor_from_proto(&p, &i, 1 << 20).unwrap();
        assert_eq!(z.to_vec::<f32>().unwrap(), [0.0; 4]);
        let mut q = proto(DataType::DtUint8, &[3]);
        q.int_val = vec![1, 2, 300];
        let e = tensor_from_proto(&q, &info(DType::U8, &[None]), 1 << 20).unwrap_err();
        assert!(e.message.contains("300 is out of range"), "{}", e.message);
    }

    #[test]
    fn strings_travel_in_string_val() {
        let i = info(DType::String, &[None]);
        let mut p = proto(DataType::DtString, &[3]);
        p.string_val = vec![b"a".to_vec(), vec![0xff]];
        let t = tensor_from_proto(&p, &i, 1 << 20).unwrap();
        let v = t.to_vec::<TfString>().unwrap();
        assert_eq!(v, [&b"a"[..], &[0xff], &[0xff]]);
        let back = tensor_to_proto(&t);
        assert!(back.tensor_content.is_empty());
        assert_eq!(back.string_val, [b"a".to_vec(), vec![0xff], vec![0xff]]);
        p.tensor_content = vec![1, 2];
        assert!(tensor_from_proto(&p, &i, 1 << 20).is_err());
    }

    #[test]
    fn wrong_dtypes_and_huge_shapes_are_refused_before_allocating() {
        let i = info(DType::F32, &[None]);
        let e = tensor_from_proto(&proto(DataType::DtDouble, &[1]), &i, 1 << 20).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        assert!(
            e.message
                .contains("expects DT_FLOAT (float32), got DT_DOUBLE"),
            "{}",
            e.message
        );
        let mut p = proto(DataType::DtFloat, &[1 << 40]);
        p.float_val = vec![1.0];
        let e = tensor_from_proto(&p, &i, 1 << 20).unwrap_err();
        assert_eq!(e.code, Code::ResourceExhausted, "{}", e.message);
        let e = tensor_from_proto(&proto(DataType::DtFloat, &[-3]), &i, 1 << 20).unwrap_err();
        assert!(e.message.contains("dimension -3"), "{}", e.message);
    }
}
