//! Ordering ops: sort, argsort, top_k, and cumulative sums.

use crate::autodiff::record::Recorder;
use crate::dispatch::{with_any, with_numeric};
use crate::shape::{normalize_axis, numel};
use crate::{DType, Element, Error, Numeric, Result, Tensor};
use std::cmp::Ordering;

/// Total order used for sorting: NaN sorts above every number (as in NumPy/TF).
fn total_cmp<T: Element>(a: &T, b: &T) -> Ordering {
    a.partial_cmp(b).unwrap_or_else(|| {
        let (an, bn) = (a.to_f64().is_nan(), b.to_f64().is_nan());
        an.cmp(&bn)
    })
}

impl Tensor {
    /// Stable sort order along `axis` as int32 indices (`tf.argsort`).
    pub fn argsort(&self, axis: isize, descending: bool) -> Result<Tensor> {
        self.sort_impl(axis, descending).map(|(_, i)| i)
    }

    /// Sorted values along `axis` (`tf.sort`).
    pub fn sort(&self, axis: isize, descending: bool) -> Result<Tensor> {
        self.sorted(axis, descending).map(|(v, _)| v)
    }

    /// The `k` largest values along the last axis and their int32 indices, largest first;
    /// ties keep the lower index first (`tf.math.top_k`).
    pub fn top_k(&self, k: usize) -> Result<(Tensor, Tensor)> {
        let last = self
            .rank()
            .checked_sub(1)
            .ok_or_else(|| Error::invalid("top_k", "input must have rank >= 1"))?;
        if k > self.shape()[last] {
            return Err(Error::invalid(
                "top_k",
                format!("k = {k} exceeds the last dimension of {:?}", self.shape()),
            ));
        }
        let (v, i) = self.sorted(-1, true)?;
        let mut size: Vec<isize> = self.shape().iter().map(|&d| d as isize).collect();
        size[last] = k as isize;
        let begin = vec![0; self.rank()];
        Ok((
            v.slice(&begin, &size)?.contiguous(),
            i.slice(&begin, &size)?.contiguous(),
        ))
    }

    /// Sorted values and their order; when a tape records, the values are taken along
    /// the axis by the order so that their gradient scatters back.
    fn sorted(&self, axis: isize, descending: bool) -> Result<(Tensor, Tensor)> {
        let (values, order) = self.sort_impl(axis, descending)?;
        if self.dtype().is_float() && Recorder::new(&[self]).is_some() {
            return Ok((self.take_along_axis(&order, axis)?, order));
        }
        Ok((values, order))
    }

    fn sort_impl(&self, axis: isize, descending: bool) -> Result<(Tensor, Tensor)> {
        let a = normalize_axis("sort", axis, self.rank())?;
        let rank = self.rank();
        // Move the axis last, sort each row, move it back.
        let mut perm: Vec<usize> = (0..rank).filter(|&i| i != a).collect();
        perm.push(a);
        let moved = self.transpose(&perm)?;
        let mut inverse = vec![0; rank];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        let (values, order) = self.sort_rows(&moved, a, descending)?;
        Ok((
            values.transpose(&inverse)?.contiguous(),
            order.transpose(&inverse)?.contiguous(),
        ))
    }

    /// Sorts each row of `moved` (`self` with `axis` moved last): values and order.
    fn sort_rows(&self, moved: &Tensor, a: usize, descending: bool) -> Result<(Tensor, Tensor)> {
        let len = self.shape()[a];
        let (values, order) = with_any!(self.dtype(), "sort", T => {
            let data = moved.contiguous_data::<T>()?;
            let mut order: Vec<i32> = Vec::with_capacity(data.len());
            let mut values: Vec<T> = Vec::with_capacity(data.len());
            if len > 0 {
                for row in data.chunks(len) {
                    let mut idx: Vec<usize> = (0..len).collect();
                    idx.sort_by(|&x, &y| {
                        let o = total_cmp(&row[x], &row[y]);
                        if descending { o.reverse() } else { o }
                    });
                    values.extend(idx.iter().map(|&i| row[i]));
                    order.extend(idx.iter().map(|&i| i as i32));
                }
            }
            (Tensor::from_vec(values, moved.shape())?, Tensor::from_vec(order, moved.shape())?)
        });
        crate::trace::record_many(
            "sort",
            crate::trace::OpKind::Other,
            || format!("axis={a}, descending={descending}"),
            &[moved],
            &[&values, &order],
            move |t| {
                // Replayed on the moved tensor: its last axis is the sorted one.
                let (v, o) = t[0].sort_rows(&t[0], t[0].rank() - 1, descending)?;
                Ok(vec![v, o])
            },
        );
        Ok((values, order))
    }

    /// Cumulative sum along `axis` (`tf.math.cumsum` with `exclusive` and `reverse`).
    pub fn cumsum(&self, axis: isize, exclusive: bool, reverse: bool) -> Result<Tensor> {
        let a = normalize_axis("cumsum", axis, self.rank())?;
        let dt = self.dtype();
        if dt == DType::Bool {
            return Err(Error::UnsupportedDType {
                op: "cumsum",
                dtype: dt,
            });
        }
        self.in_compute_dtype(|x| {
            let y = with_numeric!(x.dtype(), "cumsum", T => cumsum_typed::<T>(x, a, exclusive, reverse))?;
            if let Some(r) = Recorder::new(&[x]) {
                r.finish(&y, move |g, _| Ok(vec![Some(g.cumsum(a as isize, exclusive, !reverse)?)]));
            }
            crate::trace::record_other("cumsum", || format!("axis={a}, exclusive={exclusive}, reverse={reverse}"), &[x], &y, move |t| {
                t[0].cumsum(a as isize, exclusive, reverse)
            });
            Ok(y)
        })
    }
}

fn cumsum_typed<T: Numeric>(
    x: &Tensor,
    a: usize,
    exclusive: bool,
    reverse: bool,
) -> Result<Tensor> {
    let data = x.contiguous_data::<T>()?;
    let (outer, len, inner) = (
        numel(&x.shape()[..a]),
        x.shape()[a],
        numel(&x.shape()[a + 1..]),
    );
    let mut out = crate::alloc::zeroed(data.len());
    for o in 0..outer {
        let mut acc = vec![T::ZERO; inner];
        for step in 0..len {
            let k = if reverse { len - 1 - step } else { step };
            let base = (o * len + k) * inner;
            for j in 0..inner {
                let v = data[base + j];
                if exclusive {
                    out[base + j] = acc[j];
                    acc[j] += v;
                } else {
                    acc[j] += v;
                    out[base + j] = acc[j];
                }
            }
        }
    }
    Tensor::from_vec(out, x.shape())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorting_and_top_k() {
        let x = Tensor::from_vec(vec![3.0f32, 1.0, 2.0, 1.0, 9.0, 0.0], &[2, 3]).unwrap();
        assert_eq!(
            x.sort(-1, false).unwrap().to_vec::<f32>().unwrap(),
            vec![1., 2., 3., 0., 1., 9.]
        );
        assert_eq!(
            x.argsort(0, true).unwrap().to_vec::<i32>().unwrap(),
            vec![0, 1, 0, 1, 0, 1]
        );
        let (v, i) = x.top_k(2).unwrap();
        assert_eq!(v.to_vec::<f32>().unwrap(), vec![3., 2., 9., 1.]);
        assert_eq!(i.to_vec::<i32>().unwrap(), vec![0, 2, 1, 0]);
        assert!(x.top_k(4).is_err());
        let t = Tensor::from_vec(vec![1.0f32, f32::NAN, 0.0], &[3]).unwrap();
        assert_eq!(
            t.argsort(0, false).unwrap().to_vec::<i32>().unwrap(),
            vec![2, 0, 1]
        );
    }

    #[test]
    fn cumsum_variants() {
        let x = Tensor::from_vec(vec![1i32, 2, 3, 4], &[4]).unwrap();
        assert_eq!(
            x.cumsum(0, false, false).unwrap().to_vec::<i32>().unwrap(),
            vec![1, 3, 6, 10]
        );
        assert_eq!(
            x.cumsum(0, true, false).unwrap().to_vec::<i32>().unwrap(),
            vec![0, 1, 3, 6]
        );
        assert_eq!(
            x.cumsum(0, false, true).unwrap().to_vec::<i32>().unwrap(),
            vec![10, 9, 7, 4]
        );
        let m = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        assert_eq!(
            m.cumsum(0, false, false).unwrap().to_vec::<f32>().unwrap(),
            vec![1., 2., 4., 6.]
        );
    }
}
