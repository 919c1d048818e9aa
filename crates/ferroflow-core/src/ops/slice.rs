//! Slicing: `slice` (begin/size), `strided_slice` (NumPy-style indexing) and `reverse`.

use crate::autodiff::record::Recorder;
use crate::layout::Layout;
use crate::ops::remap::PadMode;
use crate::shape::normalize_axes;
use crate::{Error, Result, Tensor};

/// One component of a [`Tensor::strided_slice`] index, like a NumPy index expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceArg {
    /// A single position; the axis is removed (`x[3]`, `x[-1]`).
    Index(isize),
    /// `start:stop:step`; `None` means the end in the step's direction (`x[1:]`, `x[::-1]`).
    Range(Option<isize>, Option<isize>, isize),
    /// A new axis of size 1 (`tf.newaxis`).
    NewAxis,
    /// As many full ranges as needed to cover the remaining axes (`...`).
    Ellipsis,
}

/// Shorthand for a full range `:`.
pub const ALL: SliceArg = SliceArg::Range(None, None, 1);

impl Tensor {
    /// Extracts `size` elements from `begin` on each axis (`tf.slice`; a size of -1 takes the
    /// rest of the axis). A view.
    pub fn slice(&self, begin: &[usize], size: &[isize]) -> Result<Tensor> {
        let shape = self.shape();
        if begin.len() != self.rank() || size.len() != self.rank() {
            return Err(Error::invalid(
                "slice",
                format!(
                    "begin {begin:?} and size {size:?} must have rank {} entries",
                    self.rank()
                ),
            ));
        }
        let mut out = Vec::with_capacity(self.rank());
        let mut offset = self.layout().offset();
        for i in 0..self.rank() {
            let s = if size[i] == -1 {
                shape[i].saturating_sub(begin[i])
            } else {
                size[i].max(0) as usize
            };
            if size[i] < -1 || begin[i] + s > shape[i] {
                return Err(Error::invalid(
                    "slice",
                    format!("begin {begin:?} size {size:?} is out of bounds for {shape:?}"),
                ));
            }
            offset += begin[i] * self.layout().strides()[i];
            out.push(s);
        }
        let view = self.with_layout(Layout::new(
            out.clone(),
            self.layout().strides().to_vec(),
            offset,
        ));
        if let Some(r) = Recorder::new(&[self]) {
            let pads: Vec<(usize, usize)> = (0..self.rank())
                .map(|i| (begin[i], shape[i] - begin[i] - out[i]))
                .collect();
            r.finish(&view, move |g, _| {
                Ok(vec![Some(g.pad(&pads, PadMode::Constant(0.0))?)])
            });
        }
        let (b, sz) = (begin.to_vec(), size.to_vec());
        crate::trace::record(
            "slice",
            crate::trace::OpKind::Slice {
                begin: begin.to_vec(),
            },
            || format!("begin={begin:?}, size={size:?}"),
            &[self],
            &view,
            move |t| t[0].slice(&b, &sz),
        );
        Ok(view)
    }

    /// NumPy/TF indexing (`x[1:, ::2, 3]`): a view for positive steps, a copy for negative.
    pub fn strided_slice(&self, args: &[SliceArg]) -> Result<Tensor> {
        let (view, reversed) = self.strided_view(args)?;
        let a = args.to_vec();
        crate::trace::record_other(
            "strided_slice",
            || format!("{args:?}"),
            &[self],
            &view,
            move |t| Ok(t[0].strided_view(&a)?.0),
        );
        if reversed.is_empty() {
            Ok(view)
        } else {
            view.reverse(&reversed.iter().map(|&a| a as isize).collect::<Vec<_>>())
        }
    }

    /// The view part of [`Tensor::strided_slice`] and the axes still to reverse.
    fn strided_view(&self, args: &[SliceArg]) -> Result<(Tensor, Vec<usize>)> {
        let ellipses = args.iter().filter(|a| **a == SliceArg::Ellipsis).count();
        let consuming = args
            .iter()
            .filter(|a| matches!(a, SliceArg::Index(_) | SliceArg::Range(..)))
            .count();
        if ellipses > 1 || consuming > self.rank() {
            return Err(Error::invalid(
                "strided_slice",
                format!("{args:?} does not fit a tensor of shape {:?}", self.shape()),
            ));
        }
        let mut expanded = Vec::with_capacity(self.rank() + args.len());
        for a in args {
            if *a == SliceArg::Ellipsis {
                expanded.extend(std::iter::repeat_n(ALL, self.rank() - consuming));
            } else {
                expanded.push(*a);
            }
        }
        expanded.extend(std::iter::repeat_n(
            ALL,
            self.rank()
                - consuming
                - if ellipses == 1 {
                    self.rank() - consuming
                } else {
                    0
                },
        ));
        let (mut shape, mut strides) = (Vec::new(), Vec::new());
        let mut offset = self.layout().offset() as isize;
        let mut reversed = Vec::new();
        let mut axis = 0;
        // Per input axis, the positions the view picks (for the gradient's scatter).
        let mut maps: Vec<Vec<Option<usize>>> = Vec::with_capacity(self.rank());
        for a in expanded {
            match a {
                SliceArg::NewAxis => {
                    shape.push(1);
                    strides.push(0);
                }
                SliceArg::Ellipsis => unreachable!("expanded above"),
                SliceArg::Index(i) => {
                    let d = self.shape()[axis] as isize;
                    let j = if i < 0 { i + d } else { i };
                    if j < 0 || j >= d {
                        return Err(Error::invalid(
                            "strided_slice",
                            format!(
                                "index {i} is out of bounds for axis {axis} of {:?}",
                                self.shape()
                            ),
                        ));
                    }
                    offset += j * self.layout().strides()[axis] as isize;
                    maps.push(vec![Some(j as usize)]);
                    axis += 1;
                }
                SliceArg::Range(start, stop, step) => {
                    if step == 0 {
                        return Err(Error::invalid("strided_slice", "step cannot be 0"));
                    }
                    let d = self.shape()[axis] as isize;
                    let clampi = |v: isize, lo: isize, hi: isize| {
                        (if v < 0 { v + d } else { v }).clamp(lo, hi)
                    };
                    let (first, count) = if step > 0 {
                        let b = start.map_or(0, |s| clampi(s, 0, d));
                        let e = stop.map_or(d, |s| clampi(s, 0, d));
                        (b, if e > b { (e - b + step - 1) / step } else { 0 })
                    } else {
                        let b = start.map_or(d - 1, |s| clampi(s, -1, d - 1));
                        let e = stop.map_or(-1, |s| clampi(s, -1, d - 1));
                        (
                            b,
                            if b > e {
                                (b - e + (-step) - 1) / (-step)
                            } else {
                                0
                            },
                        )
                    };
                    let s = self.layout().strides()[axis] as isize;
                    if count > 0 {
                        offset += first * s;
                    }
                    if step < 0 && count > 0 {
                        // Walk forwards from the last element picked, then reverse this axis.
                        offset += (count - 1) * step * s;
                        reversed.push(shape.len());
                    }
                    let start = if step < 0 {
                        first + (count - 1) * step
                    } else {
                        first
                    };
                    maps.push(
                        (0..count)
                            .map(|k| Some((start + k * step.abs()) as usize))
                            .collect(),
                    );
                    shape.push(count as usize);
                    strides.push((s * step.abs()) as usize);
                    axis += 1;
                }
            }
        }
        let view = self.with_layout(Layout::new(shape, strides, offset as usize));
        if let Some(r) = Recorder::new(&[self]) {
            let from = self.shape().to_vec();
            let picked: Vec<usize> = maps.iter().map(Vec::len).collect();
            r.finish(&view, move |g, _| {
                Ok(vec![Some(
                    g.reshape_to(&picked)?.remap_axes_transpose(&maps, &from)?,
                )])
            });
        }
        Ok((view, reversed))
    }

    /// Reverses the order of elements along `axes` (`tf.reverse`); a copy.
    pub fn reverse(&self, axes: &[isize]) -> Result<Tensor> {
        let axes = normalize_axes("reverse", axes, self.rank())?;
        let maps = (0..self.rank())
            .map(|i| {
                let d = self.shape()[i];
                if axes.contains(&i) {
                    (0..d).rev().map(Some).collect()
                } else {
                    (0..d).map(Some).collect()
                }
            })
            .collect();
        self.remap_axes(maps, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_style_indexing() {
        let x = Tensor::from_vec((0..12).collect::<Vec<i32>>(), &[3, 4]).unwrap();
        let s = x.slice(&[1, 1], &[2, -1]).unwrap();
        assert_eq!(s.to_vec::<i32>().unwrap(), vec![5, 6, 7, 9, 10, 11]);
        assert!(x.slice(&[2, 0], &[2, 1]).is_err());
        let r = x
            .strided_slice(&[SliceArg::Range(None, None, -1), SliceArg::Index(-1)])
            .unwrap();
        assert_eq!(r.to_vec::<i32>().unwrap(), vec![11, 7, 3]);
        let e = x
            .strided_slice(&[SliceArg::Ellipsis, SliceArg::Range(Some(1), None, 2)])
            .unwrap();
        assert_eq!(e.shape(), &[3, 2]);
        assert_eq!(e.to_vec::<i32>().unwrap(), vec![1, 3, 5, 7, 9, 11]);
        let n = x
            .strided_slice(&[SliceArg::NewAxis, SliceArg::Index(0)])
            .unwrap();
        assert_eq!(n.shape(), &[1, 4]);
        let b = x
            .strided_slice(&[
                SliceArg::Range(Some(2), Some(0), -1),
                SliceArg::Range(Some(-2), None, 1),
            ])
            .unwrap();
        assert_eq!(b.to_vec::<i32>().unwrap(), vec![10, 11, 6, 7]);
        assert!(x.strided_slice(&[SliceArg::Index(3)]).is_err());
        assert!(x.strided_slice(&[SliceArg::Range(None, None, 0)]).is_err());
        assert_eq!(
            x.reverse(&[1]).unwrap().to_vec::<i32>().unwrap()[..4],
            [3, 2, 1, 0]
        );
    }
}
