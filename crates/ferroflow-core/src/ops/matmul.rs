//! Matrix products: `matmul` with batch broadcasting and transposes, via the `gemm` crate.

use crate::autodiff::record::Recorder;
use crate::dispatch::with_numeric;
use crate::layout::for_each_run;
use crate::ops::binary::same_dtype;
use crate::parallel::{for_each_part, num_threads, MatrixSplit, SharedMut};
use crate::shape::{broadcast_shapes, numel};
use crate::transpose_copy::transpose_into_init;
use crate::{DType, Error, Numeric, Result, Tensor};
use rayon::prelude::*;

/// Multiply-adds (m·n·k) from which one product is split across threads on a thread of
/// the pool.
const PAR_GEMM_WORK: usize = crate::parallel::PAR_MACS;

/// Rows of the product from which a column-major right operand is repacked row-major
/// (below, the product is close to a matrix-vector one, which reads it well as it is).
const REPACK_MIN_ROWS: usize = 8;

/// Elements of a column-major right operand from which it is repacked (smaller ones
/// stay in cache while gemm packs them, and the copy would not pay for itself).
const REPACK_MIN_ELEMS: usize = 1 << 16;

/// One strided matrix operand: buffer, offset, row stride and column stride (elements).
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a, T> {
    pub data: &'a [T],
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

/// `dst[m×n] (row-major, row stride dst_rs) = lhs[m×k] · rhs[k×n]`, plus `dst` when `accumulate`.
///
/// f32, f64 and f16 run on `gemm`'s SIMD micro-kernels; integer types use a plain loop.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into<T: Numeric>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_rs: usize,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    accumulate: bool,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(dst.len() >= (m - 1) * dst_rs + n);
    if k > 0 {
        debug_assert!(lhs.data.len() > lhs.offset + (m - 1) * lhs.rs + (k - 1) * lhs.cs);
        debug_assert!(rhs.data.len() > rhs.offset + (k - 1) * rhs.rs + (n - 1) * rhs.cs);
    }
    if matches!(T::DTYPE, DType::F32 | DType::F64) && k > 0 {
        if rhs.rs == 1 && rhs.cs > 1 && n > 1 && m >= REPACK_MIN_ROWS && k * n >= REPACK_MIN_ELEMS {
            // gemm packs a right operand stored column by column (the `a·bᵀ` of every
            // backward pass) several times slower than a row-major one: copy it row-major
            // in cache-sized tiles first.
            let mut packed = crate::alloc::Scratch(crate::alloc::overwritable::<T>(k * n));
            transpose_into_init(rhs.data, rhs.offset, k, n, rhs.cs, &mut packed.0);
            let rhs = MatRef::row_major(&packed.0, n);
            gemm_into(m, n, k, dst, dst_rs, lhs, rhs, accumulate, threads);
            return;
        }
        if threads > 1 && crate::parallel::split_pays(m * n * k) {
            let p = Product {
                m,
                n,
                k,
                lhs,
                rhs,
                dst_rs,
                accumulate,
            };
            split_gemm(p, dst, threads);
            return;
        }
        // SAFETY: the operands' extents were validated by the callers from tensor layouts
        // (checked by the debug assertions above); `T` is f32 or f64, which gemm supports.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                dst_rs as isize,
                accumulate,
                lhs.data.as_ptr().add(lhs.offset),
                lhs.cs as isize,
                lhs.rs as isize,
                rhs.data.as_ptr().add(rhs.offset),
                rhs.cs as isize,
                rhs.rs as isize,
                T::ONE,
                T::ONE,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        return;
    }
    for i in 0..m {
        let row = &mut dst[i * dst_rs..i * dst_rs + n];
        if !accumulate {
            row.fill(T::ZERO);
        }
        for p in 0..k {
            let a = lhs.data[lhs.offset + i * lhs.rs + p * lhs.cs];
            let base = rhs.offset + p * rhs.rs;
            for (j, d) in row.iter_mut().enumerate() {
                *d += a * rhs.data[base + j * rhs.cs];
            }
        }
    }
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major matrix of `cols` columns stored from the start of `data`.
    pub(crate) fn row_major(data: &'a [T], cols: usize) -> Self {
        MatRef {
            data,
            offset: 0,
            rs: cols,
            cs: 1,
        }
    }

    /// The operand from element (`row`, `col`) on.
    pub(crate) fn at(self, row: usize, col: usize) -> Self {
        MatRef {
            offset: self.offset + row * self.rs + col * self.cs,
            ..self
        }
    }

    /// The transpose (a view: only the strides swap).
    pub(crate) fn t(self) -> Self {
        MatRef {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

/// One product `dst[m×n] (row stride dst_rs) = lhs[m×k] · rhs[k×n]` (plus `dst` when
/// `accumulate`), as the split kernels hand it around.
struct Product<'a, T> {
    m: usize,
    n: usize,
    k: usize,
    lhs: MatRef<'a, T>,
    rhs: MatRef<'a, T>,
    dst_rs: usize,
    accumulate: bool,
}

/// Splits one product between `threads` threads, each block a single-threaded gemm, block
/// `p` on worker `p` ([`for_each_part`]): a weight matrix's block then stays with the same
/// core from the forward product through its gradient to the optimiser update (moving
/// cache lines between cores costs more than the arithmetic). A small batch through a
/// dense layer splits the inner dimension ([`split_k_gemm`]); other products split their
/// output by [`MatrixSplit`].
fn split_gemm<T: Numeric>(p: Product<'_, T>, dst: &mut [T], threads: usize) {
    let Product { m, n, k, .. } = p;
    if p.rhs.cs == 1 && m * SPLIT_K_RATIO <= k && k >= 64 * threads && m * n <= SPLIT_K_MAX_OUT {
        split_k_gemm(p, dst, threads);
        return;
    }
    let split = MatrixSplit::new(m, n, threads);
    let out = SharedMut(dst.as_mut_ptr());
    for_each_part(split.parts, |part| {
        let r = split.range(part, m, n);
        if r.is_empty() {
            return;
        }
        let (rows, cols, start) = if split.by_cols {
            (0..m, r.clone(), r.start)
        } else {
            (r.clone(), 0..n, r.start * p.dst_rs)
        };
        // SAFETY: the blocks are disjoint column (or row) ranges of `dst`, which outlives
        // `for_each_part`; the slice spans the block's rows of stride `dst_rs` in `dst`.
        let d = unsafe {
            std::slice::from_raw_parts_mut(
                out.ptr().add(start),
                (rows.len() - 1) * p.dst_rs + cols.len(),
            )
        };
        let (lhs, rhs) = (p.lhs.at(rows.start, 0), p.rhs.at(0, cols.start));
        gemm_into(
            rows.len(),
            cols.len(),
            k,
            d,
            p.dst_rs,
            lhs,
            rhs,
            p.accumulate,
            1,
        );
    });
}

/// A product whose left operand has at most `1/SPLIT_K_RATIO` as many rows as the inner
/// dimension (a small batch through a dense layer) is split along the inner dimension.
const SPLIT_K_RATIO: usize = 4;
/// Largest output (elements) of a product split along the inner dimension (each thread
/// but one writes a partial product of this size, summed afterwards).
const SPLIT_K_MAX_OUT: usize = 1 << 16;

/// Splits a product with a row-major right operand along the inner dimension: thread `p`
/// multiplies the rows of block `p` of the right operand ([`MatrixSplit::rows`], the
/// blocks an optimiser update of that matrix gives the same thread), and the partial
/// products are summed in block order afterwards (so the result does not depend on which
/// thread finishes first). For a small batch through a dense layer each core then reads
/// only the part of the weight matrix it last wrote, instead of every core reading all of
/// it from the others' caches.
fn split_k_gemm<T: Numeric>(p: Product<'_, T>, dst: &mut [T], threads: usize) {
    let Product { m, n, k, .. } = p;
    let split = MatrixSplit::rows(k, threads);
    let mut partials =
        crate::alloc::Scratch(crate::alloc::overwritable::<T>((split.parts - 1) * m * n));
    let (out, part_out) = (
        SharedMut(dst.as_mut_ptr()),
        SharedMut(partials.0.as_mut_ptr()),
    );
    let dst_len = dst.len();
    for_each_part(split.parts, |part| {
        let r = split.range(part, k, n);
        let (lhs, rhs) = (p.lhs.at(0, r.start), p.rhs.at(r.start, 0));
        // SAFETY: part 0 alone writes `dst`; part `p > 0` alone writes its own `m·n`
        // block of `partials`; both outlive `for_each_part`.
        let (d, rs, acc) = unsafe {
            if part == 0 {
                let d = std::slice::from_raw_parts_mut(out.ptr(), dst_len);
                (d, p.dst_rs, p.accumulate)
            } else {
                let at = part_out.ptr().add((part - 1) * m * n);
                (std::slice::from_raw_parts_mut(at, m * n), n, false)
            }
        };
        gemm_into(m, n, r.len(), d, rs, lhs, rhs, acc, 1);
    });
    for part in partials.0.chunks_exact(m * n) {
        for (i, row) in part.chunks_exact(n).enumerate() {
            for (d, &x) in dst[i * p.dst_rs..i * p.dst_rs + n].iter_mut().zip(row) {
                *d += x;
            }
        }
    }
}

impl Tensor {
    /// Matrix product of the last two dimensions with broadcast batch dimensions
    /// (`tf.linalg.matmul`). Both operands need rank >= 2.
    ///
    /// # Shapes
    /// `[..., m, k] x [..., k, n] -> [..., m, n]`
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        self.matmul_t(other, false, false)
    }

    /// `self · wᵀ` for a dense layer's constant weights `w` ([units, depth]: TFLite's and
    /// PyTorch's layout), given `wt`, the same weights stored transposed ([depth, units],
    /// contiguous), as an interpreter keeps them from load: a product of few rows reads
    /// `w` as dot products; one of many reads `wt` as it lies, instead of repacking `w`
    /// on every call. `self` is `[rows, depth]`.
    pub fn matmul_dense(&self, w: &Tensor, wt: &Tensor) -> Result<Tensor> {
        let rows = self.shape().first().copied().unwrap_or(0);
        let transposed =
            matches!((w.shape(), wt.shape()), ([u, d], [d2, u2]) if u == u2 && d == d2);
        if rows >= REPACK_MIN_ROWS && self.rank() == 2 && transposed {
            self.matmul(wt)
        } else {
            self.matmul_t(w, false, true)
        }
    }

    /// [`Tensor::matmul`] with either operand transposed (free: only strides change).
    pub fn matmul_t(&self, other: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
        let dt = same_dtype("matmul", self, other)?;
        // Bool falls through to `with_numeric!`, which rejects it.
        if dt.compute_dtype() != dt {
            let c = dt.compute_dtype();
            return self
                .cast(c)?
                .matmul_t(&other.cast(c)?, transpose_a, transpose_b)?
                .cast(dt);
        }
        if self.rank() < 2 || other.rank() < 2 {
            return Err(Error::shapes(
                "matmul",
                "operands need rank >= 2",
                self.shape(),
                other.shape(),
            ));
        }
        let a = if transpose_a { self.t()? } else { self.clone() };
        let b = if transpose_b {
            other.t()?
        } else {
            other.clone()
        };
        let (ra, rb) = (a.rank(), b.rank());
        let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
        let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
        if k != k2 {
            return Err(Error::shapes(
                "matmul",
                "inner dimensions differ",
                a.shape(),
                b.shape(),
            ));
        }
        let batch = broadcast_shapes("matmul", &a.shape()[..ra - 2], &b.shape()[..rb - 2])
            .map_err(|_| {
                Error::shapes(
                    "matmul",
                    "batch dimensions cannot be broadcast",
                    a.shape(),
                    b.shape(),
                )
            })?;
        let out = with_numeric!(dt, "matmul", T => batched::<T>(&a, &b, &batch, m, k, n))?;
        if let Some(r) = Recorder::new(&[&a, &b]) {
            let (a, b) = (a.clone(), b.clone());
            r.finish(&out, move |g, needs| {
                let ga = needs[0]
                    .then(|| g.matmul_t(&b, false, true)?.sum_to_shape(a.shape()))
                    .transpose()?;
                let gb = needs[1]
                    .then(|| a.matmul_t(g, true, false)?.sum_to_shape(b.shape()))
                    .transpose()?;
                Ok(vec![ga, gb])
            });
        }
        crate::trace::record(
            "matmul",
            crate::trace::OpKind::MatMul {
                transpose_a,
                transpose_b,
            },
            move || format!("transpose_a={transpose_a}, transpose_b={transpose_b}"),
            &[self, other],
            &out,
            move |x| x[0].matmul_t(&x[1], transpose_a, transpose_b),
        );
        Ok(out)
    }
}

fn batched<T: Numeric>(
    a: &Tensor,
    b: &Tensor,
    batch: &[usize],
    m: usize,
    k: usize,
    n: usize,
) -> Result<Tensor> {
    let (ra, rb) = (a.rank(), b.rank());
    let nb = numel(batch);
    let mut full_a = batch.to_vec();
    full_a.extend_from_slice(&a.shape()[ra - 2..]);
    let mut full_b = batch.to_vec();
    full_b.extend_from_slice(&b.shape()[rb - 2..]);
    let sa = a.layout().broadcast_strides("matmul", &full_a)?;
    let sb = b.layout().broadcast_strides("matmul", &full_b)?;
    let nd = batch.len();
    // Offsets of every batch item in each operand.
    let mut offsets = Vec::with_capacity(nb);
    let bstrides = [sa[..nd].to_vec(), sb[..nd].to_vec()];
    if nd == 0 {
        offsets.push([a.layout().offset(), b.layout().offset()]);
    } else {
        let last = nd - 1;
        for_each_run(
            batch,
            &bstrides,
            [a.layout().offset(), b.layout().offset()],
            0,
            nb,
            |[oa, ob], _, len| {
                for i in 0..len {
                    offsets.push([oa + i * bstrides[0][last], ob + i * bstrides[1][last]]);
                }
            },
        );
    }
    let (abuf, bbuf) = (a.buffer::<T>()?, b.buffer::<T>()?);
    // gemm overwrites its output when it does not accumulate (k > 0); otherwise start at 0.
    let mut out = if k > 0 && T::DTYPE.is_float() {
        crate::alloc::overwritable(nb * m * n)
    } else {
        crate::alloc::zeroed(nb * m * n)
    };
    let item = |dst: &mut [T], [oa, ob]: [usize; 2], threads: usize| {
        let lhs = MatRef {
            data: abuf,
            offset: oa,
            rs: sa[nd],
            cs: sa[nd + 1],
        };
        let rhs = MatRef {
            data: bbuf,
            offset: ob,
            rs: sb[nd],
            cs: sb[nd + 1],
        };
        gemm_into(m, n, k, dst, n, lhs, rhs, false, threads);
    };
    let per = m * n * k;
    if nb > 1
        && per < PAR_GEMM_WORK * 8
        && nb * per >= PAR_GEMM_WORK
        && m * n > 0
        && num_threads() > 1
    {
        out.par_chunks_mut(m * n)
            .zip(offsets.par_iter())
            .for_each(|(d, &o)| item(d, o, 1));
    } else if m * n > 0 {
        for (d, &o) in out.chunks_mut(m * n).zip(&offsets) {
            item(d, o, num_threads());
        }
    }
    let mut shape = batch.to_vec();
    shape.extend_from_slice(&[m, n]);
    Tensor::from_vec(out, &shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn matches_naive_product_for_all_layouts() {
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 2), (17, 33, 65), (64, 64, 64)] {
            let av: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let bv: Vec<f64> = (0..k * n).map(|i| ((i * 3) % 13) as f64 - 6.0).collect();
            let expect = naive(&av, &bv, m, k, n);
            let a = Tensor::from_vec(av.clone(), &[m, k]).unwrap();
            let b = Tensor::from_vec(bv.clone(), &[k, n]).unwrap();
            assert_eq!(a.matmul(&b).unwrap().to_vec::<f64>().unwrap(), expect);
            let at = a.t().unwrap().contiguous();
            let bt = b.t().unwrap().contiguous();
            assert_eq!(
                at.matmul_t(&bt, true, true)
                    .unwrap()
                    .to_vec::<f64>()
                    .unwrap(),
                expect
            );
            let ai = a.cast(DType::I64).unwrap();
            let bi = b.cast(DType::I64).unwrap();
            let ci = ai.matmul(&bi).unwrap().to_vec::<i64>().unwrap();
            assert_eq!(ci.iter().map(|&v| v as f64).collect::<Vec<_>>(), expect);
            let af = a.cast(DType::F32).unwrap();
            let bf = b.cast(DType::F32).unwrap();
            let cf = af.matmul(&bf).unwrap().to_vec::<f32>().unwrap();
            assert!(cf
                .iter()
                .zip(&expect)
                .all(|(x, y)| (*x as f64 - y).abs() < 1e-3));
        }
    }

    #[test]
    fn products_split_between_threads_match_naive() {
        // Wide (column blocks), tall (row blocks), a ragged column split and transposed
        // operands, all above the threshold from which a product is split on a worker
        // of the pool (the test runs on one).
        rayon::scope(|_| products_split_on_a_worker_match_naive());
    }

    fn products_split_on_a_worker_match_naive() {
        assert!(rayon::current_thread_index().is_some());
        for &(m, k, n, ta, tb) in &[
            (8, 300, 257, false, false),
            (300, 64, 40, true, false),
            (33, 70, 130, false, true),
            (5, 500, 1000, true, true),
        ] {
            assert!(m * n * k >= PAR_GEMM_WORK);
            let av: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let bv: Vec<f64> = (0..k * n).map(|i| ((i * 3) % 13) as f64 - 6.0).collect();
            let expect = naive(&av, &bv, m, k, n);
            let mut a = Tensor::from_vec(av, &[m, k]).unwrap();
            let mut b = Tensor::from_vec(bv, &[k, n]).unwrap();
            if ta {
                a = a.t().unwrap().contiguous();
            }
            if tb {
                b = b.t().unwrap().contiguous();
            }
            let got = a.matmul_t(&b, ta, tb).unwrap().to_vec::<f64>().unwrap();
            assert_eq!(got, expect, "{m}x{k}x{n} ta={ta} tb={tb}");
        }
    }

    #[test]
    fn column_major_right_operands_are_repacked_exactly() {
        // Large enough (k·n >= REPACK_MIN_ELEMS, m >= REPACK_MIN_ROWS) to take the repack
        // path, with a batch of views at nonzero offsets.
        let (m, k, n) = (9, 300, 257);
        assert!(k * n >= REPACK_MIN_ELEMS && m >= REPACK_MIN_ROWS);
        let a = crate::random::normal(&[2, m, k], 0.0, 1.0, DType::F32, Some(3)).unwrap();
        let bt = crate::random::normal(&[2, n, k], 0.0, 1.0, DType::F32, Some(4)).unwrap();
        let b = bt.transpose(&[0, 2, 1]).unwrap().contiguous();
        let repacked = a.matmul_t(&bt, false, true).unwrap();
        let plain = a.matmul(&b).unwrap();
        assert_eq!(repacked.shape(), &[2, m, n]);
        assert_eq!(
            repacked.to_vec::<f32>().unwrap(),
            plain.to_vec::<f32>().unwrap()
        );
    }

    #[test]
    fn batches_broadcast() {
        let a = Tensor::from_vec((0..12).map(|v| v as f32).collect(), &[2, 2, 3]).unwrap();
        let b = Tensor::from_vec((0..6).map(|v| v as f32).collect(), &[3, 2]).unwrap();
        let c = a.matmul(&b).unwrap();
        assert_eq!(c.shape(), &[2, 2, 2]);
        assert_eq!(
            c.to_vec::<f32>().unwrap(),
            vec![10., 13., 28., 40., 46., 67., 64., 94.]
        );
        let e = Tensor::zeros(&[64, 784], DType::F32)
            .unwrap()
            .matmul(&Tensor::zeros(&[785, 128], DType::F32).unwrap());
        assert_eq!(
            e.unwrap_err().to_string(),
            "matmul: inner dimensions differ: [64, 784] x [785, 128]"
        );
        assert!(a.matmul(&Tensor::zeros(&[3], DType::F32).unwrap()).is_err());
    }
}
