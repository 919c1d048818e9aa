//! Reading and writing NumPy `.npy` files (format versions 1.0 to 3.0, little-endian, C order).

use crate::{DType, Error, Result, Tensor};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

fn descr(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::Bool => "|b1",
        DType::U8 => "|u1",
        DType::I8 => "|i1",
        DType::F16 => "<f2",
        DType::BF16 => return None,
    })
}

fn parse_descr(d: &str) -> Option<DType> {
    Some(match d {
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        "<i4" => DType::I32,
        "<i8" => DType::I64,
        "|b1" => DType::Bool,
        "|u1" | "<u1" => DType::U8,
        "|i1" | "<i1" => DType::I8,
        "<f2" => DType::F16,
        _ => return None,
    })
}

/// Serialises a tensor in `.npy` format (version 1.0; bf16 has no NumPy dtype and is an error).
pub fn to_npy_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let d = descr(t.dtype()).ok_or(Error::UnsupportedDType {
        op: "npy",
        dtype: t.dtype(),
    })?;
    let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{d}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad with spaces so that data starts on a 64-byte boundary; end with a newline.
    let total = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let mut out = Vec::with_capacity(total + 64 + t.numel() * t.dtype().size_in_bytes());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&t.to_le_bytes());
    Ok(out)
}

/// Parses `.npy` bytes; `name` labels errors (a file path, say).
pub fn from_npy_bytes(bytes: &[u8], name: &str) -> Result<Tensor> {
    let bad = |msg: String| Error::Format {
        path: name.to_string(),
        msg,
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy file (bad magic)".into()));
    }
    let (hlen, hstart): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("unsupported .npy version {v}.{}", bytes[7]))),
    };
    let header = bytes
        .get(hstart..hstart.saturating_add(hlen))
        .ok_or_else(|| bad("header is truncated".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text".into()))?;
    let descr = dict_value(header, "descr")
        .ok_or_else(|| bad(format!("no 'descr' in header {header:?}")))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let dtype = parse_descr(descr).ok_or_else(|| {
        bad(format!("unsupported dtype '{descr}' (supported: <f4 <f8 <i4 <i8 |b1 |u1 |i1 <f2, little-endian)"))
    })?;
    match dict_value(header, "fortran_order") {
        Some("False") => {}
        Some("True") => {
            return Err(bad(
                "Fortran-order arrays are not supported; save with C order".into(),
            ))
        }
        _ => return Err(bad("header has no valid 'fortran_order'".into())),
    }
    let shape_str =
        dict_value(header, "shape").ok_or_else(|| bad("no 'shape' in header".into()))?;
    let shape = shape_str
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(format!("bad shape {shape_str}")))
        })
        .collect::<Result<Vec<usize>>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("shape overflows".into()))?;
    let data = &bytes[hstart + hlen..];
    let need = n
        .checked_mul(dtype.size_in_bytes())
        .ok_or_else(|| bad("shape overflows".into()))?;
    if data.len() < need {
        return Err(bad(format!(
            "data is truncated: shape {shape:?} needs {need} bytes, file has {}",
            data.len()
        )));
    }
    Tensor::from_le_bytes(dtype, &shape, &data[..need])
}

/// Finds the raw text of `key`'s value in a Python dict literal header.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Reads a `.npy` file.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let p = path.as_ref();
    let bytes = std::fs::read(p).map_err(|source| Error::Io {
        path: p.display().to_string(),
        source,
    })?;
    from_npy_bytes(&bytes, &p.display().to_string())
}

/// Writes a tensor to a `.npy` file.
pub fn write_npy(path: impl AsRef<Path>, t: &Tensor) -> Result<()> {
    crate::atomic_file::write_atomic(path, &to_npy_bytes(t)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let t = Tensor::from_vec(vec![1.5f32, -2.0, 3.25, 0.0, 5.0, 6.0], &[2, 3]).unwrap();
        let b = to_npy_bytes(&t).unwrap();
        assert_eq!(b.len() % 64, 24, "data must start on a 64-byte boundary");
        let back = from_npy_bytes(&b, "x.npy").unwrap();
        assert_eq!(back.shape(), &[2, 3]);
        assert_eq!(back.to_vec::<f32>().unwrap(), t.to_vec::<f32>().unwrap());
        let s = from_npy_bytes(&to_npy_bytes(&Tensor::scalar(7i64)).unwrap(), "s").unwrap();
        assert_eq!(s.shape(), &[] as &[usize]);
        let e = from_npy_bytes(&b[..b.len() - 1], "x.npy")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.npy: data is truncated"), "{e}");
        let mut be = b.clone();
        let pos = be.windows(3).position(|w| w == b"<f4").unwrap();
        be[pos] = b'>';
        assert!(from_npy_bytes(&be, "x.npy")
            .unwrap_err()
            .to_string()
            .contains("unsupported dtype '>f4'"));
        assert!(from_npy_bytes(b"garbage!!!!", "g").is_err());
        for cut in 0..b.len() {
            let _ = from_npy_bytes(&b[..cut], "cut");
        }
    }
}
