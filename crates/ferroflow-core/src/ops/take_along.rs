//! `take_along_axis` (NumPy's, `tf.experimental.numpy.take_along_axis`) and its adjoint.

use crate::autodiff::record::Recorder;
use crate::dispatch::{with_numeric, with_stored};
use crate::shape::{normalize_axis, numel};
use crate::{DType, Error, Numeric, Result, Tensor};

/// Checks `indices` against `x` for a take along `axis` and returns them as offsets.
fn along_indices(
    op: &'static str,
    shape: &[usize],
    indices: &Tensor,
    a: usize,
    dim: usize,
) -> Result<Vec<usize>> {
    let ok_shape = indices.rank() == shape.len()
        && indices
            .shape()
            .iter()
            .zip(shape)
            .enumerate()
            .all(|(i, (x, y))| i == a || x == y);
    if !ok_shape {
        return Err(Error::shapes(
            op,
            "indices must match the tensor outside the axis",
            shape,
            indices.shape(),
        ));
    }
    if !matches!(indices.dtype(), DType::I32 | DType::I64) {
        return Err(Error::UnsupportedDType {
            op,
            dtype: indices.dtype(),
        });
    }
    indices
        .to_f64_vec()
        .into_iter()
        .map(|v| {
            let i = v as i64;
            if i < 0 || i as usize >= dim {
                Err(Error::invalid(
                    op,
                    format!("index {i} is out of range [0, {dim}) on axis {a}"),
                ))
            } else {
                Ok(i as usize)
            }
        })
        .collect()
}

impl Tensor {
    /// Picks, at every position, the element whose index along `axis` is given by
    /// `indices` (same rank; same sizes except along `axis`).
    pub fn take_along_axis(&self, indices: &Tensor, axis: isize) -> Result<Tensor> {
        let op = "take_along_axis";
        let a = normalize_axis(op, axis, self.rank())?;
        let dim = self.shape()[a];
        let idx = along_indices(op, self.shape(), indices, a, dim)?;
        let (outer, inner) = (numel(&self.shape()[..a]), numel(&self.shape()[a + 1..]));
        let k = indices.shape()[a];
        let out = with_stored!(self.dtype(), T => {
            let src = self.contiguous_data::<T>()?;
            let mut out = Vec::with_capacity(idx.len());
            for o in 0..outer {
                for j in 0..k {
                    for i in 0..inner {
                        let p = idx[(o * k + j) * inner + i];
                        out.push(src[(o * dim + p) * inner + i].clone());
                    }
                }
            }
            Tensor::from_vec(out, indices.shape())?
        });
        if let Some(r) = Recorder::new(&[self]) {
            let (indices, from) = (indices.clone(), self.shape().to_vec());
            r.finish(&out, move |g, _| {
                Ok(vec![Some(g.put_along_axis_add(&indices, a, &from)?)])
            });
        }
        crate::trace::record_other(
            op,
            move || format!("axis={axis}"),
            &[self, indices],
            &out,
            move |t| t[0].take_along_axis(&t[1], axis),
        );
        Ok(out)
    }

    /// The adjoint of [`Tensor::take_along_axis`]: adds each element into the position it
    /// was taken from, in zeros of shape `from`.
    pub(crate) fn put_along_axis_add(
        &self,
        indices: &Tensor,
        a: usize,
        from: &[usize],
    ) -> Result<Tensor> {
        let op = "take_along_axis";
        let dim = from[a];
        let mut expect = from.to_vec();
        expect[a] = indices.shape()[a];
        if self.shape() != expect.as_slice() {
            return Err(Error::shapes(
                op,
                "gradient shape differs from indices",
                self.shape(),
                &expect,
            ));
        }
        let idx = along_indices(op, &expect, indices, a, dim)?;
        let (outer, inner) = (numel(&from[..a]), numel(&from[a + 1..]));
        let k = indices.shape()[a];
        let out = with_numeric!(self.dtype(), op, T => {
            let src = self.contiguous_data::<T>()?;
            let mut acc = vec![T::ZERO; numel(from)];
            for o in 0..outer {
                for j in 0..k {
                    for i in 0..inner {
                        let q = (o * k + j) * inner + i;
                        let d = &mut acc[(o * dim + idx[q]) * inner + i];
                        *d += src[q];
                    }
                }
            }
            Tensor::from_vec(acc, from)?
        });
        if let Some(r) = Recorder::new(&[self]) {
            let indices = indices.clone();
            r.finish(&out, move |g, _| {
                Ok(vec![Some(g.take_along_axis(&indices, a as isize)?)])
            });
        }
        let f = from.to_vec();
        crate::trace::record_other(
            "put_along_axis_add",
            move || format!("axis={a}, from={f:?}"),
            &[self, indices],
            &out,
            {
                let f = from.to_vec();
                move |t| t[0].put_along_axis_add(&t[1], a, &f)
            },
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_and_puts_back() {
        let x = Tensor::from_vec(vec![10.0f32, 20.0, 30.0, 40.0], &[2, 2]).unwrap();
        let i = Tensor::from_vec(vec![1i32, 1, 0, 1], &[2, 2]).unwrap();
        let y = x.take_along_axis(&i, 1).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![20.0, 20.0, 30.0, 40.0]);
        let back = y.put_along_axis_add(&i, 1, &[2, 2]).unwrap();
        assert_eq!(back.to_vec::<f32>().unwrap(), vec![0.0, 40.0, 30.0, 40.0]);
        assert!(x
            .take_along_axis(&Tensor::from_vec(vec![2i32], &[1, 1]).unwrap(), 1)
            .is_err());
    }
}
