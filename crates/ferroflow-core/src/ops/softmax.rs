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
            with_best_isa(|| {
                for (r, dst) in chunk.chunks_mut(len).enumerate() {
                    row(&data[start + r * len..][..len], dst, log);
                }
            })
        })
    });
    Tensor::from_vec(out, x.shape())
}

/// Normalises one row `src` into `dst`.
#[inline(always)]
fn row<T: Float>(src: &[T], dst: &mut [std::mem::MaybeUninit<T>], log: bool) {
    let m = src.iter().fold(T::MIN_VALUE, |a, &b| a.max_of(b));
    let m = if m == T::MIN_VALUE || m == T::MAX_VALUE {
        T::ZERO
    } else {
        m
    };
    // Each exponential is computed once, kept in `dst` and scaled in place.
    let mut sum = T::ZERO;
    for (d, &v) in dst.iter_mut().zip(src) {
        let e = (v - m).exp();
        sum += e;
        d.write(e);
    }
    if log {
        let lse = m + sum.ln();
        for (d, &v) in dst.iter_mut().zip(src) {
            d.write(v - lse);
        }
    } else {
        let inv = T::ONE / sum;
        for d in dst.iter_mut() {
            // SAFETY: the loop above wrote every element of `dst`.
            let e = unsafe { d.assume_init_read() };
            d.write(e * inv);
        }
    }
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
