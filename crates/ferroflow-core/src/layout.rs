//! How a tensor's logical elements map into its buffer: shape, strides and offset.
//!
//! Views (transpose, broadcast, slice, expand) only change the layout; [`for_each_run`]
//! walks any layout in row-major order in runs along the innermost dimension, which is
//! what every strided kernel is built on.

use crate::shape::{contiguous_strides, numel};
use crate::{Error, Result};

/// Shape, strides (in elements) and starting offset of a view into a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// A row-major layout starting at offset 0.
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// A layout from its parts (the caller guarantees they fit the buffer).
    pub(crate) fn new(shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> Self {
        debug_assert_eq!(shape.len(), strides.len());
        Layout {
            shape,
            strides,
            offset,
        }
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The stride of each dimension in elements (0 for broadcast dimensions).
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Index of the first element in the buffer.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Number of logical elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// True when elements are laid out row-major without gaps (offset may be non-zero).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    /// Strides that read this layout as if broadcast to `target` (0 on stretched dims).
    pub fn broadcast_strides(&self, op: &'static str, target: &[usize]) -> Result<Vec<usize>> {
        if target.len() < self.shape.len() {
            return Err(Error::shapes(
                op,
                "cannot broadcast to a lower rank",
                &self.shape,
                target,
            ));
        }
        let lead = target.len() - self.shape.len();
        let mut out = vec![0; target.len()];
        for (i, (&d, &s)) in self.shape.iter().zip(&self.strides).enumerate() {
            let t = target[lead + i];
            out[lead + i] = if d == t {
                s
            } else if d == 1 {
                0
            } else {
                return Err(Error::shapes(
                    op,
                    "shapes cannot be broadcast",
                    &self.shape,
                    target,
                ));
            };
        }
        Ok(out)
    }

    /// The layout broadcast to `target` (a view with zero strides on stretched dims).
    pub fn broadcast_to(&self, op: &'static str, target: &[usize]) -> Result<Layout> {
        Ok(Layout::new(
            target.to_vec(),
            self.broadcast_strides(op, target)?,
            self.offset,
        ))
    }

    /// The layout with dimensions reordered by `perm` (a valid permutation).
    pub(crate) fn permute(&self, perm: &[usize]) -> Layout {
        Layout::new(
            perm.iter().map(|&p| self.shape[p]).collect(),
            perm.iter().map(|&p| self.strides[p]).collect(),
            self.offset,
        )
    }
}

/// Removes unit dimensions and merges neighbours that every operand walks contiguously.
///
/// Returns the collapsed shape and per-operand strides; iteration order is unchanged.
pub(crate) fn collapse<const N: usize>(
    shape: &[usize],
    strides: [&[usize]; N],
) -> (Vec<usize>, [Vec<usize>; N]) {
    let mut out_shape: Vec<usize> = Vec::with_capacity(shape.len());
    let mut out_strides: [Vec<usize>; N] = std::array::from_fn(|_| Vec::with_capacity(shape.len()));
    for (d, &size) in shape.iter().enumerate() {
        if size == 1 {
            continue;
        }
        let mergeable = !out_shape.is_empty()
            && (0..N).all(|k| *out_strides[k].last().unwrap_or(&0) == strides[k][d] * size);
        if mergeable {
            *out_shape.last_mut().unwrap_or(&mut 0) *= size;
            for k in 0..N {
                if let Some(s) = out_strides[k].last_mut() {
                    *s = strides[k][d];
                }
            }
        } else {
            out_shape.push(size);
            for k in 0..N {
                out_strides[k].push(strides[k][d]);
            }
        }
    }
    (out_shape, out_strides)
}

/// Walks logical positions `start..end` of `shape` in row-major order, in runs along the
/// innermost dimension. For each run it calls `f(offsets, position, len)` where `offsets`
/// are the buffer indices of the run's first element for each operand (`base` plus the
/// strided index). Within a run, operand `k` advances by `strides[k][last]`.
pub(crate) fn for_each_run<const N: usize>(
    shape: &[usize],
    strides: &[Vec<usize>; N],
    base: [usize; N],
    start: usize,
    end: usize,
    mut f: impl FnMut([usize; N], usize, usize),
) {
    if start >= end {
        return;
    }
    let nd = shape.len();
    if nd == 0 {
        f(base, 0, 1);
        return;
    }
    let inner = shape[nd - 1];
    let mut idx = vec![0usize; nd];
    let mut rem = start;
    for d in (0..nd).rev() {
        idx[d] = rem % shape[d];
        rem /= shape[d];
    }
    let mut offs = base;
    for (k, off) in offs.iter_mut().enumerate() {
        *off += idx
            .iter()
            .zip(&strides[k])
            .map(|(i, s)| i * s)
            .sum::<usize>();
    }
    let mut pos = start;
    while pos < end {
        let len = (inner - idx[nd - 1]).min(end - pos);
        f(offs, pos, len);
        pos += len;
        if pos >= end {
            break;
        }
        // The run ended at the end of the innermost dimension: carry into outer ones.
        for (k, off) in offs.iter_mut().enumerate() {
            *off -= idx[nd - 1] * strides[k][nd - 1];
        }
        idx[nd - 1] = 0;
        let mut d = nd - 1;
        while d > 0 {
            d -= 1;
            idx[d] += 1;
            for (k, off) in offs.iter_mut().enumerate() {
                *off += strides[k][d];
            }
            if idx[d] < shape[d] {
                break;
            }
            for (k, off) in offs.iter_mut().enumerate() {
                *off -= shape[d] * strides[k][d];
            }
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_a_transposed_view() {
        // A 2x3 buffer read transposed (3x2): strides [1, 3].
        let shape = [3, 2];
        let strides = [vec![1, 3]];
        let mut seen = vec![];
        for_each_run(&shape, &strides, [0], 0, 6, |[o], _, len| {
            for i in 0..len {
                seen.push(o + i * 3);
            }
        });
        assert_eq!(seen, vec![0, 3, 1, 4, 2, 5]);
        let mut part = vec![];
        for_each_run(&shape, &strides, [0], 1, 4, |[o], p, len| {
            part.push((o, p, len))
        });
        assert_eq!(part, vec![(3, 1, 1), (1, 2, 2)]);
    }

    #[test]
    fn collapse_merges_contiguous_dims() {
        let (s, [a, b]) = collapse(&[2, 3, 4], [&[12, 4, 1], &[0, 0, 1]]);
        assert_eq!(s, vec![6, 4]);
        assert_eq!(a, vec![4, 1]);
        assert_eq!(b, vec![0, 1]);
        let (s, [a]) = collapse(&[2, 1, 4], [&[4, 4, 1]]);
        assert_eq!((s, a), (vec![8], vec![1]));
    }

    #[test]
    fn contiguity() {
        assert!(Layout::contiguous(&[2, 3]).is_contiguous());
        assert!(!Layout::contiguous(&[2, 3]).permute(&[1, 0]).is_contiguous());
        assert!(Layout::new(vec![1, 3], vec![7, 1], 2).is_contiguous());
    }
}
