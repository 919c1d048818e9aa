//! The int8 product on AVX2 (CPUs without AVX-512 VNNI): inputs and weights widened to
//! 16 bits, multiplied in pairs of depths and summed into int32 lanes by `vpmaddwd`,
//! exact for every int8 value (XNNPACK's AVX2 kernels take the same instruction; the
//! 8-bit `vpmaddubsw` would saturate). Requantisation as the portable path: float32
//! multiply, round to nearest even, clamp, zero point.

use super::requant::{narrow_x16, round_clamped_x8, Requant};
use std::arch::x86_64::*;

/// Output channels per block (two 256-bit registers of int32 lanes).
const LANES: usize = 16;
/// Rows per pass: 12 accumulators, 2 weight vectors and a broadcast input pair fill 15 of
/// the 16 registers.
const ROWS: usize = 6;

/// Whether this CPU runs [`MaddWeights`].
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2")
}

/// Weights widened to 16 bits and packed in blocks of 16 channels by pairs of depths,
/// with their offsets and requantisation parameters padded to whole blocks.
#[derive(Clone, Debug)]
pub(crate) struct MaddWeights {
    /// Per block, per pair of depths `g`, per channel `c`: `w[c][2g], w[c][2g + 1]`.
    packed: Vec<i16>,
    /// Depth rounded up to a multiple of 2 (the row stride of the widened inputs).
    k2: usize,
    n: usize,
    blocks: usize,
    offsets: Vec<i32>,
    scales: Vec<f32>,
    /// The output range less the zero point, in float.
    lo: f32,
    hi: f32,
    zero_point: i32,
}

impl MaddWeights {
    /// Packs `weights` (`n` rows of `k`); `offsets[j]` already includes everything but
    /// `sum(x * w)`; `requant` gives the scales, output zero point and range.
    pub(crate) fn new(
        weights: &[i8],
        n: usize,
        k: usize,
        offsets: &[i32],
        requant: &Requant,
    ) -> Self {
        let (scales, zero_point, range) = (requant.scales(), requant.zero_point(), requant.range());
        let k2 = k.next_multiple_of(2);
        let blocks = n.div_ceil(LANES);
        let pairs = k2 / 2;
        let mut packed = vec![0i16; blocks * LANES * k2];
        for j in 0..n {
            let (jb, c) = (j / LANES, j % LANES);
            for d in 0..k {
                let (g, t) = (d / 2, d % 2);
                packed[((jb * pairs + g) * LANES + c) * 2 + t] = weights[j * k + d] as i16;
            }
        }
        let offsets = (0..blocks * LANES)
            .map(|j| offsets.get(j).copied().unwrap_or(0))
            .collect();
        let scales = (0..blocks * LANES)
            .map(|j| match scales.len() {
                1 => scales[0],
                _ => scales.get(j).copied().unwrap_or(1.0),
            })
            .collect();
        MaddWeights {
            packed,
            k2,
            n,
            blocks,
            offsets,
            scales,
            lo: (range.0 - zero_point) as f32,
            hi: (range.1 - zero_point) as f32,
            zero_point,
        }
    }

    /// `out` (`rows` x n) for `rows` int8 input rows of depth `k`, widened to rows of
    /// stride `k2` in `buf` a tile at a time.
    pub(crate) fn multiply(&self, input: &[i8], k: usize, out: &mut [i8], buf: &mut Vec<i16>) {
        let m = out.len() / self.n.max(1);
        let n = self.n;
        super::row_tiles::for_converted_tiles(
            input,
            k,
            m,
            self.k2,
            buf,
            i16::from,
            |x, r, rows| {
                // SAFETY: `available()` was checked when these weights were made (the only
                // constructor's caller does); the slices hold `rows` rows of `k2` and of `n`.
                unsafe { self.kernel(x, rows, &mut out[r * n..(r + rows) * n]) }
            },
        );
    }

    /// `out` (`m` rows x n) for the widened rows `x`: per block of 16 channels (its
    /// weights stay in L1), [`ROWS`] rows per pass.
    #[target_feature(enable = "avx2")]
    unsafe fn kernel(&self, x: &[i16], m: usize, out: &mut [i8]) {
        debug_assert!(x.len() >= m * self.k2 && out.len() >= m * self.n);
        let pairs = self.k2 / 2;
        for jb in 0..self.blocks {
            // SAFETY: block jb holds `pairs` groups of 2 * LANES values.
            let w = unsafe { self.packed.as_ptr().add(jb * LANES * self.k2) };
            let mut r = 0;
            while r < m {
                let mr = (m - r).min(ROWS);
                // Rows past the end repeat the last one (computed, not stored).
                // SAFETY: rows r..r + mr exist.
                let a: [*const i16; ROWS] = std::array::from_fn(|i| unsafe {
                    x.as_ptr().add((r + i.min(mr - 1)) * self.k2)
                });
                let mut acc = [[_mm256_setzero_si256(); 2]; ROWS];
                for g in 0..pairs {
                    // SAFETY: pair g of block jb, and depths 2g, 2g + 1 of each row.
                    unsafe {
                        let b0 = _mm256_loadu_si256(w.add(g * 2 * LANES).cast());
                        let b1 = _mm256_loadu_si256(w.add(g * 2 * LANES + LANES).cast());
                        for (row, &p) in acc.iter_mut().zip(&a) {
                            let xv =
                                _mm256_set1_epi32((p.add(2 * g) as *const i32).read_unaligned());
                            row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(xv, b0));
                            row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(xv, b1));
                        }
                    }
                }
                for (i, row) in acc.iter().enumerate().take(mr) {
                    // SAFETY: row r + i and block jb exist.
                    unsafe { self.store(row, r + i, jb, out) };
                }
                r += ROWS;
            }
        }
    }

    /// Requantises the int32 sums `v` (16 channels) of block `jb` of row `row` into `out`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn store(&self, v: &[__m256i; 2], row: usize, jb: usize, out: &mut [i8]) {
        let ch = jb * LANES;
        let count = self.n.saturating_sub(ch).min(LANES);
        // SAFETY: the offsets and scales are padded to whole blocks; the row's channels
        // ch..ch + count lie in `out`.
        unsafe {
            // A loop, not a closure: a closure does not get this function's target
            // features, and an intrinsic called from it is not inlined.
            let mut q = [_mm256_setzero_si256(); 2];
            for (h, q) in q.iter_mut().enumerate() {
                let at = ch + 8 * h;
                let offsets = _mm256_loadu_si256(self.offsets.as_ptr().add(at).cast());
                let s = _mm256_add_epi32(v[h], offsets);
                let scales = self.scales.as_ptr().add(at);
                *q = round_clamped_x8(s, scales, self.lo, self.hi, self.zero_point);
            }
            let bytes = narrow_x16(q);
            let dst = out.as_mut_ptr().add(row * self.n + ch);
            if count == LANES {
                _mm_storeu_si128(dst.cast(), bytes);
            } else {
                let mut tmp = [0i8; LANES];
                _mm_storeu_si128(tmp.as_mut_ptr().cast(), bytes);
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, count);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Activation;

    /// The AVX2 product equals dot products requantised one by one, for sizes that leave
    /// partial blocks, passes of rows, tiles and odd depths (on AVX-512 CPUs too, which
    /// run VNNI in the interpreter).
    #[test]
    fn product_equals_plain_dot_products() {
        if !available() {
            return;
        }
        let mut seed = 5u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as i8
        };
        for (m, n, k) in [
            (1, 1, 1),
            (9, 37, 29),
            (7, 16, 4),
            (70, 50, 250),
            (130, 33, 16),
        ] {
            let w: Vec<i8> = (0..n * k).map(|_| next()).collect();
            let x: Vec<i8> = (0..m * k).map(|_| next()).collect();
            let offsets: Vec<i32> = (0..n).map(|j| j as i32 * 97 - 1000).collect();
            let scales: Vec<f32> = (0..n).map(|j| 0.0007 + j as f32 * 1e-5).collect();
            let rq = Requant::new(1.0, &scales, (1.0, -3), Activation::Relu).unwrap();
            let p = MaddWeights::new(&w, n, k, &offsets, &rq);
            let mut out = vec![0i8; m * n];
            p.multiply(&x, k, &mut out, &mut Vec::new());
            for r in 0..m {
                for j in 0..n {
                    let acc: i32 = (0..k)
                        .map(|d| x[r * k + d] as i32 * w[j * k + d] as i32)
                        .sum::<i32>()
                        + offsets[j];
                    let want = rq.apply(acc, j);
                    assert_eq!(out[r * n + j], want, "m {m} n {n} k {k} at {r},{j}");
                }
            }
        }
    }
}
