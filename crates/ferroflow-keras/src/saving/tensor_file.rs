//! Named tensors to and from safetensors files.

use ferroflow_core::{DType, Error, Result, Tensor};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

fn format_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

fn bytes_of(t: &Tensor) -> Result<(Dtype, Vec<u8>)> {
    macro_rules! le {
        ($ty:ty, $dt:expr) => {
            (
                $dt,
                t.to_vec::<$ty>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            )
        };
    }
    Ok(match t.dtype() {
        DType::F32 => le!(f32, Dtype::F32),
        DType::F64 => le!(f64, Dtype::F64),
        DType::I32 => le!(i32, Dtype::I32),
        DType::I64 => le!(i64, Dtype::I64),
        DType::U8 => le!(u8, Dtype::U8),
        DType::I8 => le!(i8, Dtype::I8),
        d => {
            return Err(Error::UnsupportedDType {
                op: "save_weights",
                dtype: d,
            })
        }
    })
}

/// Writes `tensors` (name, value) and string metadata to a safetensors file.
pub fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let encoded = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), bytes_of(t)?, t.shape().to_vec())))
        .collect::<Result<Vec<_>>>()?;
    let views = encoded
        .iter()
        .map(|(n, (dt, bytes), shape)| {
            TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| format_err(path, e))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes =
        safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| format_err(path, e))?;
    // Write to a temporary file and rename, so a failed save never leaves half a file.
    let tmp = path.with_extension("tmp");
    let io = |e| Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Named tensors in file order.
pub type NamedTensors = Vec<(String, Tensor)>;

/// Reads every tensor and the metadata of a safetensors file.
pub fn read(path: &Path) -> Result<(NamedTensors, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format_err(path, e))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| format_err(path, e))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut out = Vec::new();
    for name in st.names() {
        let v = st.tensor(name).map_err(|e| format_err(path, e))?;
        let shape = v.shape().to_vec();
        let d = v.data();
        macro_rules! from_le {
            ($ty:ty, $n:expr) => {{
                let vals: Vec<$ty> = d
                    .chunks_exact($n)
                    .map(|c| <$ty>::from_le_bytes(c.try_into().expect("chunk size")))
                    .collect();
                Tensor::from_vec(vals, &shape)?
            }};
        }
        let t = match v.dtype() {
            Dtype::F32 => from_le!(f32, 4),
            Dtype::F64 => from_le!(f64, 8),
            Dtype::I32 => from_le!(i32, 4),
            Dtype::I64 => from_le!(i64, 8),
            Dtype::U8 => from_le!(u8, 1),
            Dtype::I8 => from_le!(i8, 1),
            other => {
                return Err(format_err(
                    path,
                    format!("tensor '{name}' has unsupported dtype {other:?}"),
                ))
            }
        };
        out.push((name.to_string(), t));
    }
    // safetensors sorts by name; keep that order (callers match by name).
    Ok((out, metadata))
}
