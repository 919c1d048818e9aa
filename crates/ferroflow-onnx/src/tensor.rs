//! Tensors and dtypes between ferroflow and ONNX's `TensorProto`.

use crate::proto::tensor_proto::DataType;
use crate::proto::TensorProto;
use ferroflow_core::{DType, Error, Result, Tensor};

/// ONNX's element type for a dtype.
pub fn onnx_dtype(dtype: DType) -> DataType {
    match dtype {
        DType::F32 => DataType::Float,
        DType::F64 => DataType::Double,
        DType::I32 => DataType::Int32,
        DType::I64 => DataType::Int64,
        DType::Bool => DataType::Bool,
        DType::U8 => DataType::Uint8,
        DType::I8 => DataType::Int8,
        DType::F16 => DataType::Float16,
        DType::BF16 => DataType::Bfloat16,
        DType::String => DataType::String,
    }
}

/// The dtype of an ONNX element type, if ferroflow has it.
pub fn ferroflow_dtype(t: DataType) -> Option<DType> {
    Some(match t {
        DataType::Float => DType::F32,
        DataType::Double => DType::F64,
        DataType::Int32 => DType::I32,
        DataType::Int64 => DType::I64,
        DataType::Bool => DType::Bool,
        DataType::Uint8 => DType::U8,
        DataType::Int8 => DType::I8,
        DataType::Float16 => DType::F16,
        DataType::Bfloat16 => DType::BF16,
        DataType::String => DType::String,
        _ => return None,
    })
}

/// The dtype of an element-type code as a file stores it (`elem_type`, `data_type`,
/// Cast's `to`), if ONNX defines the code and ferroflow has the type.
pub fn dtype_of_code(code: i64) -> Option<DType> {
    i32::try_from(code)
        .ok()
        .and_then(|c| DataType::try_from(c).ok())
        .and_then(ferroflow_dtype)
}

/// A named `TensorProto` holding `t` (little-endian `raw_data`, as ONNX stores it; strings
/// in `string_data`, which ONNX requires for them).
pub fn to_proto(name: &str, t: &Tensor) -> TensorProto {
    let strings = t.data::<ferroflow_core::TfString>().ok();
    TensorProto {
        name: Some(name.to_string()),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(onnx_dtype(t.dtype()) as i32),
        raw_data: strings.is_none().then(|| t.to_le_bytes()),
        string_data: strings.map_or_else(Vec::new, |s| s.iter().map(|b| b.to_vec()).collect()),
        ..Default::default()
    }
}

/// An int64 vector initializer (shapes, axes, pads).
pub fn int64s(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: vec![values.len() as i64],
        data_type: Some(DataType::Int64 as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// A scalar initializer of `dtype` holding `v`.
pub fn scalar(name: &str, dtype: DType, v: f64) -> Result<TensorProto> {
    let t = Tensor::scalar(v).cast(dtype)?;
    Ok(to_proto(name, &t))
}

/// Reads a `TensorProto` (raw_data or typed fields) into a tensor.
pub fn from_proto(p: &TensorProto) -> Result<Tensor> {
    let what = || format!("ONNX tensor '{}'", p.name.as_deref().unwrap_or(""));
    let dt = dtype_of_code(p.data_type.unwrap_or(0).into()).ok_or_else(|| {
        Error::invalid(
            "onnx",
            format!(
                "{}: element type {:?} is not supported",
                what(),
                p.data_type
            ),
        )
    })?;
    let shape = p
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::invalid("onnx", format!("{}: negative dims {:?}", what(), p.dims)))?;
    if dt == DType::String {
        return Tensor::from_strings(&p.string_data, &shape).map_err(|e| e.context(what()));
    }
    if let Some(raw) = &p.raw_data {
        return Tensor::from_le_bytes(dt, &shape, raw);
    }
    let t = match dt {
        DType::F32 => Tensor::from_vec(p.float_data.clone(), &shape),
        DType::F64 => Tensor::from_vec(p.double_data.clone(), &shape),
        DType::I64 => Tensor::from_vec(p.int64_data.clone(), &shape),
        DType::I32 => Tensor::from_vec(p.int32_data.clone(), &shape),
        // Narrow types sit one per int32 (float16/bfloat16 as their bit patterns).
        DType::F16 | DType::BF16 => {
            let bytes: Vec<u8> = p
                .int32_data
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect();
            Tensor::from_le_bytes(dt, &shape, &bytes)
        }
        DType::Bool | DType::U8 | DType::I8 => {
            let bytes: Vec<u8> = p.int32_data.iter().map(|&v| v as u8).collect();
            Tensor::from_le_bytes(dt, &shape, &bytes)
        }
        DType::String => unreachable!("strings returned above"),
    };
    t.map_err(|e| e.context(what()))
}
