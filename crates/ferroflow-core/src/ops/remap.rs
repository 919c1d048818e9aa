//! Ops that pick each output element from a source position per axis: pad and tile
//! (and `reverse`), all built on one per-axis index-map gather.

use crate::autodiff::record::Recorder;
use crate::dispatch::{with_float, with_stored};
use crate::{Error, Numeric, Result, Stored, Tensor};

/// How [`Tensor::pad`] fills the border.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// A constant value.
    Constant(f64),
    /// Mirror without repeating the edge (`REFLECT`).
    Reflect,
    /// Mirror repeating the edge (`SYMMETRIC`).
    Symmetric,
}

/// A fingerprint of a remapping (for telling traced applications apart).
fn maps_hash(maps: &[Vec<Option<usize>>]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    maps.hash(&mut h);
    h.finish()
}

impl Tensor {
    /// Builds the output whose element at index `(i0, i1, ...)` is the source element at
    /// `(maps[0][i0], maps[1][i1], ...)`, or `fill` where any map entry is `None`.
    pub(crate) fn remap_axes(&self, maps: Vec<Vec<Option<usize>>>, fill: f64) -> Result<Tensor> {
        let out = self.remap_axes_kernel(&maps, fill)?;
        if crate::trace::is_tracing() {
            let m = std::sync::Arc::new(maps.clone());
            crate::trace::record(
                "remap_axes",
                crate::trace::OpKind::Remap {
                    maps: m.clone(),
                    fill,
                },
                || format!("maps#{:016x}, fill={fill}", maps_hash(&maps)),
                &[self],
                &out,
                move |t| t[0].remap_axes((*m).clone(), fill),
            );
        }
        if let Some(r) = Recorder::new(&[self]) {
            let from = self.shape().to_vec();
            r.finish(&out, move |g, _| {
                Ok(vec![Some(g.remap_axes_transpose(&maps, &from)?)])
            });
        }
        Ok(out)
    }

    /// The adjoint of [`Tensor::remap_axes`]: adds each element of `self` (shaped like the
    /// remapped output) into the source position it was taken from, in a zero tensor of
    /// shape `from`. Filled positions contribute nothing.
    pub(crate) fn remap_axes_transpose(
        &self,
        maps: &[Vec<Option<usize>>],
        from: &[usize],
    ) -> Result<Tensor> {
        let out = with_float!(self.dtype(), "remap_axes_transpose", T => {
            let src = self.contiguous_data::<T>()?;
            let strides = crate::shape::contiguous_strides(from);
            let mut acc = vec![T::ZERO; crate::shape::numel(from)];
            let rank = maps.len();
            if rank == 0 {
                acc[0] = src[0];
            } else if !src.is_empty() {
                let last = rank - 1;
                let row = maps[last].len();
                let mut idx = vec![0usize; rank];
                for chunk in src.chunks(row.max(1)) {
                    let base: Option<usize> = (0..last)
                        .try_fold(0, |a, d| maps[d][idx[d]].map(|i| a + i * strides[d]));
                    if let Some(b) = base {
                        for (v, m) in chunk.iter().zip(&maps[last]) {
                            if let Some(i) = m {
                                acc[b + i * strides[last]] += *v;
                            }
                        }
                    }
                    for d in (0..last).rev() {
                        idx[d] += 1;
                        if idx[d] < maps[d].len() {
                            break;
                        }
                        idx[d] = 0;
                    }
                }
            }
            Tensor::from_vec(acc, from)?
        });
        if let Some(r) = Recorder::new(&[self]) {
            let maps = maps.to_vec();
            r.finish(&out, move |g, _| {
                Ok(vec![Some(g.remap_axes(maps.clone(), 0.0)?)])
            });
        }
        if crate::trace::is_tracing() {
            let (m, f) = (std::sync::Arc::new(maps.to_vec()), from.to_vec());
            crate::trace::record_other(
                "remap_axes_transpose",
                || format!("maps#{:016x}, from={from:?}", maps_hash(maps)),
                &[self],
                &out,
                move |t| t[0].remap_axes_transpose(&m, &f),
            );
        }
        Ok(out)
    }

    fn remap_axes_kernel(&self, maps: &[Vec<Option<usize>>], fill: f64) -> Result<Tensor> {
        let shape: Vec<usize> = maps.iter().map(Vec::len).collect();
        let strides = self.layout().strides();
        // Pre-multiply each map by the axis stride so the inner loop only adds offsets.
        let offs: Vec<Vec<Option<usize>>> = maps
            .iter()
            .zip(strides)
            .map(|(m, &s)| m.iter().map(|i| i.map(|i| i * s)).collect())
            .collect();
        with_stored!(self.dtype(), T => {
            let buf = self.buffer::<T>()?;
            let fill = T::filled(fill);
            let n = crate::shape::numel(&shape);
            let mut out = Vec::with_capacity(n);
            let rank = shape.len();
            if rank == 0 {
                out.push(buf[self.layout().offset()].clone());
            } else if n > 0 {
                let mut idx = vec![0usize; rank];
                let last = rank - 1;
                loop {
                    let base: Option<usize> = (0..last).try_fold(self.layout().offset(), |acc, d| offs[d][idx[d]].map(|o| acc + o));
                    match base {
                        None => out.extend(std::iter::repeat_n(fill.clone(), shape[last])),
                        Some(b) => out.extend(offs[last].iter().map(|o| o.map_or_else(|| fill.clone(), |o| buf[b + o].clone()))),
                    }
                    let mut d = last;
                    loop {
                        if d == 0 {
                            return Tensor::from_vec(out, &shape);
                        }
                        d -= 1;
                        idx[d] += 1;
                        if idx[d] < shape[d] {
                            break;
                        }
                        idx[d] = 0;
                    }
                }
            }
            Tensor::from_vec(out, &shape)
        })
    }

    /// Pads each axis with `(before, after)` elements (`tf.pad`, modes CONSTANT, REFLECT,
    /// SYMMETRIC).
    pub fn pad(&self, paddings: &[(usize, usize)], mode: PadMode) -> Result<Tensor> {
        if paddings.len() != self.rank() {
            return Err(Error::invalid(
                "pad",
                format!(
                    "{} paddings for a tensor of shape {:?}",
                    paddings.len(),
                    self.shape()
                ),
            ));
        }
        let mut maps = Vec::with_capacity(self.rank());
        for (axis, (&(b, a), &d)) in paddings.iter().zip(self.shape()).enumerate() {
            let limit = match mode {
                PadMode::Constant(_) => usize::MAX,
                PadMode::Reflect => d.saturating_sub(1),
                PadMode::Symmetric => d,
            };
            if b > limit || a > limit {
                return Err(Error::invalid(
                    "pad",
                    format!(
                        "padding ({b}, {a}) too large for axis {axis} of size {d} in {mode:?} mode"
                    ),
                ));
            }
            let map = (0..b + d + a)
                .map(|o| {
                    let i = o as isize - b as isize;
                    let d = d as isize;
                    match mode {
                        PadMode::Constant(_) => (0..d).contains(&i).then_some(i as usize),
                        PadMode::Reflect => Some(
                            (if i < 0 {
                                -i
                            } else if i >= d {
                                2 * d - 2 - i
                            } else {
                                i
                            }) as usize,
                        ),
                        PadMode::Symmetric => Some(
                            (if i < 0 {
                                -i - 1
                            } else if i >= d {
                                2 * d - 1 - i
                            } else {
                                i
                            }) as usize,
                        ),
                    }
                })
                .collect();
            maps.push(map);
        }
        let fill = if let PadMode::Constant(v) = mode {
            v
        } else {
            0.0
        };
        self.remap_axes(maps, fill)
    }

    /// Repeats the tensor `multiples[i]` times along each axis (`tf.tile`).
    pub fn tile(&self, multiples: &[usize]) -> Result<Tensor> {
        if multiples.len() != self.rank() {
            return Err(Error::invalid(
                "tile",
                format!(
                    "multiples {multiples:?} must have one entry per axis of {:?}",
                    self.shape()
                ),
            ));
        }
        let maps = self
            .shape()
            .iter()
            .zip(multiples)
            .map(|(&d, &m)| (0..d * m).map(|o| Some(o % d)).collect())
            .collect();
        self.remap_axes(maps, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_modes_match_tensorflow() {
        let x = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], &[2, 3]).unwrap();
        let c = x.pad(&[(1, 0), (0, 2)], PadMode::Constant(9.0)).unwrap();
        assert_eq!(c.shape(), &[3, 5]);
        assert_eq!(
            c.to_vec::<i32>().unwrap(),
            vec![9, 9, 9, 9, 9, 1, 2, 3, 9, 9, 4, 5, 6, 9, 9]
        );
        let r = x.pad(&[(0, 0), (2, 2)], PadMode::Reflect).unwrap();
        assert_eq!(r.to_vec::<i32>().unwrap()[..7], [3, 2, 1, 2, 3, 2, 1]);
        let s = x.pad(&[(0, 0), (2, 2)], PadMode::Symmetric).unwrap();
        assert_eq!(s.to_vec::<i32>().unwrap()[..7], [2, 1, 1, 2, 3, 3, 2]);
        assert!(x.pad(&[(0, 0), (3, 0)], PadMode::Reflect).is_err());
        let t = x.tile(&[2, 1]).unwrap();
        assert_eq!(
            t.to_vec::<i32>().unwrap(),
            vec![1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6]
        );
    }
}
