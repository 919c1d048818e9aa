//! The depthwise product of one output pixel on AVX2 (CPUs without AVX-512): the
//! [`Pixel`] of `depthwise_avx512` with vectors of 8 int32 lanes: 32 channels at a time
//! in four registers of sums through every tap, then 8, then one; each tap's int8 inputs
//! widened to int32 lanes and multiplied as 16-bit values with the weights widened at
//! load (`vpmaddwd`, exact). Requantised in the same registers, as [`Requant::row`].
//!
//! [`Requant::row`]: super::requant::Requant::row

use super::depthwise_avx512::Pixel;
use super::requant::{narrow_x16, round_clamped_x8};
use std::arch::x86_64::*;

/// Whether this CPU runs [`Pixel::run_avx2`].
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2")
}

impl Pixel<'_> {
    /// The pixel's `out.len()` channels.
    ///
    /// # Safety
    /// The CPU has AVX2 ([`available`]); every tap's input and filter rows, the bias and
    /// the scales hold `out.len()` values.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn run_avx2(&self, out: &mut [i8]) {
        let n = out.len();
        debug_assert!(self.bias.len() >= n && self.requant.scales().len() >= n);
        debug_assert!(self
            .taps
            .iter()
            .all(|&(xi, wi)| xi + n <= self.x.len() && wi + n <= self.w.len()));
        let mut c = 0;
        // SAFETY: every tap's input and filter rows hold `n` values (the contract), as
        // do the bias, the scales and `out`.
        unsafe {
            while c + 32 <= n {
                let mut acc = [_mm256_setzero_si256(); 4];
                self.sums_x8(c, &mut acc);
                self.store_x16([acc[0], acc[1]], c, out);
                self.store_x16([acc[2], acc[3]], c + 16, out);
                c += 32;
            }
            while c + 16 <= n {
                let mut acc = [_mm256_setzero_si256(); 2];
                self.sums_x8(c, &mut acc);
                self.store_x16(acc, c, out);
                c += 16;
            }
        }
        self.scalar(c, out);
    }

    /// `acc[j]` = the sums of channels `c + 8 j ..`, bias included, the input zero point
    /// taken from each input.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn sums_x8<const R: usize>(&self, c: usize, acc: &mut [__m256i; R]) {
        // SAFETY: per `run_avx2`'s contract, channels `c..c + 8 R` lie in every row read.
        unsafe {
            let zp = _mm256_set1_epi32(self.input_zp);
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_loadu_si256(self.bias.as_ptr().add(c + 8 * j).cast());
            }
            let (x, w) = (self.x.as_ptr().add(c), self.w.as_ptr().add(c));
            for &(xi, wi) in self.taps {
                for (j, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_cvtepi8_epi32(_mm_loadl_epi64(x.add(xi + 8 * j).cast()));
                    let xv = _mm256_sub_epi32(xv, zp);
                    let wv = _mm256_loadu_si256(w.add(wi + 8 * j).cast());
                    // x - zp and w both fit 16 bits, and w's upper half is zero: the
                    // pairwise 16-bit multiply-add is the exact product.
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(xv, wv));
                }
            }
        }
    }

    /// Requantises the 16 sums `v` of channels `c..` into `out`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn store_x16(&self, v: [__m256i; 2], c: usize, out: &mut [i8]) {
        let (min, max) = self.requant.range();
        let zp = self.requant.zero_point();
        let (lo, hi) = ((min - zp) as f32, (max - zp) as f32);
        // SAFETY: channels `c..c + 16` exist in the scales and `out` (see `run_avx2`).
        unsafe {
            let scales = self.requant.scales().as_ptr().add(c);
            let q = [
                round_clamped_x8(v[0], scales, lo, hi, zp),
                round_clamped_x8(v[1], scales.add(8), lo, hi, zp),
            ];
            _mm_storeu_si128(out.as_mut_ptr().add(c).cast(), narrow_x16(q));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::requant::Requant;
    use crate::ir::Activation;

    /// The vector blocks (32, 16) and the one-channel tail equal the scalar sums.
    #[test]
    fn blocks_equal_the_scalar_sums() {
        if !available() {
            return;
        }
        let mut seed = 11u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as i8
        };
        for n in [1usize, 16, 17, 32, 64, 83, 150] {
            let taps: Vec<(usize, usize)> = (0..7).map(|t| (t * 3 * n / 2, t * n)).collect();
            let x: Vec<i8> = (0..8 * 3 * n / 2 + n).map(|_| next()).collect();
            let w: Vec<i32> = (0..7 * n).map(|_| next() as i16 as u16 as i32).collect();
            let bias: Vec<i32> = (0..n).map(|j| j as i32 * 31 - 700).collect();
            let scales: Vec<f32> = (0..n).map(|j| 0.005 + j as f32 * 1e-5).collect();
            let requant = Requant::new(1.0, &scales, (1.0, 5), Activation::None).unwrap();
            for input_zp in [0, -9] {
                let p = Pixel {
                    x: &x,
                    w: &w,
                    taps: &taps,
                    bias: &bias,
                    input_zp,
                    requant: &requant,
                };
                let (mut fast, mut slow) = (vec![0i8; n], vec![0i8; n]);
                // SAFETY: `available()` above.
                unsafe { p.run_avx2(&mut fast) };
                p.scalar(0, &mut slow);
                assert_eq!(fast, slow, "{n} channels, input zero point {input_zp}");
            }
        }
    }
}
