//! A tensor's elements as little-endian bytes and back: the raw layout that `.npy`,
//! safetensors and ferroflow's own file formats store. Strings, which have no fixed
//! width, are each a little-endian u64 length followed by their bytes.

use crate::storage::CpuStorage;
use crate::{DType, Error, Result, Tensor};
use half::{bf16, f16};

fn le<T, const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| f(c.try_into().unwrap_or([0; N])))
        .collect()
}

impl Tensor {
    /// The elements in row-major order as little-endian bytes (bool as one byte 0/1; each
    /// string as its u64 length and its bytes).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let c = self.contiguous();
        let mut out = Vec::with_capacity(c.numel() * c.dtype().size_in_bytes());
        match c.cpu_storage() {
            CpuStorage::Foreign(f) => {
                return Tensor::from_storage(f.to_owned_storage(), c.shape()).to_le_bytes()
            }
            CpuStorage::F32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            CpuStorage::F64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            CpuStorage::I32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            CpuStorage::I64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            CpuStorage::Bool(v) => out.extend(v.iter().map(|&x| x as u8)),
            CpuStorage::U8(v) => out.extend_from_slice(v),
            CpuStorage::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
            CpuStorage::F16(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            CpuStorage::BF16(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            CpuStorage::String(v) => v.iter().for_each(|x| {
                out.extend_from_slice(&(x.len() as u64).to_le_bytes());
                out.extend_from_slice(x);
            }),
        }
        out
    }

    /// A tensor of `dtype` and `shape` from little-endian bytes, which must be exactly
    /// `numel * size_in_bytes` long (for strings: exactly `numel` length-prefixed strings).
    pub fn from_le_bytes(dtype: DType, shape: &[usize], data: &[u8]) -> Result<Tensor> {
        if dtype == DType::String {
            return strings_from_le_bytes(shape, data);
        }
        let need = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.size_in_bytes()));
        if need != Some(data.len()) {
            return Err(Error::invalid(
                "from_le_bytes",
                format!(
                    "{dtype} tensor of shape {shape:?} needs {need:?} bytes, got {}",
                    data.len()
                ),
            ));
        }
        let storage = match dtype {
            DType::F32 => CpuStorage::F32(le(data, f32::from_le_bytes)),
            DType::F64 => CpuStorage::F64(le(data, f64::from_le_bytes)),
            DType::I32 => CpuStorage::I32(le(data, i32::from_le_bytes)),
            DType::I64 => CpuStorage::I64(le(data, i64::from_le_bytes)),
            DType::F16 => CpuStorage::F16(le(data, f16::from_le_bytes)),
            DType::BF16 => CpuStorage::BF16(le(data, bf16::from_le_bytes)),
            DType::Bool => CpuStorage::Bool(data.iter().map(|&b| b != 0).collect()),
            DType::U8 => CpuStorage::U8(data.to_vec()),
            DType::I8 => CpuStorage::I8(data.iter().map(|&b| b as i8).collect()),
            DType::String => unreachable!("strings returned above"),
        };
        Ok(Tensor::from_storage(storage, shape))
    }
}

/// Reads `numel(shape)` length-prefixed strings that fill `data` exactly.
fn strings_from_le_bytes(shape: &[usize], mut data: &[u8]) -> Result<Tensor> {
    let bad = |what: String| {
        Error::invalid(
            "from_le_bytes",
            format!("string tensor of shape {shape:?}: {what}"),
        )
    };
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= data.len() / 8)
        .ok_or_else(|| {
            bad(format!(
                "{} bytes cannot hold its length prefixes",
                data.len()
            ))
        })?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (len, rest) = data.split_at(8);
        let len = u64::from_le_bytes(len.try_into().unwrap_or([0; 8]));
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= rest.len())
            .ok_or_else(|| {
                bad(format!(
                    "string {i} claims {len} bytes, {} remain",
                    rest.len()
                ))
            })?;
        out.push(crate::TfString::copy_from_slice(&rest[..len]));
        data = &rest[len..];
        if i + 1 < n && data.len() < 8 {
            return Err(bad(format!("ends after {} of {n} strings", i + 1)));
        }
    }
    if !data.is_empty() {
        return Err(bad(format!("{} bytes left after {n} strings", data.len())));
    }
    Ok(Tensor::from_storage(CpuStorage::String(out), shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype() {
        let base = Tensor::from_vec(vec![1.5f64, -2.0, 0.0, 7.0, 3.25, -0.5], &[2, 3]).unwrap();
        for dt in [
            DType::F32,
            DType::F64,
            DType::I32,
            DType::I64,
            DType::U8,
            DType::I8,
            DType::Bool,
            DType::F16,
            DType::BF16,
        ] {
            let t = base.abs().unwrap().cast(dt).unwrap();
            let back = Tensor::from_le_bytes(dt, t.shape(), &t.to_le_bytes()).unwrap();
            assert_eq!(back.dtype(), dt);
            assert_eq!(back.to_f64_vec(), t.to_f64_vec());
        }
        // A transposed view is written in row-major order of its own shape.
        let v = base.t().unwrap();
        assert_eq!(
            Tensor::from_le_bytes(DType::F64, v.shape(), &v.to_le_bytes())
                .unwrap()
                .to_f64_vec(),
            v.to_f64_vec()
        );
        assert!(Tensor::from_le_bytes(DType::F32, &[2], &[0u8; 7]).is_err());
    }
}
