//! Pooling in NHWC: max and average pooling 1-D/2-D, and global pooling.

use crate::autodiff::record::Recorder;
use crate::ops::conv::{conv_output, Padding};
use crate::ops::pool_grad::{pool2d_backward, PoolGeom};
use crate::{DType, Error, Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PoolKind {
    Max,
    Avg,
}

impl Tensor {
    /// 2-D max pooling (`tf.nn.max_pool2d`) over `[n, h, w, c]`.
    pub fn max_pool2d(
        &self,
        ksize: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
    ) -> Result<Tensor> {
        self.pool2d("max_pool2d", PoolKind::Max, ksize, strides, padding)
    }

    /// 2-D average pooling (`tf.nn.avg_pool2d`); SAME padding averages only real elements.
    pub fn avg_pool2d(
        &self,
        ksize: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
    ) -> Result<Tensor> {
        self.pool2d("avg_pool2d", PoolKind::Avg, ksize, strides, padding)
    }

    /// 1-D max pooling over `[n, w, c]`.
    pub fn max_pool1d(&self, ksize: usize, stride: usize, padding: Padding) -> Result<Tensor> {
        self.pool1d("max_pool1d", PoolKind::Max, ksize, stride, padding)
    }

    /// 1-D average pooling over `[n, w, c]`.
    pub fn avg_pool1d(&self, ksize: usize, stride: usize, padding: Padding) -> Result<Tensor> {
        self.pool1d("avg_pool1d", PoolKind::Avg, ksize, stride, padding)
    }

    /// Mean over the spatial axes of `[n, ..., c]` (GlobalAveragePooling1D/2D).
    pub fn global_avg_pool(&self) -> Result<Tensor> {
        self.global_axes("global_avg_pool")
            .and_then(|a| self.mean(a, false))
    }

    /// Max over the spatial axes of `[n, ..., c]` (GlobalMaxPooling1D/2D).
    pub fn global_max_pool(&self) -> Result<Tensor> {
        self.global_axes("global_max_pool")
            .and_then(|a| self.max(a, false))
    }

    fn global_axes(&self, op: &'static str) -> Result<Vec<isize>> {
        if self.rank() < 3 {
            return Err(Error::invalid(
                op,
                format!(
                    "needs [batch, spatial..., channels], got {:?}",
                    self.shape()
                ),
            ));
        }
        Ok((1..self.rank() as isize - 1).collect())
    }

    fn pool1d(
        &self,
        op: &'static str,
        kind: PoolKind,
        k: usize,
        s: usize,
        p: Padding,
    ) -> Result<Tensor> {
        if self.rank() != 3 {
            return Err(Error::invalid(
                op,
                format!("needs [n, w, c], got {:?}", self.shape()),
            ));
        }
        self.expand_dims(1)?
            .pool2d(op, kind, (1, k), (1, s), p)?
            .squeeze(&[1])
    }

    fn pool2d(
        &self,
        op: &'static str,
        kind: PoolKind,
        k: (usize, usize),
        s: (usize, usize),
        p: Padding,
    ) -> Result<Tensor> {
        if self.rank() != 4 {
            return Err(Error::invalid(
                op,
                format!("needs [n, h, w, c], got {:?}", self.shape()),
            ));
        }
        match self.dtype() {
            DType::F32 => {}
            d if d.is_float() => return self.cast(DType::F32)?.pool2d(op, kind, k, s, p)?.cast(d),
            d => return Err(Error::UnsupportedDType { op, dtype: d }),
        }
        let sh = self.shape();
        let (n, h, w, c) = (sh[0], sh[1], sh[2], sh[3]);
        let (oh, pt) = conv_output(op, h, k.0, s.0, 1, p, 0)?;
        let (ow, pl) = conv_output(op, w, k.1, s.1, 1, p, 1)?;
        let x = self.contiguous_data::<f32>()?;
        let mut out = crate::alloc::overwritable::<f32>(n * oh * ow * c);
        let row_len = (ow * c).max(1);
        // Split across threads only when the work pays for the handoff (a small model's
        // pooling is microseconds, less than waking another thread).
        crate::parallel::par_rows(&mut out, row_len, k.0 * k.1, |start, rows| {
            for (i, dst) in rows.chunks_mut(row_len).enumerate() {
                let row = start / row_len + i;
                let (img, oy) = (row / oh.max(1), row % oh.max(1));
                let y0 = (oy * s.0) as isize - pt as isize;
                for ox in 0..ow {
                    let x0 = (ox * s.1) as isize - pl as isize;
                    let d = &mut dst[ox * c..(ox + 1) * c];
                    d.fill(if kind == PoolKind::Max {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    });
                    let mut count = 0usize;
                    for yy in y0.max(0)..(y0 + k.0 as isize).min(h as isize) {
                        for xx in x0.max(0)..(x0 + k.1 as isize).min(w as isize) {
                            count += 1;
                            let src = &x[((img * h + yy as usize) * w + xx as usize) * c..][..c];
                            match kind {
                                PoolKind::Max => d.iter_mut().zip(src).for_each(|(a, &v)| {
                                    *a = if v > *a || v.is_nan() { v } else { *a }
                                }),
                                PoolKind::Avg => d.iter_mut().zip(src).for_each(|(a, &v)| *a += v),
                            }
                        }
                    }
                    if kind == PoolKind::Avg {
                        let inv = 1.0 / count.max(1) as f32;
                        d.iter_mut().for_each(|a| *a *= inv);
                    }
                }
            }
        });
        let out = Tensor::from_vec(out, &[n, oh, ow, c])?;
        if let Some(r) = Recorder::new(&[self]) {
            let xt = self.clone();
            let geom = PoolGeom {
                n,
                h,
                w,
                c,
                oh,
                ow,
                k,
                s,
                pad: (pt, pl),
            };
            r.finish(&out, move |dy, _| {
                let backward = move |t: &[Tensor]| {
                    let x = t[0].contiguous_data::<f32>()?;
                    let d = t[1].contiguous_data::<f32>()?;
                    Tensor::from_vec(pool2d_backward(kind, &geom, &x, &d), t[0].shape())
                };
                let dx = backward(&[xt.clone(), dy.clone()])?;
                crate::trace::record_other(
                    "pool2d_grad",
                    move || format!("{kind:?}"),
                    &[&xt, dy],
                    &dx,
                    backward,
                );
                Ok(vec![Some(dx)])
            });
        }
        let spec = crate::trace::ConvSpec::new((h, w), (oh, ow), k, s, (1, 1), (pt, pl), 1);
        crate::trace::record(
            op,
            crate::trace::OpKind::Pool2d {
                max: kind == PoolKind::Max,
                ksize: k,
                spec,
            },
            move || format!("ksize={k:?}, strides={s:?}, padding={p:?}"),
            &[self],
            &out,
            move |x| x[0].pool2d(op, kind, k, s, p),
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_like_tensorflow() {
        let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 4, 4, 1]).unwrap();
        let m = x.max_pool2d((2, 2), (2, 2), Padding::Valid).unwrap();
        assert_eq!(m.to_vec::<f32>().unwrap(), vec![5., 7., 13., 15.]);
        let a = x.avg_pool2d((3, 3), (2, 2), Padding::Same).unwrap();
        // SAME pads one row/col after; the corner window averages 4 real values.
        assert_eq!(a.shape(), &[1, 2, 2, 1]);
        assert_eq!(a.to_vec::<f32>().unwrap(), vec![5., 6.5, 11., 12.5]);
        let g = x.global_avg_pool().unwrap();
        assert_eq!(g.to_vec::<f32>().unwrap(), vec![7.5]);
        let s = Tensor::from_vec(vec![1.0f32, 3.0, 2.0, 5.0], &[1, 4, 1]).unwrap();
        assert_eq!(
            s.max_pool1d(2, 1, Padding::Valid)
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            vec![3., 3., 5.]
        );
        assert!(s.max_pool2d((2, 2), (1, 1), Padding::Valid).is_err());
    }

    #[test]
    fn large_pools_split_across_threads_equal_one_thread() {
        let x = crate::random::normal(&[3, 45, 37, 24], 0.0, 1.0, DType::F32, Some(5)).unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let tape = crate::GradientTape::new();
                tape.watch(&x);
                let m = x.max_pool2d((3, 3), (2, 2), Padding::Same).unwrap();
                let a = x.avg_pool2d((3, 2), (1, 2), Padding::Valid).unwrap();
                let loss = m
                    .square()
                    .unwrap()
                    .sum(crate::Axes::All, false)
                    .unwrap()
                    .add(&a.square().unwrap().sum(crate::Axes::All, false).unwrap())
                    .unwrap();
                let dx = tape.gradient(&loss, &[&x]).unwrap().remove(0).unwrap();
                (
                    m.to_vec::<f32>().unwrap(),
                    a.to_vec::<f32>().unwrap(),
                    dx.to_dense().unwrap().to_vec::<f32>().unwrap(),
                )
            })
        };
        let (one, three) = (run(1), run(3));
        assert_eq!(one, three);
        // Spot check: the first output of the max pool is the max of its window.
        let v = x.to_vec::<f32>().unwrap();
        let at = |y: usize, xx: usize| v[(y * 37 + xx) * 24];
        let want = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)]
            .into_iter()
            .fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(one.0[0], want);
    }
}
