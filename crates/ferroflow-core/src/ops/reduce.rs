//! Reductions over any set of axes: sum, mean, max, min, prod, any/all, argmax/argmin,
//! variance, logsumexp.
//!
//! The input is viewed as `[outer, reduced, inner]`: rows (inner = 1) reduce with several
//! SIMD accumulators, columns (inner > 1) accumulate whole rows at a time. Axes that are
//! not adjacent are first moved to the end.

use crate::autodiff::record::Recorder;
use crate::dispatch::with_numeric;
use crate::elementwise::fill_vec;
use crate::ops::reduce_grad::reduce_gradient;
use crate::parallel::{num_threads, par_chunks, with_best_isa, PAR_MIN_ELEMS};
use crate::shape::{normalize_axes, normalize_axis, numel};
use crate::{DType, Element, Error, Numeric, Result, Tensor};
use rayon::prelude::*;

/// Which axes a reduction runs over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Axes {
    /// Every axis (TF's `axis=None`).
    All,
    /// The listed axes (negative values count from the end).
    These(Vec<isize>),
}

impl From<isize> for Axes {
    fn from(a: isize) -> Self {
        Axes::These(vec![a])
    }
}
impl From<&[isize]> for Axes {
    fn from(a: &[isize]) -> Self {
        Axes::These(a.to_vec())
    }
}
impl<const N: usize> From<[isize; N]> for Axes {
    fn from(a: [isize; N]) -> Self {
        Axes::These(a.to_vec())
    }
}
impl From<Vec<isize>> for Axes {
    fn from(a: Vec<isize>) -> Self {
        Axes::These(a)
    }
}

/// A reduction with an associative combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Σ
    Sum,
    /// Π
    Prod,
    /// maximum (NaN propagates)
    Max,
    /// minimum (NaN propagates)
    Min,
}

impl ReduceOp {
    fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Prod => "reduce_prod",
            ReduceOp::Max => "reduce_max",
            ReduceOp::Min => "reduce_min",
        }
    }

    #[inline(always)]
    fn identity<T: Numeric>(self) -> T {
        match self {
            ReduceOp::Sum => T::ZERO,
            ReduceOp::Prod => T::ONE,
            ReduceOp::Max => T::MIN_VALUE,
            ReduceOp::Min => T::MAX_VALUE,
        }
    }

    #[inline(always)]
    fn combine<T: Numeric>(self, a: T, b: T) -> T {
        match self {
            ReduceOp::Sum => a + b,
            ReduceOp::Prod => a * b,
            ReduceOp::Max => a.max_of(b),
            ReduceOp::Min => a.min_of(b),
        }
    }
}

/// The reduction plan: output shape and the `[outer, reduced, inner]` view of the input.
struct Plan {
    out_shape: Vec<usize>,
    /// The output shape with reduced axes kept as size 1 (what gradients broadcast from).
    kept_shape: Vec<usize>,
    /// The reduced axes, normalised and ascending.
    axes: Vec<usize>,
    source: Tensor,
    outer: usize,
    reduced: usize,
    inner: usize,
}

fn plan(op: &'static str, x: &Tensor, axes: &Axes, keepdims: bool) -> Result<Plan> {
    let rank = x.rank();
    let mut axes: Vec<usize> = match axes {
        Axes::All => (0..rank).collect(),
        Axes::These(a) => normalize_axes(op, a, rank)?,
    };
    axes.sort_unstable();
    axes.dedup();
    let shape = x.shape();
    let kept_shape: Vec<usize> = (0..rank)
        .map(|i| if axes.contains(&i) { 1 } else { shape[i] })
        .collect();
    let out_shape: Vec<usize> = if keepdims {
        kept_shape.clone()
    } else {
        (0..rank)
            .filter(|i| !axes.contains(i))
            .map(|i| shape[i])
            .collect()
    };
    // Axes of size 1 can count as reduced or kept; ignore them when checking adjacency.
    let big: Vec<usize> = axes.iter().copied().filter(|&a| shape[a] != 1).collect();
    let adjacent = big
        .windows(2)
        .all(|w| (w[0] + 1..w[1]).all(|i| shape[i] == 1));
    let (source, split) = if adjacent {
        let first = big.first().copied().unwrap_or(rank);
        let last = big.last().map(|&l| l + 1).unwrap_or(rank);
        (x.contiguous(), (first, last))
    } else {
        let perm: Vec<usize> = (0..rank)
            .filter(|i| !axes.contains(i))
            .chain(axes.iter().copied())
            .collect();
        let kept = rank - axes.len();
        (x.transpose(&perm)?.contiguous(), (kept, rank))
    };
    let s = source.shape();
    Ok(Plan {
        outer: numel(&s[..split.0]),
        reduced: numel(&s[split.0..split.1]),
        inner: numel(&s[split.1..]),
        out_shape,
        kept_shape,
        axes,
        source,
    })
}

/// Reduces a contiguous slice with 16 independent accumulators (vectorisable), in blocks
/// whose partial results are combined in f64 for floats to limit rounding growth.
#[inline(always)]
fn reduce_slice<T: Numeric>(op: ReduceOp, x: &[T]) -> T {
    const LANES: usize = 16;
    const BLOCK: usize = 256;
    let float_sum = op == ReduceOp::Sum && T::DTYPE.is_float();
    let mut total = op.identity::<T>();
    let mut total_f64 = 0.0f64;
    for block in x.chunks(BLOCK) {
        let mut acc = [op.identity::<T>(); LANES];
        let chunks = block.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for i in 0..LANES {
                acc[i] = op.combine(acc[i], c[i]);
            }
        }
        let mut r = op.identity::<T>();
        for &v in rest {
            r = op.combine(r, v);
        }
        let mut width = LANES / 2;
        while width > 0 {
            for i in 0..width {
                acc[i] = op.combine(acc[i], acc[i + width]);
            }
            width /= 2;
        }
        let part = op.combine(acc[0], r);
        if float_sum {
            total_f64 += part.to_f64();
        } else {
            total = op.combine(total, part);
        }
    }
    if float_sum {
        T::from_f64(total_f64)
    } else {
        total
    }
}

fn reduce_typed<T: Numeric>(op: ReduceOp, p: &Plan) -> Result<Vec<T>> {
    let data = p.source.contiguous_data::<T>()?;
    let (outer, r, inner) = (p.outer, p.reduced, p.inner);
    let n_out = outer * inner;
    if inner == 1 && outer < num_threads() && r >= PAR_MIN_ELEMS * 2 {
        // Few long rows: split each row across threads.
        return Ok((0..outer)
            .map(|o| {
                let row = &data[o * r..(o + 1) * r];
                let chunk = r.div_ceil(num_threads() * 4).max(PAR_MIN_ELEMS);
                let parts: Vec<T> = row
                    .par_chunks(chunk)
                    .map(|c| {
                        with_best_isa(
                            #[inline(always)]
                            || reduce_slice(op, c),
                        )
                    })
                    .collect();
                if op == ReduceOp::Sum && T::DTYPE.is_float() {
                    T::from_f64(parts.iter().map(|v| v.to_f64()).sum())
                } else {
                    parts
                        .into_iter()
                        .fold(op.identity(), |a, b| op.combine(a, b))
                }
            })
            .collect());
    }
    Ok(fill_vec(n_out, |out| {
        par_chunks(out, r.max(1), |start, chunk| {
            with_best_isa(
                #[inline(always)]
                || {
                    if inner == 1 {
                        for (i, d) in chunk.iter_mut().enumerate() {
                            let o = start + i;
                            d.write(reduce_slice(op, &data[o * r..(o + 1) * r]));
                        }
                    } else {
                        // Columns: fold whole rows of `inner` values (vectorises along inner).
                        let mut acc = vec![op.identity::<T>(); inner];
                        let (mut pos, end) = (start, start + chunk.len());
                        while pos < end {
                            let (o, j0) = (pos / inner, pos % inner);
                            let j1 = inner.min(j0 + end - pos);
                            acc[j0..j1].fill(op.identity());
                            for k in 0..r {
                                let row = &data[(o * r + k) * inner..][j0..j1];
                                for (a, &v) in acc[j0..j1].iter_mut().zip(row) {
                                    *a = op.combine(*a, v);
                                }
                            }
                            for (d, &a) in chunk[pos - start..].iter_mut().zip(&acc[j0..j1]) {
                                d.write(a);
                            }
                            pos += j1 - j0;
                        }
                    }
                },
            )
        })
    }))
}

impl Tensor {
    /// Reduces over `axes` with `op` (`tf.reduce_sum` and friends); `keepdims` keeps the
    /// reduced axes with size 1. Max/min of an empty axis is an error, as in TF.
    pub fn reduce(&self, op: ReduceOp, axes: impl Into<Axes>, keepdims: bool) -> Result<Tensor> {
        if self.dtype() == DType::Bool {
            let as_int = self.cast(DType::I32)?;
            return as_int.reduce(op, axes, keepdims)?.cast(DType::Bool);
        }
        self.in_compute_dtype(|x| {
            let axes: Axes = axes.into();
            let p = plan(op.name(), x, &axes, keepdims)?;
            if p.reduced == 0 && matches!(op, ReduceOp::Max | ReduceOp::Min) && numel(&p.out_shape) > 0 {
                return Err(Error::invalid(op.name(), format!("cannot reduce an empty axis of {:?}", x.shape())));
            }
            let out = with_numeric!(x.dtype(), op.name(), T => Tensor::from_vec(reduce_typed::<T>(op, &p)?, &p.out_shape))?;
            if let Some(r) = Recorder::new(&[x]) {
                let kept = p.kept_shape.clone();
                let (xc, yc) = (x.clone(), out.clone());
                r.finish(&out, move |g, _| Ok(vec![Some(reduce_gradient(op, &xc, &yc, &kept, g)?)]));
            }
            let ax = p.axes.clone();
            let attr_axes: Vec<isize> = ax.iter().map(|&a| a as isize).collect();
            crate::trace::record(
                op.name(),
                crate::trace::OpKind::Reduce { op, axes: ax, keepdims },
                || format!("axes={:?}, keepdims={keepdims}", p.axes),
                &[x],
                &out,
                move |t| t[0].reduce(op, attr_axes.clone(), keepdims),
            );
            Ok(out)
        })
    }

    /// Sum over `axes` (`tf.reduce_sum`).
    pub fn sum(&self, axes: impl Into<Axes>, keepdims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, axes, keepdims)
    }

    /// Product over `axes` (`tf.reduce_prod`).
    pub fn prod(&self, axes: impl Into<Axes>, keepdims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Prod, axes, keepdims)
    }

    /// Maximum over `axes` (`tf.reduce_max`).
    pub fn max(&self, axes: impl Into<Axes>, keepdims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, axes, keepdims)
    }

    /// Minimum over `axes` (`tf.reduce_min`).
    pub fn min(&self, axes: impl Into<Axes>, keepdims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, axes, keepdims)
    }

    /// True where any element over `axes` is true (`tf.reduce_any`); bool input.
    pub fn any(&self, axes: impl Into<Axes>, keepdims: bool) -> Result<Tensor> {
        self.require_bool("reduce_any")?;
        self.reduce(ReduceOp::Max, axes, keepdims)
    }

    /// True where all elements over `axes` are true (`tf.reduce_all`); bool input.
    pub fn all(&self, axes: impl Into<Axes>, keepdims: bool) -> Result<Tensor> {
        self.require_bool("reduce_all")?;
        self.reduce(ReduceOp::Min, axes, keepdims)
    }

    fn require_bool(&self, op: &'static str) -> Result<()> {
        match self.dtype() {
            DType::Bool => Ok(()),
            d => Err(Error::UnsupportedDType { op, dtype: d }),
        }
    }

    /// Mean over `axes` (`tf.reduce_mean`; integer means truncate like TF).
    pub fn mean(&self, axes: impl Into<Axes>, keepdims: bool) -> Result<Tensor> {
        let axes = axes.into();
        let s = self.sum(axes.clone(), keepdims)?;
        let count = self.numel() / s.numel().max(1);
        s.div(&s.scalar_like(count as f64)?)
    }

    /// Population variance over `axes` (`tf.math.reduce_variance`).
    pub fn variance(&self, axes: impl Into<Axes>, keepdims: bool) -> Result<Tensor> {
        let axes = axes.into();
        let m = self.mean(axes.clone(), true)?;
        self.squared_difference(&m)?.mean(axes, keepdims)
    }

    /// Standard deviation over `axes` (`tf.math.reduce_std`).
    pub fn std(&self, axes: impl Into<Axes>, keepdims: bool) -> Result<Tensor> {
        self.variance(axes, keepdims)?.sqrt()
    }

    /// log Σ exp(x) over `axes`, computed stably (`tf.reduce_logsumexp`).
    pub fn logsumexp(&self, axes: impl Into<Axes>, keepdims: bool) -> Result<Tensor> {
        let axes = axes.into();
        let m = self.max(axes.clone(), true)?;
        // An infinite max would give inf - inf; shift by 0 there instead (as TF does).
        let finite = m.abs()?.less(&m.scalar_like(f64::INFINITY)?)?;
        let shift = Tensor::where_(&finite, &m, &m.zeros_like()?)?.stop_gradient();
        let s = self
            .sub(&shift)?
            .exp()?
            .sum(axes.clone(), true)?
            .log()?
            .add(&shift)?;
        if keepdims {
            Ok(s)
        } else {
            let a: Vec<isize> = match axes {
                Axes::All => (0..self.rank() as isize).collect(),
                Axes::These(a) => a,
            };
            s.squeeze(&a)
        }
    }

    /// Sums a broadcast result back to `shape` (the gradient of broadcasting): leading
    /// extra axes and axes where `shape` has size 1 are summed away.
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let r = self.rank();
        if shape.len() > r {
            return Err(Error::shapes(
                "sum_to_shape",
                "target has more axes than the tensor",
                self.shape(),
                shape,
            ));
        }
        let lead = r - shape.len();
        let mut axes: Vec<isize> = (0..lead as isize).collect();
        for (i, &d) in shape.iter().enumerate() {
            let s = self.shape()[lead + i];
            if d == 1 && s != 1 {
                axes.push((lead + i) as isize);
            } else if d != s {
                return Err(Error::shapes(
                    "sum_to_shape",
                    "shapes are not broadcast-compatible",
                    self.shape(),
                    shape,
                ));
            }
        }
        let s = if axes.is_empty() {
            self.clone()
        } else {
            self.sum(axes, true)?
        };
        s.reshape_to(shape)
    }

    /// Index of the largest value along `axis` (`tf.argmax`; first on ties), as int64.
    pub fn argmax(&self, axis: isize) -> Result<Tensor> {
        self.arg_reduce("argmax", axis, |a, b| a > b)
    }

    /// Index of the smallest value along `axis` (`tf.argmin`; first on ties), as int64.
    pub fn argmin(&self, axis: isize) -> Result<Tensor> {
        self.arg_reduce("argmin", axis, |a, b| a < b)
    }

    fn arg_reduce(
        &self,
        op: &'static str,
        axis: isize,
        better: fn(f64, f64) -> bool,
    ) -> Result<Tensor> {
        let a = normalize_axis(op, axis, self.rank())?;
        if self.shape()[a] == 0 {
            return Err(Error::invalid(
                op,
                format!("axis {a} of {:?} is empty", self.shape()),
            ));
        }
        let x = self.in_compute_dtype(|t| Ok(t.clone()))?;
        let p = plan(op, &x, &Axes::These(vec![a as isize]), false)?;
        let out = with_numeric!(p.source.dtype(), op, T => {
            let data = p.source.contiguous_data::<T>()?;
            let (r, inner) = (p.reduced, p.inner);
            let mut out = vec![0i64; p.outer * inner];
            for (idx, o) in out.iter_mut().enumerate() {
                let (outer, j) = (idx / inner, idx % inner);
                let base = outer * r * inner + j;
                let mut best = data[base].to_f64();
                for k in 1..r {
                    let v = data[base + k * inner].to_f64();
                    if better(v, best) || (v.is_nan() && !best.is_nan()) {
                        best = v;
                        *o = k as i64;
                    }
                }
            }
            Tensor::from_vec(out, &p.out_shape)
        })?;
        crate::trace::record_other(
            op,
            move || format!("axis={a}"),
            &[self],
            &out,
            move |t| t[0].arg_reduce(op, a as isize, better),
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: Vec<f32>, s: &[usize]) -> Tensor {
        Tensor::from_vec(v, s).unwrap()
    }

    #[test]
    fn reduces_over_axes() {
        let x = t((0..24).map(|v| v as f32).collect(), &[2, 3, 4]);
        assert_eq!(
            x.sum(Axes::All, false).unwrap().to_vec::<f32>().unwrap(),
            vec![276.0]
        );
        let s = x.sum([0, 2], false).unwrap();
        assert_eq!(s.to_vec::<f32>().unwrap(), vec![60.0, 92.0, 124.0]);
        let k = x.sum(1, true).unwrap();
        assert_eq!(k.shape(), &[2, 1, 4]);
        assert_eq!(k.to_vec::<f32>().unwrap()[..4], [12.0, 15.0, 18.0, 21.0]);
        assert_eq!(
            x.max(-1, false).unwrap().to_vec::<f32>().unwrap(),
            vec![3.0, 7.0, 11.0, 15.0, 19.0, 23.0]
        );
        assert_eq!(x.argmax(1).unwrap().to_vec::<i64>().unwrap(), vec![2; 8]);
        assert_eq!(x.argmin(0).unwrap().to_vec::<i64>().unwrap(), vec![0; 12]);
        let m = x.mean(0, false).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(m[0], 6.0);
        assert!(x.sum(3, false).is_err());
        let e = t(vec![], &[0, 3]);
        assert_eq!(
            e.sum(0, false).unwrap().to_vec::<f32>().unwrap(),
            vec![0.0; 3]
        );
        assert!(e.max(0, false).is_err());
    }

    #[test]
    fn large_sums_are_accurate() {
        let n = 1 << 20;
        let x = Tensor::full(&[n], 0.1, DType::F32).unwrap();
        let s = x.sum(Axes::All, false).unwrap().to_scalar::<f32>().unwrap();
        let exact = 0.1f32 as f64 * n as f64;
        assert!((s as f64 - exact).abs() / exact < 1e-6, "{s}");
        let b = Tensor::from_vec(vec![true, false, false, false], &[2, 2]).unwrap();
        assert_eq!(
            b.any(1, false).unwrap().to_vec::<bool>().unwrap(),
            vec![true, false]
        );
        assert_eq!(
            b.all(Axes::All, false).unwrap().to_vec::<bool>().unwrap(),
            vec![false]
        );
    }

    #[test]
    fn logsumexp_is_stable() {
        let x = t(vec![1000.0, 1000.0, -1000.0, f32::NEG_INFINITY], &[2, 2]);
        let l = x.logsumexp(1, false).unwrap().to_vec::<f32>().unwrap();
        assert!((l[0] - (1000.0 + std::f32::consts::LN_2)).abs() < 1e-3);
        assert!((l[1] + 1000.0).abs() < 1e-3);
    }
}
