//! Fused softmax and log-softmax along an axis: one pass for the max, one for the sum of
//! exponentials, one to normalise, per row, with no temporaries.

use crate::autodiff::record::Recorder;
use crate::dispatch::with_float;
use crate::elementwise::fill_vec;
use crate::parallel::{par_rows, with_best_isa};
use crate::shape::normalize_axis;
use crate::{Error, Float, Result, Tensor};

impl Tensor {
    /// Softmax along `axis` (`tf.nn.softmax`).
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        self.softmax_impl("softmax", axis, false)
    }

    /// Log-softmax along `axis` (`tf.nn.log_softmax`), computed as `x - max - log Σ e^(x-max)`.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        self.softmax_impl("log_softmax", axis, true)
    }

    fn softmax_impl(&self, op: &'static str, axis: isize, log: bool) -> Result<Tensor> {
        if !self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op,
                dtype: self.dtype(),
            });
        }
        let a = normalize_axis(op, axis, self.rank())?;
        let last = self.rank() - 1;
        if a != last {
            let mut perm: Vec<usize> = (0..self.rank()).collect();
            perm.swap(a, last);
            return self
                .transpose(&perm)?
                .softmax_impl(op, -1, log)?
                .transpose(&perm)
                .map(|t| t.contiguous());
        }
        self.in_compute_dtype(|x| {
            let y = with_float!(x.dtype(), op, T => softmax_rows::<T>(x, log))?;
            if let Some(r) = Recorder::new(&[x]) {
                let yc = y.clone();
                r.finish(&y, move |g, _| {
                    let gx = if log {
                        // g - softmax · Σg
                        g.sub(&yc.exp()?.mul(&g.sum(-1, true)?)?)?
                    } else {
                        // y · (g - Σ g·y)
                        yc.mul(&g.sub(&g.mul(&yc)?.sum(-1, true)?)?)?
                    };
                    Ok(vec![Some(gx)])
                });
            }
            crate::trace::record(
                op,
                crate::trace::OpKind::Softmax { log },
                String::new,
                &[x],
                &y,
                move |t| t[0].softmax_impl(op, -1, log),
            );
            Ok(y)
        })
    }
}

fn softmax_rows<T: Float>(x: &Tensor, log: bool) -> Result<Tensor> {
    let data = x.contiguous_data::<T>()?;
    let len = *x.shape().last().unwrap_or(&1);
    if len == 0 || data.is_empty() {
        return Tensor::from_vec(data.into_owned(), x.shape());
    }
    let out = fill_vec(data.len(), |out| {
        par_rows(out, len, 8, |start, chunk| {
            with_best_isa(
                #[inline(always)]
                || rows(&data[start..][..chunk.len()], chunk, len, log),
            )
        })
    });
    Tensor::from_vec(out, x.shape())
}

/// Elements a group of short rows may span: their exponentials are one flat loop, which
/// vectorises however short the rows are (a loop over a row of ten does not).
const GROUP: usize = 256;

/// Normalises the rows of `len` elements of `src` into `dst`, a group of rows at a time:
/// each row shifted by its maximum, the group's exponentials in one pass over `dst`, then
/// each row's sum and scaling. Each exponential is computed once.
#[inline(always)]
fn rows<T: Float>(src: &[T], dst: &mut [std::mem::MaybeUninit<T>], len: usize, log: bool) {
    let per = (GROUP / len).max(1);
    let mut maxes = [T::ZERO; GROUP];
    for (s, d) in src.chunks(per * len).zip(dst.chunks_mut(per * len)) {
        for ((row, out), m) in s.chunks(len).zip(d.chunks_mut(len)).zip(&mut maxes) {
            let top = row.iter().fold(T::MIN_VALUE, |a, &b| a.max_of(b));
            // An all -inf row (or one with +inf) is shifted by 0, as TensorFlow does.
            *m = if top == T::MIN_VALUE || top == T::MAX_VALUE {
                T::ZERO
            } else {
                top
            };
            for (o, &v) in out.iter_mut().zip(row) {
                o.write(v - *m);
            }
        }
        // SAFETY: the loop above wrote every element of `d`; `MaybeUninit<T>` has `T`'s layout.
        let d = unsafe { &mut *(d as *mut [std::mem::MaybeUninit<T>] as *mut [T]) };
        for v in d.iter_mut() {
            *v = v.exp();
        }
        for ((row, out), &m) in s.chunks(len).zip(d.chunks_mut(len)).zip(&maxes) {
            let sum = sum_lanes(out);
            if log {
                let lse = m + sum.ln();
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = v - lse;
                }
            } else {
                let inv = T::ONE / sum;
                for o in out.iter_mut() {
                    *o *= inv;
                }
            }
        }
    }
}

/// The sum of `v` in eight interleaved partial sums, which vectorises (a single running
/// sum is one dependent chain of additions).
#[inline(always)]
fn sum_lanes<T: Float>(v: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    let tail = chunks.remainder().iter().fold(T::ZERO, |a, &x| a + x);
    acc.iter().fold(tail, |a, &x| a + x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn rows_sum_to_one_and_are_stable() {
        let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 1000.0, 1000.0, 1000.0], &[2, 3]).unwrap();
        let s = x.softmax(-1).unwrap().to_vec::<f32>().unwrap();
        assert!((s[0] - 0.090_030_57).abs() < 1e-7 && (s[2] - 0.665_240_94).abs() < 1e-6);
        assert!(s[3..].iter().all(|&v| (v - 1.0 / 3.0).abs() < 1e-6));
        let l = x.log_softmax(1).unwrap().to_vec::<f32>().unwrap();
        assert!((l[0] - (-2.407_605_6)).abs() < 1e-5);
        let c = x.softmax(0).unwrap().to_vec::<f32>().unwrap();
        assert!((c[0]).abs() < 1e-30 && (c[3] - 1.0).abs() < 1e-6);
        assert!(Tensor::zeros(&[2], DType::I32).unwrap().softmax(0).is_err());
        // Large inputs exercise the threaded row split.
        let big = crate::random::normal(&[300, 1001], 0.0, 3.0, DType::F32, Some(1)).unwrap();
        let sums = big
            .softmax(-1)
            .unwrap()
            .sum(-1, false)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert!(sums.iter().all(|&v| (v - 1.0).abs() < 1e-5));
    }
}
