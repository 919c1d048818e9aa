//! Sparse constant tensors (the schema's `SparsityParameters`, what TF's converter writes
//! for pruned weights with `Optimize.EXPERIMENTAL_SPARSITY`), decoded to dense at read
//! time. The format: the tensor's dimensions, each blocked one (`block_map`) split into a
//! block count and a block size appended after them, are stored in `traversal_order`;
//! each stored dimension is DENSE (every index) or SPARSE_CSR (`array_segments` per parent
//! position, `array_indices` of the present ones), and the buffer holds the values of the
//! positions reached, in that order.
//!
//! Everything is checked before use: the permutation, block sizes against the shape,
//! segments (monotonic, within the indices), indices against their dimension, the value
//! count against the buffer, and the dense size against a limit set by the file's bytes.

use crate::schema as fb;
use ferroflow_core::{Error, Result};

fn bad(msg: impl Into<String>) -> Error {
    Error::Format {
        path: "tflite model".into(),
        msg: msg.into(),
    }
}

/// Dense bytes a sparse tensor may decode to per byte of its stored data and metadata
/// (beyond [`MIN_DENSE_ALLOWANCE`]): pruned weights are rarely sparser than 99 %.
const DENSE_PER_STORED_BYTE: usize = 256;
/// Dense bytes any sparse tensor may decode to.
const MIN_DENSE_ALLOWANCE: usize = 16 << 20;

/// Most stored dimensions a sparse tensor may have (the walk recurses once per dimension).
const MAX_SPARSE_DIMS: usize = 16;

/// One stored dimension.
enum Level {
    Dense(usize),
    Csr {
        segments: Vec<usize>,
        indices: Vec<usize>,
    },
}

fn index_vector(
    kind: fb::SparseIndexVector,
    i32s: Option<fb::Int32Vector<'_>>,
    u16s: Option<fb::Uint16Vector<'_>>,
    u8s: Option<fb::Uint8Vector<'_>>,
) -> Result<Vec<usize>> {
    let out: Option<Vec<usize>> = match kind {
        fb::SparseIndexVector::Int32Vector => i32s.and_then(|v| v.values()).map(|v| {
            v.iter()
                .map(|x| usize::try_from(x).unwrap_or(usize::MAX))
                .collect()
        }),
        fb::SparseIndexVector::Uint16Vector => u16s
            .and_then(|v| v.values())
            .map(|v| v.iter().map(usize::from).collect()),
        fb::SparseIndexVector::Uint8Vector => u8s
            .and_then(|v| v.values())
            .map(|v| v.iter().map(usize::from).collect()),
        _ => None,
    };
    out.ok_or_else(|| bad("a SPARSE_CSR dimension without its segments or indices"))
}

/// The dense little-endian bytes of a sparse tensor of `shape` whose buffer holds `data`
/// (values of `elem` bytes each).
pub(crate) fn densify(
    sp: &fb::SparsityParameters<'_>,
    shape: &[usize],
    elem: usize,
    data: &[u8],
) -> Result<Vec<u8>> {
    let n = shape.len();
    // Negative entries become usize::MAX, which every check below rejects.
    let dims = |v: Option<flatbuffers::Vector<'_, i32>>| -> Vec<usize> {
        v.map(|v| {
            v.iter()
                .map(|x| usize::try_from(x).unwrap_or(usize::MAX))
                .collect()
        })
        .unwrap_or_default()
    };
    let order = dims(sp.traversal_order());
    let block_map = dims(sp.block_map());
    let total = n + block_map.len();
    if total > MAX_SPARSE_DIMS {
        return Err(bad(format!("a sparse tensor of {total} dimensions")));
    }
    let mut seen = vec![false; total];
    if order.len() != total
        || order
            .iter()
            .any(|&d| d >= total || std::mem::replace(&mut seen[d], true))
    {
        return Err(bad(format!(
            "sparse traversal order {order:?} is not a permutation of {total} dimensions"
        )));
    }
    if block_map.iter().any(|&d| d >= n) {
        return Err(bad(format!("sparse block map {block_map:?} for rank {n}")));
    }
    let metas = sp
        .dim_metadata()
        .ok_or_else(|| bad("a sparse tensor without dimension metadata"))?;
    if metas.len() != total {
        return Err(bad(format!(
            "{} sparse dimension metadata for {total} dimensions",
            metas.len()
        )));
    }
    let mut levels = Vec::with_capacity(total);
    let mut stored = data.len();
    for m in metas.iter() {
        levels.push(match m.format() {
            fb::DimensionType::DENSE => Level::Dense(
                usize::try_from(m.dense_size())
                    .map_err(|_| bad(format!("dense size {}", m.dense_size())))?,
            ),
            fb::DimensionType::SPARSE_CSR => {
                let segments = index_vector(
                    m.array_segments_type(),
                    m.array_segments_as_int_32_vector(),
                    m.array_segments_as_uint_16_vector(),
                    m.array_segments_as_uint_8_vector(),
                )?;
                let indices = index_vector(
                    m.array_indices_type(),
                    m.array_indices_as_int_32_vector(),
                    m.array_indices_as_uint_16_vector(),
                    m.array_indices_as_uint_8_vector(),
                )?;
                stored += 4 * (segments.len() + indices.len());
                Level::Csr { segments, indices }
            }
            _ => return Err(bad("unknown sparse dimension type")),
        });
    }
    // The size of each expanded dimension: blocked ones are (count, block size).
    let mut extent: Vec<usize> = shape.to_vec();
    for (b, &d) in block_map.iter().enumerate() {
        let level = order.iter().position(|&o| o == n + b).unwrap_or(0);
        let size = match levels[level] {
            Level::Dense(s) if s > 0 && shape[d].is_multiple_of(s) => s,
            _ => {
                return Err(bad(format!(
                    "block {b} of dimension {d} (size {}) has no dense block size dividing it",
                    shape[d]
                )))
            }
        };
        extent[d] = shape[d] / size;
        extent.push(size);
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("sparse tensor shape {shape:?} overflows")))?;
    let dense_bytes = numel
        .checked_mul(elem)
        .filter(|&b| b <= MIN_DENSE_ALLOWANCE.max(stored.saturating_mul(DENSE_PER_STORED_BYTE)))
        .ok_or_else(|| {
            bad(format!(
                "a sparse tensor of shape {shape:?} would decode to more than {DENSE_PER_STORED_BYTE}x its {stored} stored bytes"
            ))
        })?;
    for (l, level) in levels.iter().enumerate() {
        if let Level::Dense(s) = level {
            if *s != extent[order[l]] {
                return Err(bad(format!(
                    "dense size {s} of sparse dimension {} (size {})",
                    order[l], extent[order[l]]
                )));
            }
        }
    }
    let mut out = vec![0u8; dense_bytes];
    let mut walk = Walk {
        levels: &levels,
        order: &order,
        extent: &extent,
        shape,
        block_map: &block_map,
        elem,
        data,
        out: &mut out,
        index: vec![0; total],
    };
    walk.visit(0, 0)?;
    Ok(out)
}

struct Walk<'a> {
    levels: &'a [Level],
    order: &'a [usize],
    extent: &'a [usize],
    shape: &'a [usize],
    block_map: &'a [usize],
    elem: usize,
    data: &'a [u8],
    out: &'a mut [u8],
    /// The current index of each expanded dimension.
    index: Vec<usize>,
}

impl Walk<'_> {
    /// Visits every stored position below `level`, where `parent` is the position in the
    /// level above (at the leaves: the value's position in the buffer).
    fn visit(&mut self, level: usize, parent: usize) -> Result<()> {
        if level == self.levels.len() {
            return self.store(parent);
        }
        let dim = self.order[level];
        match &self.levels[level] {
            Level::Dense(size) => {
                for i in 0..*size {
                    self.index[dim] = i;
                    self.visit(level + 1, parent * size + i)?;
                }
            }
            Level::Csr { segments, indices } => {
                let (lo, hi) = match (segments.get(parent), segments.get(parent + 1)) {
                    (Some(&lo), Some(&hi)) if lo <= hi && hi <= indices.len() => (lo, hi),
                    _ => {
                        return Err(bad(format!(
                            "sparse segments of dimension {dim} are not monotonic within its {} indices",
                            indices.len()
                        )))
                    }
                };
                for (j, &i) in indices.iter().enumerate().take(hi).skip(lo) {
                    if i >= self.extent[dim] {
                        return Err(bad(format!(
                            "sparse index {i} of dimension {dim} (size {})",
                            self.extent[dim]
                        )));
                    }
                    self.index[dim] = i;
                    self.visit(level + 1, j)?;
                }
            }
        }
        Ok(())
    }

    fn store(&mut self, value: usize) -> Result<()> {
        let n = self.shape.len();
        let mut flat = 0usize;
        for d in 0..n {
            let mut i = self.index[d];
            if let Some(b) = self.block_map.iter().position(|&m| m == d) {
                i = i * self.extent[n + b] + self.index[n + b];
            }
            flat = flat * self.shape[d] + i;
        }
        let src = value
            .checked_mul(self.elem)
            .and_then(|s| self.data.get(s..s + self.elem))
            .ok_or_else(|| {
                bad(format!(
                    "the sparse tensor's buffer holds {} values, fewer than its positions",
                    self.data.len() / self.elem.max(1)
                ))
            })?;
        self.out[flat * self.elem..(flat + 1) * self.elem].copy_from_slice(src);
        Ok(())
    }
}
