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

/// ferroflow dtypes and their safetensors names.
const DTYPES: [(DType, Dtype); 9] = [
    (DType::F32, Dtype::F32),
    (DType::F64, Dtype::F64),
    (DType::I32, Dtype::I32),
    (DType::I64, Dtype::I64),
    (DType::U8, Dtype::U8),
    (DType::I8, Dtype::I8),
    (DType::Bool, Dtype::BOOL),
    (DType::F16, Dtype::F16),
    (DType::BF16, Dtype::BF16),
];

fn bytes_of(t: &Tensor) -> (Dtype, Vec<u8>) {
    let dt = DTYPES
        .iter()
        .find(|(d, _)| *d == t.dtype())
        .map(|&(_, s)| s)
        .expect("every ferroflow dtype has a safetensors name");
    (dt, t.to_le_bytes())
}

/// Writes `tensors` (name, value) and string metadata to a safetensors file.
pub fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let encoded = tensors
        .iter()
        .map(|(n, t)| (n.clone(), bytes_of(t), t.shape().to_vec()))
        .collect::<Vec<_>>();
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
    // Crash-safe: a failed or interrupted save never leaves half a file.
    ferroflow_core::atomic_file::write_atomic(path, &bytes)
}

/// Named tensors in file order.
pub type NamedTensors = Vec<(String, Tensor)>;

/// Reads every tensor and the metadata of a safetensors file.
pub fn read(path: &Path) -> Result<(NamedTensors, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    from_bytes(&bytes, path)
}

/// [`read`] from the bytes of a file; `path` labels errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<(NamedTensors, HashMap<String, String>)> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format_err(path, e))?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| format_err(path, e))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut out = Vec::new();
    for name in st.names() {
        let v = st.tensor(name).map_err(|e| format_err(path, e))?;
        let dtype = DTYPES
            .iter()
            .find(|(_, s)| *s == v.dtype())
            .map(|&(d, _)| d)
            .ok_or_else(|| {
                format_err(
                    path,
                    format!("tensor '{name}' has unsupported dtype {:?}", v.dtype()),
                )
            })?;
        let t = Tensor::from_le_bytes(dtype, v.shape(), v.data())
            .map_err(|e| format_err(path, format!("tensor '{name}': {e}")))?;
        out.push((name.to_string(), t));
    }
    // safetensors sorts by name; keep that order (callers match by name).
    Ok((out, metadata))
}
