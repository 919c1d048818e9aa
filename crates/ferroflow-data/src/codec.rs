//! A compact binary form of [`Element`]s, used by the file cache: a tag per node (tensor,
//! tuple, map), and for tensors a dtype code, the shape and little-endian data.

use crate::Element;
use ferroflow_core::{DType, Error, Result, Tensor};
use std::collections::BTreeMap;

const DTYPES: [DType; 7] = [
    DType::F32,
    DType::F64,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::I8,
    DType::Bool,
];

fn bad(msg: &str) -> Error {
    Error::invalid("element codec", msg.to_string())
}

/// Appends the encoding of `e` to `out`.
pub fn encode(e: &Element, out: &mut Vec<u8>) -> Result<()> {
    match e {
        Element::Tensor(t) => {
            out.push(0);
            let code =
                DTYPES
                    .iter()
                    .position(|d| *d == t.dtype())
                    .ok_or(Error::UnsupportedDType {
                        op: "cache",
                        dtype: t.dtype(),
                    })?;
            out.push(code as u8);
            out.push(t.rank() as u8);
            for &d in t.shape() {
                out.extend((d as u64).to_le_bytes());
            }
            out.extend(t.to_le_bytes());
        }
        Element::Tuple(v) => {
            out.push(1);
            out.extend((v.len() as u32).to_le_bytes());
            for x in v {
                encode(x, out)?;
            }
        }
        Element::Map(m) => {
            out.push(2);
            out.extend((m.len() as u32).to_le_bytes());
            for (k, x) in m {
                out.extend((k.len() as u32).to_le_bytes());
                out.extend(k.as_bytes());
                encode(x, out)?;
            }
        }
    }
    Ok(())
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| bad("truncated element"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn element(&mut self) -> Result<Element> {
        match self.u8()? {
            0 => {
                let dtype = *DTYPES
                    .get(self.u8()? as usize)
                    .ok_or_else(|| bad("unknown dtype code"))?;
                let rank = self.u8()? as usize;
                let shape = (0..rank)
                    .map(|_| self.u64().map(|d| d as usize))
                    .collect::<Result<Vec<_>>>()?;
                let n: usize = shape.iter().product();
                let bytes = self.take(
                    n.checked_mul(dtype.size_in_bytes())
                        .ok_or_else(|| bad("size overflow"))?,
                )?;
                let t = Tensor::from_le_bytes(dtype, &shape, bytes)?;
                Ok(Element::Tensor(t))
            }
            1 => {
                let n = self.u32()? as usize;
                Ok(Element::Tuple(
                    (0..n).map(|_| self.element()).collect::<Result<_>>()?,
                ))
            }
            2 => {
                let n = self.u32()? as usize;
                let mut m = BTreeMap::new();
                for _ in 0..n {
                    let len = self.u32()? as usize;
                    let k = String::from_utf8(self.take(len)?.to_vec())
                        .map_err(|_| bad("key is not UTF-8"))?;
                    m.insert(k, self.element()?);
                }
                Ok(Element::Map(m))
            }
            _ => Err(bad("unknown node tag")),
        }
    }
}

/// Decodes one element encoded by [`encode`].
pub fn decode(data: &[u8]) -> Result<Element> {
    let mut c = Cursor { data, pos: 0 };
    let e = c.element()?;
    if c.pos != data.len() {
        return Err(bad("trailing bytes after the element"));
    }
    Ok(e)
}
