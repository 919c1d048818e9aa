//! The int8 matrix product of FULLY_CONNECTED and CONV_2D: int8 rows times int8 weight
//! rows, accumulated in int32, requantised to int8.

use super::requant::Requant;
use rayon::prelude::*;

/// Multiply-adds from which a product is split across threads.
const PAR_MIN_MACS: usize = 1 << 20;

/// Rows per thread below which a product is split into one block of rows per thread
/// (above, into four per thread, for balance).
const FEW_ROWS: usize = 64;

vectorised!(gemm_rows: PackedWeights => rows_into(rows: &[i8], out: &mut [i8]));

/// Weights `[n, k]` (int8, zero point 0) with their bias folded with the input's zero
/// point, ready to multiply rows of an int8 input.
#[derive(Clone, Debug)]
pub(crate) struct PackedWeights {
    weights: Vec<i8>,
    /// Per output channel: `bias - input_zero_point * sum(weights of the channel)`.
    offsets: Vec<i32>,
    /// Depth (row length).
    pub(crate) k: usize,
    /// Output channels.
    pub(crate) n: usize,
    requant: Requant,
    /// The same weights packed for AVX-512 VNNI, on CPUs that have it.
    #[cfg(target_arch = "x86_64")]
    vnni: Option<super::vnni::VnniWeights>,
    /// The same weights widened for AVX2, on CPUs that have it but not VNNI.
    #[cfg(target_arch = "x86_64")]
    avx2: Option<super::madd_avx2::MaddWeights>,
}

impl PackedWeights {
    /// Packs `weights` (`n` rows of `k`), `bias` (`n` values or none) for inputs with zero
    /// point `input_zp`.
    pub(crate) fn new(
        weights: Vec<i8>,
        bias: Option<Vec<i32>>,
        n: usize,
        input_zp: i32,
        requant: Requant,
    ) -> Option<Self> {
        if n == 0 || !weights.len().is_multiple_of(n) || bias.as_ref().is_some_and(|b| b.len() != n)
        {
            return None;
        }
        let k = weights.len() / n;
        if k == 0 {
            // A filter with no depth (a zero-sized dimension in a file): the float path
            // gives its error or its empty result.
            return None;
        }
        let sums: Vec<i32> = weights
            .chunks_exact(k)
            .map(|row| row.iter().fold(0i32, |s, &w| s.wrapping_add(w as i32)))
            .collect();
        let offsets = sums
            .iter()
            .enumerate()
            .map(|(j, &sum)| {
                let b = bias.as_ref().map_or(0, |b| b[j]);
                b.wrapping_sub(input_zp.wrapping_mul(sum))
            })
            .collect::<Vec<i32>>();
        #[cfg(target_arch = "x86_64")]
        let vnni = super::vnni::available()
            .then(|| super::vnni::VnniWeights::new(&weights, n, k, &offsets, &sums, &requant));
        #[cfg(target_arch = "x86_64")]
        let avx2 = (vnni.is_none() && super::madd_avx2::available())
            .then(|| super::madd_avx2::MaddWeights::new(&weights, n, k, &offsets, &requant));
        Some(PackedWeights {
            weights,
            offsets,
            k,
            n,
            requant,
            #[cfg(target_arch = "x86_64")]
            vnni,
            #[cfg(target_arch = "x86_64")]
            avx2,
        })
    }

    /// `out[r, j] = requant(offsets[j] + rows[r] . weights[j])` for every row of `rows`
    /// (`out.len() / n` rows of `k`).
    pub(crate) fn multiply(&self, rows: &[i8], out: &mut [i8]) {
        let m = out.len() / self.n;
        debug_assert_eq!(rows.len(), m * self.k);
        let macs = m * self.n * self.k;
        let threads = ferroflow_core::num_threads();
        if macs >= PAR_MIN_MACS && m > 1 && threads > 1 {
            // Each block of rows streams all the weights: few rows (a late, small feature
            // map) go one block per thread, so the weights are read once per thread.
            let blocks = if m < threads * FEW_ROWS {
                threads
            } else {
                threads * 4
            };
            let per = m.div_ceil(blocks).max(1);
            out.par_chunks_mut(per * self.n)
                .zip(rows.par_chunks(per * self.k))
                .for_each(|(o, r)| gemm_rows(self, r, o));
        } else {
            gemm_rows(self, rows, out);
        }
    }

    #[inline(always)]
    pub(crate) fn rows_into(&self, rows: &[i8], out: &mut [i8]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(v) = &self.vnni {
            v.multiply(rows, self.k, out, &mut Vec::new());
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(v) = &self.avx2 {
            v.multiply(rows, self.k, out, &mut Vec::new());
            return;
        }
        let (k, n) = (self.k, self.n);
        for (row, o) in rows.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            // Four weight rows per pass over the input row.
            let mut j = 0;
            while j + 4 <= n {
                let w = &self.weights[j * k..(j + 4) * k];
                let acc = dot4(row, w, k);
                for t in 0..4 {
                    o[j + t] = self
                        .requant
                        .apply(self.offsets[j + t].wrapping_add(acc[t]), j + t);
                }
                j += 4;
            }
            for (jj, y) in o.iter_mut().enumerate().skip(j) {
                let acc = dot(row, &self.weights[jj * k..(jj + 1) * k]);
                *y = self.requant.apply(self.offsets[jj].wrapping_add(acc), jj);
            }
        }
    }
}

/// `a . b` in int32 (wrapping, as the hardware's adds).
#[inline(always)]
pub(crate) fn dot(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .fold(0i32, |s, (&x, &y)| s.wrapping_add(x as i32 * y as i32))
}

/// `a` times the four rows of `w` (each `k` long).
#[inline(always)]
fn dot4(a: &[i8], w: &[i8], k: usize) -> [i32; 4] {
    let (w0, rest) = w.split_at(k);
    let (w1, rest) = rest.split_at(k);
    let (w2, w3) = rest.split_at(k);
    let mut acc = [0i32; 4];
    for i in 0..k.min(a.len()).min(w3.len()) {
        let x = a[i] as i32;
        acc[0] = acc[0].wrapping_add(x * w0[i] as i32);
        acc[1] = acc[1].wrapping_add(x * w1[i] as i32);
        acc[2] = acc[2].wrapping_add(x * w2[i] as i32);
        acc[3] = acc[3].wrapping_add(x * w3[i] as i32);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Activation;

    /// The packed product (VNNI or AVX2 where the CPU has them) equals dot products
    /// requantised one by one, for sizes that leave partial blocks, rows and depth groups.
    #[test]
    fn packed_product_equals_plain_dot_products() {
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as i8
        };
        // The last three run on AMX tiles where the CPU has them (16 rows or more, depth
        // filling most of 64): partial row tiles, one and two channel blocks.
        for (m, n, k) in [
            (9, 37, 29),
            (1, 16, 4),
            (5, 3, 130),
            (64, 33, 7),
            (40, 37, 130),
            (33, 16, 64),
            (70, 50, 250),
            (64, 100, 40),
        ] {
            let w: Vec<i8> = (0..n * k).map(|_| next()).collect();
            let x: Vec<i8> = (0..m * k).map(|_| next()).collect();
            let b: Vec<i32> = (0..n).map(|j| j as i32 * 97 - 1000).collect();
            let scales: Vec<f32> = (0..n).map(|j| 0.0007 + j as f32 * 1e-5).collect();
            let rq = Requant::new(1.0, &scales, (1.0, -3), Activation::Relu).unwrap();
            let p = PackedWeights::new(w.clone(), Some(b.clone()), n, -5, rq.clone()).unwrap();
            let mut out = vec![0i8; m * n];
            p.multiply(&x, &mut out);
            for r in 0..m {
                for j in 0..n {
                    let acc: i32 = (0..k)
                        .map(|d| (x[r * k + d] as i32 + 5) * w[j * k + d] as i32)
                        .sum::<i32>()
                        + b[j];
                    assert_eq!(
                        out[r * n + j],
                        rq.apply(acc, j),
                        "m {m} n {n} k {k} at {r},{j}"
                    );
                }
            }
        }
    }

    #[test]
    fn weights_without_depth_are_not_packed() {
        let rq = Requant::new(1.0, &[1.0], (1.0, 0), Activation::None).unwrap();
        assert!(PackedWeights::new(Vec::new(), None, 3, 0, rq.clone()).is_none());
        assert!(PackedWeights::new(vec![1; 6], Some(vec![0; 2]), 3, 0, rq).is_none());
    }

    #[test]
    fn product_with_zero_point_and_bias() {
        // x = [[1, 2, 3]] with zero point 1: [0, 1, 2]; weights rows [1, 1, 1], [2, 0, -1].
        let rq = Requant::new(1.0, &[1.0], (1.0, 0), Activation::None).unwrap();
        for n_extra in [0usize, 4] {
            let mut w = vec![1, 1, 1, 2, 0, -1];
            let mut b = vec![10, -1];
            for _ in 0..n_extra {
                w.extend([0, 0, 1]);
            }
            b.resize(2 + n_extra, 0);
            let n = 2 + n_extra;
            let p = PackedWeights::new(w, Some(b), n, 1, rq.clone()).unwrap();
            let mut out = vec![0i8; n];
            p.multiply(&[1, 2, 3], &mut out);
            assert_eq!(out[0], 13);
            assert_eq!(out[1], -3);
            if n_extra > 0 {
                assert_eq!(out[2], 2);
            }
        }
    }
}
