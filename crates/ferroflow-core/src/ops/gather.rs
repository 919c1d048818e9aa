//! Indexed reads and writes: gather, gather_nd, scatter_nd, tensor_scatter_nd_{update,add},
//! one_hot. Out-of-range indices are errors (as on TF's CPU), never out-of-bounds reads.

use crate::autodiff::record::Recorder;
use crate::autodiff::{Gradient, IndexedSlices};
use crate::dispatch::{with_numeric, with_stored};
use crate::shape::{normalize_axis, numel};
use crate::trace::record_other as record;
use crate::{DType, Error, Numeric, Result, Stored, Tensor};

/// Reads an integer index tensor as i64 values.
fn index_values(op: &'static str, indices: &Tensor) -> Result<Vec<i64>> {
    match indices.dtype() {
        DType::I32 | DType::I64 | DType::U8 | DType::I8 => {
            Ok(indices.to_f64_vec().into_iter().map(|v| v as i64).collect())
        }
        d => Err(Error::UnsupportedDType { op, dtype: d }),
    }
}

/// Slices (of `inner` elements) copied per thread from at least this many elements on: a
/// gather from a large table is bound by the latency of its random rows, which two cores
/// overlap twice as much as one.
const GATHER_PAR_MIN: usize = 1 << 16;

/// The `gather` kernel over a contiguous `[outer, dim, inner]` buffer: for each `o` and
/// each index `i` (checked below `dim`), the slice `[o, i, :]`, in that order.
fn gather_slices<T: Stored>(
    src: &[T],
    dim: usize,
    inner: usize,
    outer: usize,
    idx: &[usize],
) -> Vec<T> {
    let slices = outer * idx.len();
    let n = slices * inner;
    let mut out: Vec<T> = crate::alloc::with_capacity(n);
    // Slice `s` (of `outer * idx.len()`) starts `s * inner` into `dst`.
    let copy = |first: usize, dst: &mut [std::mem::MaybeUninit<T>]| {
        for (s, dst) in (first..).zip(dst.chunks_exact_mut(inner.max(1))) {
            let (o, k) = (s / idx.len(), s % idx.len());
            if let Some(&ahead) = idx.get(k + crate::prefetch::ROWS_AHEAD) {
                crate::prefetch::prefetch_row(src.as_ptr(), o * dim + ahead, inner);
            }
            let start = (o * dim + idx[k]) * inner;
            for (d, v) in dst.iter_mut().zip(&src[start..start + inner]) {
                d.write(v.clone());
            }
        }
    };
    let dst = &mut out.spare_capacity_mut()[..n];
    if inner > 0 {
        let threads = crate::parallel::num_threads();
        if threads > 1 && n >= GATHER_PAR_MIN && slices > 1 {
            use rayon::prelude::*;
            let per_task = slices.div_ceil(threads);
            dst.par_chunks_mut(per_task * inner)
                .enumerate()
                .for_each(|(t, d)| copy(t * per_task, d));
        } else {
            copy(0, dst);
        }
    }
    // SAFETY: the chunks above cover `dst`, the first `n` elements, and every slice of
    // every chunk was written in full (`inner` values; `n` is 0 when `inner` is).
    unsafe { out.set_len(n) };
    out
}

fn check_index(op: &'static str, i: i64, dim: usize, axis: usize) -> Result<usize> {
    if i < 0 || i as usize >= dim {
        return Err(Error::invalid(
            op,
            format!("index {i} is out of range [0, {dim}) on axis {axis}"),
        ));
    }
    Ok(i as usize)
}

impl Tensor {
    /// Picks slices along `axis` at `indices` (`tf.gather`, batch_dims = 0).
    ///
    /// # Shapes
    /// `params[:axis] + indices.shape + params[axis+1:]`
    pub fn gather(&self, indices: &Tensor, axis: isize) -> Result<Tensor> {
        let a = normalize_axis("gather", axis, self.rank())?;
        let idx = index_values("gather", indices)?;
        let dim = self.shape()[a];
        let idx: Vec<usize> = idx
            .iter()
            .map(|&i| check_index("gather", i, dim, a))
            .collect::<Result<_>>()?;
        let outer = numel(&self.shape()[..a]);
        let inner = numel(&self.shape()[a + 1..]);
        let mut shape = self.shape()[..a].to_vec();
        shape.extend_from_slice(indices.shape());
        shape.extend_from_slice(&self.shape()[a + 1..]);
        let out = with_stored!(self.dtype(), T => {
            let src = self.contiguous_data::<T>()?;
            Tensor::from_vec(gather_slices(&src, dim, inner, outer, &idx), &shape)
        })?;
        if let Some(r) = Recorder::new(&[self]) {
            let (indices, from) = (indices.clone(), self.shape().to_vec());
            if a == 0 {
                // Rows of a table: the gradient stays sparse (`tf.IndexedSlices`).
                r.finish_sparse(&out, move |g, _| {
                    let mut rows = vec![-1isize];
                    rows.extend(from[1..].iter().map(|&d| d as isize));
                    Ok(vec![Some(Gradient::Sparse(IndexedSlices {
                        indices: indices.reshape(&[-1])?,
                        values: g.reshape(&rows)?,
                        dense_shape: from.clone(),
                    }))])
                });
            } else {
                r.finish(&out, move |g, _| {
                    Ok(vec![Some(g.gather_transpose(&indices, a, &from)?)])
                });
            }
        }
        crate::trace::record(
            "gather",
            crate::trace::OpKind::Gather(a),
            move || format!("axis={axis}"),
            &[self, indices],
            &out,
            move |x| x[0].gather(&x[1], axis),
        );
        Ok(out)
    }

    /// The adjoint of [`Tensor::gather`] along `axis`: adds each gathered slice of `self`
    /// back into its source position in zeros of shape `from` (an unsorted segment sum).
    pub(crate) fn gather_transpose(
        &self,
        indices: &Tensor,
        axis: usize,
        from: &[usize],
    ) -> Result<Tensor> {
        let idx = index_values("gather", indices)?;
        let dim = from[axis];
        let outer = numel(&from[..axis]);
        let inner = numel(&from[axis + 1..]);
        let out = with_numeric!(self.dtype(), "gather_transpose", T => {
            let src = self.contiguous_data::<T>()?;
            let mut acc = vec![T::ZERO; numel(from)];
            for o in 0..outer {
                for (j, &i) in idx.iter().enumerate() {
                    let i = check_index("gather", i, dim, axis)?;
                    let s = &src[(o * idx.len() + j) * inner..][..inner];
                    let d = &mut acc[(o * dim + i) * inner..][..inner];
                    d.iter_mut().zip(s).for_each(|(d, &v)| *d += v);
                }
            }
            Tensor::from_vec(acc, from)?
        });
        if let Some(r) = Recorder::new(&[self]) {
            let indices = indices.clone();
            r.finish(&out, move |g, _| {
                Ok(vec![Some(g.gather(&indices, axis as isize)?)])
            });
        }
        let from = from.to_vec();
        record(
            "gather_transpose",
            move || format!("axis={axis}"),
            &[self, indices],
            &out,
            move |x| x[0].gather_transpose(&x[1], axis, &from),
        );
        Ok(out)
    }

    /// Gathers slices addressed by the last axis of `indices` (`tf.gather_nd`).
    ///
    /// # Shapes
    /// `indices[..., d]` into `params[p0, ..., pd-1, rest...]` gives `indices[...] + rest`.
    pub fn gather_nd(&self, indices: &Tensor) -> Result<Tensor> {
        let (offsets, depth) = nd_offsets("gather_nd", self.shape(), indices)?;
        let inner = numel(&self.shape()[depth..]);
        let mut shape = indices.shape()[..indices.rank() - 1].to_vec();
        shape.extend_from_slice(&self.shape()[depth..]);
        let out = with_stored!(self.dtype(), T => {
            let src = self.contiguous_data::<T>()?;
            let mut out = crate::alloc::with_capacity(offsets.len() * inner);
            for &o in &offsets {
                out.extend_from_slice(&src[o * inner..(o + 1) * inner]);
            }
            Tensor::from_vec(out, &shape)
        })?;
        if let Some(r) = Recorder::new(&[self]) {
            let (indices, from) = (indices.clone(), self.shape().to_vec());
            r.finish(&out, move |g, _| {
                Ok(vec![Some(Tensor::scatter_nd(&indices, g, &from)?)])
            });
        }
        record("gather_nd", String::new, &[self, indices], &out, |x| {
            x[0].gather_nd(&x[1])
        });
        Ok(out)
    }

    /// Scatters `updates` into zeros of `shape`, summing duplicates (`tf.scatter_nd`).
    pub fn scatter_nd(indices: &Tensor, updates: &Tensor, shape: &[usize]) -> Result<Tensor> {
        Tensor::zeros(shape, updates.dtype())?.tensor_scatter_nd(
            "scatter_nd",
            indices,
            updates,
            true,
        )
    }

    /// Copy of `self` with `updates` written at `indices` (`tf.tensor_scatter_nd_update`).
    pub fn tensor_scatter_nd_update(&self, indices: &Tensor, updates: &Tensor) -> Result<Tensor> {
        self.tensor_scatter_nd("tensor_scatter_nd_update", indices, updates, false)
    }

    /// Copy of `self` with `updates` added at `indices` (`tf.tensor_scatter_nd_add`).
    pub fn tensor_scatter_nd_add(&self, indices: &Tensor, updates: &Tensor) -> Result<Tensor> {
        self.tensor_scatter_nd("tensor_scatter_nd_add", indices, updates, true)
    }

    fn tensor_scatter_nd(
        &self,
        op: &'static str,
        indices: &Tensor,
        updates: &Tensor,
        add: bool,
    ) -> Result<Tensor> {
        if updates.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                lhs: self.dtype(),
                rhs: updates.dtype(),
            });
        }
        let (offsets, depth) = nd_offsets(op, self.shape(), indices)?;
        let inner = numel(&self.shape()[depth..]);
        let mut expect = indices.shape()[..indices.rank() - 1].to_vec();
        expect.extend_from_slice(&self.shape()[depth..]);
        if updates.shape() != expect.as_slice() {
            return Err(Error::shapes(
                op,
                "updates must have shape indices[:-1] + tensor[depth:]",
                updates.shape(),
                &expect,
            ));
        }
        let dt = self.dtype();
        if add && dt.compute_dtype() != dt {
            let c = dt.compute_dtype();
            return self
                .cast(c)?
                .tensor_scatter_nd(op, indices, &updates.cast(c)?, add)?
                .cast(dt);
        }
        let out = if add {
            with_numeric!(dt, op, T => scatter::<T>(self, updates, &offsets, inner, |&a, &b| a + b))
        } else {
            with_stored!(dt, T => scatter::<T>(self, updates, &offsets, inner, |_, b| b.clone()))
        }?;
        if let Some(r) = Recorder::new(&[self, updates]) {
            let (indices, upd) = (indices.clone(), updates.clone());
            r.finish(&out, move |g, needs| {
                let gx = needs[0]
                    .then(|| {
                        if add {
                            Ok(g.clone())
                        } else {
                            g.tensor_scatter_nd_update(&indices, &upd.zeros_like()?)
                        }
                    })
                    .transpose()?;
                let gu = needs[1].then(|| g.gather_nd(&indices)).transpose()?;
                Ok(vec![gx, gu])
            });
        }
        record(op, String::new, &[self, indices, updates], &out, move |x| {
            x[0].tensor_scatter_nd(op, &x[1], &x[2], add)
        });
        Ok(out)
    }

    /// One-hot encoding along a new last axis (`tf.one_hot`, axis = -1); indices outside
    /// `[0, depth)` give rows of `off_value`.
    pub fn one_hot(
        &self,
        depth: usize,
        on_value: f64,
        off_value: f64,
        dtype: DType,
    ) -> Result<Tensor> {
        let guard = crate::trace::suppress();
        let idx = index_values("one_hot", self)?;
        let mut out = vec![off_value; idx.len() * depth];
        for (row, &i) in idx.iter().enumerate() {
            if i >= 0 && (i as usize) < depth {
                out[row * depth + i as usize] = on_value;
            }
        }
        let mut shape = self.shape().to_vec();
        shape.push(depth);
        let out = Tensor::from_vec(out, &shape)?.cast(dtype)?;
        drop(guard);
        record(
            "one_hot",
            move || format!("depth={depth}, on={on_value}, off={off_value}, dtype={dtype}"),
            &[self],
            &out,
            move |x| x[0].one_hot(depth, on_value, off_value, dtype),
        );
        Ok(out)
    }
}

fn scatter<T: Stored>(
    base: &Tensor,
    updates: &Tensor,
    offsets: &[usize],
    inner: usize,
    f: impl Fn(&T, &T) -> T,
) -> Result<Tensor> {
    let mut out = base.contiguous_data::<T>()?.into_owned();
    let upd = updates.contiguous_data::<T>()?;
    for (k, &o) in offsets.iter().enumerate() {
        for j in 0..inner {
            let d = &mut out[o * inner + j];
            *d = f(d, &upd[k * inner + j]);
        }
    }
    Tensor::from_vec(out, base.shape())
}

/// Row-major offsets (in units of the addressed slice) of every index tuple, and the depth.
fn nd_offsets(op: &'static str, shape: &[usize], indices: &Tensor) -> Result<(Vec<usize>, usize)> {
    let depth = *indices
        .shape()
        .last()
        .ok_or_else(|| Error::invalid(op, "indices need rank >= 1"))?;
    if depth > shape.len() {
        return Err(Error::shapes(
            op,
            "index depth exceeds the rank of params",
            indices.shape(),
            shape,
        ));
    }
    let idx = index_values(op, indices)?;
    let mut offsets = Vec::with_capacity(idx.len() / depth.max(1));
    if depth == 0 {
        offsets.resize(numel(&indices.shape()[..indices.rank() - 1]), 0);
        return Ok((offsets, 0));
    }
    for tuple in idx.chunks(depth) {
        let mut o = 0;
        for (axis, &i) in tuple.iter().enumerate() {
            o = o * shape[axis] + check_index(op, i, shape[axis], axis)?;
        }
        offsets.push(o);
    }
    Ok((offsets, depth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_shared_between_threads_equal_the_slices_in_order() {
        // [3, 500, 50] gathered at 1,200 indices on axis 1: 180,000 values, split between
        // threads; every slice checked against its source.
        let (outer, dim, inner) = (3usize, 500usize, 50usize);
        let p = Tensor::from_vec(
            (0..outer * dim * inner).map(|v| v as i32).collect(),
            &[outer, dim, inner],
        )
        .unwrap();
        let idx: Vec<i64> = (0..1200).map(|k| (k * 37 % dim) as i64).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let got = pool
            .install(|| p.gather(&Tensor::from_vec(idx.clone(), &[1200]).unwrap(), 1))
            .unwrap();
        assert_eq!(got.shape(), &[outer, 1200, inner]);
        let got = got.to_vec::<i32>().unwrap();
        for (s, slice) in got.chunks_exact(inner).enumerate() {
            let (o, k) = (s / idx.len(), s % idx.len());
            let start = ((o * dim) as i64 + idx[k]) as i32 * inner as i32;
            assert!(
                slice.iter().copied().eq(start..start + inner as i32),
                "slice {s}"
            );
        }
        // Strings (reference-counted handles) take the same path: all 70,000 reversed.
        let n = 70_000usize;
        let words: Vec<String> = (0..n).map(|v| format!("w{v}")).collect();
        let words = Tensor::from_strings(&words, &[n]).unwrap();
        let reversed = Tensor::from_vec((0..n as i64).rev().collect(), &[n]).unwrap();
        let picked = pool.install(|| words.gather(&reversed, 0)).unwrap();
        let picked = picked.to_strings().unwrap();
        assert!(picked
            .iter()
            .rev()
            .enumerate()
            .all(|(v, w)| *w == format!("w{v}")));
    }

    #[test]
    fn gather_family() {
        let p = Tensor::from_vec((0..6).map(|v| v as f32).collect(), &[3, 2]).unwrap();
        let i = Tensor::from_vec(vec![2i32, 0, 2], &[3]).unwrap();
        assert_eq!(
            p.gather(&i, 0).unwrap().to_vec::<f32>().unwrap(),
            vec![4., 5., 0., 1., 4., 5.]
        );
        assert_eq!(
            p.gather(&Tensor::scalar(1i64), 1)
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            vec![1., 3., 5.]
        );
        let bad = Tensor::from_vec(vec![3i32], &[1]).unwrap();
        assert_eq!(
            p.gather(&bad, 0).unwrap_err().to_string(),
            "gather: index 3 is out of range [0, 3) on axis 0"
        );
        let nd = Tensor::from_vec(vec![1i32, 1, 2, 0], &[2, 2]).unwrap();
        assert_eq!(
            p.gather_nd(&nd).unwrap().to_vec::<f32>().unwrap(),
            vec![3., 4.]
        );
        let s = Tensor::scatter_nd(
            &Tensor::from_vec(vec![1i32, 1], &[2, 1]).unwrap(),
            &Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap(),
            &[3, 2],
        )
        .unwrap();
        assert_eq!(s.to_vec::<f32>().unwrap(), vec![0., 0., 4., 6., 0., 0.]);
        let u = p
            .tensor_scatter_nd_update(
                &Tensor::from_vec(vec![0i32, 1], &[1, 2]).unwrap(),
                &Tensor::from_vec(vec![9.0f32], &[1]).unwrap(),
            )
            .unwrap();
        assert_eq!(u.to_vec::<f32>().unwrap()[..2], [0., 9.]);
        let oh = Tensor::from_vec(vec![0i64, 2, 5], &[3])
            .unwrap()
            .one_hot(3, 1.0, 0.0, DType::F32)
            .unwrap();
        assert_eq!(
            oh.to_vec::<f32>().unwrap(),
            vec![1., 0., 0., 0., 0., 1., 0., 0., 0.]
        );
    }
}
