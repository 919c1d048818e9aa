//! Reading and writing NumPy `.npy` files (format versions 1.0 to 3.0, little-endian, C order).
//! String tensors are NumPy's fixed-width strings: unicode (`<U`n, UCS-4) when every element
//! is UTF-8 text, bytes (`|S`n) otherwise.

use crate::{DType, Error, Result, Tensor, TfString};
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
        DType::BF16 | DType::String => return None,
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

/// A string tensor's NumPy dtype and data: `<U`n of UCS-4 code points when every element is
/// UTF-8, `|S`n of bytes otherwise, each element NUL-padded to the longest.
fn fixed_width_strings(t: &Tensor) -> Result<(String, Vec<u8>)> {
    let strings = t.string_data("npy")?;
    let texts: Option<Vec<&str>> = strings
        .iter()
        .map(|s| std::str::from_utf8(s).ok())
        .collect();
    let mut out = Vec::new();
    let descr = match texts {
        Some(texts) => {
            let width = texts
                .iter()
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                .max(1);
            for s in texts {
                let n = s.chars().count();
                s.chars()
                    .for_each(|c| out.extend_from_slice(&(c as u32).to_le_bytes()));
                out.resize(out.len() + 4 * (width - n), 0);
            }
            format!("<U{width}")
        }
        None => {
            let width = strings.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
            for s in strings.iter() {
                out.extend_from_slice(s);
                out.resize(out.len() + width - s.len(), 0);
            }
            format!("|S{width}")
        }
    };
    Ok((descr, out))
}

/// Parses NumPy's fixed-width string dtypes: `<U`n (or `|U`n for n = 0) and `|S`n / `|a`n.
/// Returns whether the elements are UCS-4 and their width in bytes.
fn parse_string_descr(d: &str) -> Option<(bool, usize)> {
    let (unicode, n) = if let Some(n) = d.strip_prefix("<U").or_else(|| d.strip_prefix("|U")) {
        (true, n)
    } else {
        (
            false,
            d.strip_prefix("|S").or_else(|| d.strip_prefix("|a"))?,
        )
    };
    let n: usize = n.parse().ok()?;
    Some((unicode, if unicode { n.checked_mul(4)? } else { n }))
}

/// Decodes `count` fixed-width strings of `width` bytes (NumPy drops trailing NULs).
fn strings_from_fixed_width(
    data: &[u8],
    unicode: bool,
    width: usize,
    shape: &[usize],
    bad: impl Fn(String) -> Error,
) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let cell = &data[i * width..(i + 1) * width];
        if unicode {
            let mut s = String::with_capacity(width / 4);
            for c in cell.chunks_exact(4) {
                let code = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                s.push(char::from_u32(code).ok_or_else(|| {
                    bad(format!(
                        "element {i} holds {code:#x}, not a unicode code point"
                    ))
                })?);
            }
            out.push(TfString::from(s.trim_end_matches('\0').to_string()));
        } else {
            let end = cell.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            out.push(TfString::copy_from_slice(&cell[..end]));
        }
    }
    Tensor::from_vec(out, shape)
}

/// Serialises a tensor in `.npy` format (version 1.0; bf16 has no NumPy dtype and is an error).
pub fn to_npy_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let (d, data) = match descr(t.dtype()) {
        Some(d) => (d.to_string(), t.to_le_bytes()),
        None if t.dtype() == DType::String => fixed_width_strings(t)?,
        None => {
            return Err(Error::UnsupportedDType {
                op: "npy",
                dtype: t.dtype(),
            })
        }
    };
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
    let mut out = Vec::with_capacity(total + 64 + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
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
    let strings = parse_string_descr(descr);
    let dtype = match parse_descr(descr) {
        Some(d) => d,
        None if strings.is_some() => DType::String,
        None => return Err(bad(format!(
            "unsupported dtype '{descr}' (supported: <f4 <f8 <i4 <i8 |b1 |u1 |i1 <f2 <Un |Sn, little-endian)"
        ))),
    };
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
    let width = strings.map_or(dtype.size_in_bytes(), |(_, w)| w);
    if width == 0 && n > 0 {
        // Nothing in the data bounds the element count of a zero-width dtype.
        return Err(bad(format!(
            "zero-width dtype '{descr}' with shape {shape:?}: NumPy writes empty strings as width 1"
        )));
    }
    let need = n
        .checked_mul(width)
        .ok_or_else(|| bad("shape overflows".into()))?;
    if data.len() < need {
        return Err(bad(format!(
            "data is truncated: shape {shape:?} needs {need} bytes, file has {}",
            data.len()
        )));
    }
    match strings {
        Some((unicode, width)) => {
            strings_from_fixed_width(&data[..need], unicode, width, &shape, bad)
        }
        None => Tensor::from_le_bytes(dtype, &shape, &data[..need]),
    }
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

    #[test]
    fn strings_as_numpy_fixed_width() {
        let t = Tensor::from_strings(&["héllo", "", "ab"], &[3, 1]).unwrap();
        let b = to_npy_bytes(&t).unwrap();
        assert!(b.windows(4).any(|w| w == b"<U5'"), "unicode of width 5");
        let back = from_npy_bytes(&b, "s.npy").unwrap();
        assert_eq!(back.shape(), [3, 1]);
        assert_eq!(back.to_strings().unwrap(), ["héllo", "", "ab"]);
        let raw = Tensor::from_vec(
            vec![TfString::from_static(b"\xff\x00a"), TfString::new()],
            &[2],
        )
        .unwrap();
        let b = to_npy_bytes(&raw).unwrap();
        assert!(b.windows(4).any(|w| w == b"|S3'"), "bytes of width 3");
        let back = from_npy_bytes(&b, "b.npy").unwrap();
        assert_eq!(
            back.to_vec::<TfString>().unwrap(),
            raw.to_vec::<TfString>().unwrap()
        );
        // A width that the data cannot hold is refused before anything is allocated.
        let huge = String::from_utf8(b.clone())
            .unwrap_or_default()
            .replace("|S3", "|S9");
        if !huge.is_empty() {
            assert!(from_npy_bytes(huge.as_bytes(), "h.npy").is_err());
        }
        let mut bad = to_npy_bytes(&Tensor::from_strings(&["a"], &[1]).unwrap()).unwrap();
        let n = bad.len();
        bad[n - 2] = 0xd8; // U+D800 is a surrogate, not a code point
        assert!(from_npy_bytes(&bad, "bad.npy")
            .unwrap_err()
            .to_string()
            .contains("not a unicode code point"));
        // A zero-width dtype bounds nothing: a huge shape must be refused, not allocated.
        let mut header =
            b"{'descr': '|S0', 'fortran_order': False, 'shape': (4611686018427387904,), }".to_vec();
        header.resize(118, b' ');
        header.push(b'\n');
        let mut zero = b"\x93NUMPY\x01\x00".to_vec();
        zero.extend_from_slice(&(header.len() as u16).to_le_bytes());
        zero.extend_from_slice(&header);
        let e = from_npy_bytes(&zero, "z.npy").unwrap_err().to_string();
        assert!(e.contains("zero-width dtype '|S0'"), "{e}");
    }
}
