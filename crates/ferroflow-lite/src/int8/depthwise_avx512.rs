//! The depthwise product of one output pixel on AVX-512 (channel multiplier 1): 64
//! channels at a time held in four registers of int32 sums through every tap, then 16, then
//! one; each tap's int8 inputs widened to int32 lanes and multiplied as 16-bit values with
//! weights widened at load (`vpmaddwd`, the weight's upper half zero). Pixels whose taps
//! all lie inside the input take no zero point from each input: their bias holds it.
//! Requantised in the same registers: [`round_clamped_x16`], as [`Requant::row`].

use super::requant::{round_clamped_x16, Requant};
use std::arch::x86_64::*;

/// Whether this CPU runs [`pixel`].
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

/// One output pixel.
pub(crate) struct Pixel<'a> {
    /// The input.
    pub(crate) x: &'a [i8],
    /// The filter, `[taps, channels]`, as 32-bit lanes with the upper half zero.
    pub(crate) w: &'a [i32],
    /// (input offset, filter offset) of each tap inside the input.
    pub(crate) taps: &'a [(usize, usize)],
    pub(crate) bias: &'a [i32],
    /// Taken from every input (0 where the bias already holds `zp * sum(w)`).
    pub(crate) input_zp: i32,
    /// Per channel.
    pub(crate) requant: &'a Requant,
}

impl Pixel<'_> {
    /// The pixel's `out.len()` channels.
    ///
    /// # Safety
    /// The CPU has AVX-512 F and BW ([`available`]); every tap's input and filter rows,
    /// the bias and the scales hold `out.len()` values.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(crate) unsafe fn run(&self, out: &mut [i8]) {
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
            while c + 64 <= n {
                let mut acc = [_mm512_setzero_si512(); 4];
                self.sums_any(c, &mut acc);
                for (j, &a) in acc.iter().enumerate() {
                    self.store(a, c + 16 * j, out);
                }
                c += 64;
            }
            while c + 16 <= n {
                let mut acc = [_mm512_setzero_si512(); 1];
                self.sums_any(c, &mut acc);
                self.store(acc[0], c, out);
                c += 16;
            }
        }
        self.scalar(c, out);
    }

    /// [`Pixel::sums`], without the zero point's subtraction when it is 0.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn sums_any<const R: usize>(&self, c: usize, acc: &mut [__m512i; R]) {
        // SAFETY: as for `sums`.
        unsafe {
            if self.input_zp == 0 {
                self.sums::<R, false>(c, acc)
            } else {
                self.sums::<R, true>(c, acc)
            }
        }
    }

    /// `acc[j]` = the sums of channels `c + 16 j ..`, bias included; `ZP`: the zero point
    /// is taken from each input.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn sums<const R: usize, const ZP: bool>(&self, c: usize, acc: &mut [__m512i; R]) {
        // SAFETY: per `run`'s contract, channels `c..c + 16 R` lie in every row read.
        unsafe {
            let zp = _mm512_set1_epi32(self.input_zp);
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm512_loadu_si512(self.bias.as_ptr().add(c + 16 * j).cast());
            }
            let (x, w) = (self.x.as_ptr().add(c), self.w.as_ptr().add(c));
            for &(xi, wi) in self.taps {
                for (j, a) in acc.iter_mut().enumerate() {
                    let mut xv = _mm512_cvtepi8_epi32(_mm_loadu_si128(x.add(xi + 16 * j).cast()));
                    if ZP {
                        xv = _mm512_sub_epi32(xv, zp);
                    }
                    let wv = _mm512_loadu_si512(w.add(wi + 16 * j).cast());
                    // x - zp and w both fit 16 bits, and w's upper half is zero: the
                    // pairwise 16-bit multiply-add is the exact product.
                    *a = _mm512_add_epi32(*a, _mm512_madd_epi16(xv, wv));
                }
            }
        }
    }

    /// Requantises the 16 sums `v` of channels `c..` into `out`.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn store(&self, v: __m512i, c: usize, out: &mut [i8]) {
        let (min, max) = self.requant.range();
        let zp = self.requant.zero_point();
        // SAFETY: channels `c..c + 16` exist in the scales and `out` (see `run`).
        unsafe {
            let scales = self.requant.scales().as_ptr().add(c);
            let (lo, hi) = ((min - zp) as f32, (max - zp) as f32);
            // In [min, max]: the truncating narrow is exact.
            let q = round_clamped_x16(v, scales, lo, hi, zp);
            _mm_storeu_si128(out.as_mut_ptr().add(c).cast(), _mm512_cvtepi32_epi8(q));
        }
    }

    /// Channels `c..` one at a time.
    pub(super) fn scalar(&self, c: usize, out: &mut [i8]) {
        for (ch, y) in out.iter_mut().enumerate().skip(c) {
            let mut acc = self.bias.get(ch).copied().unwrap_or(0);
            for &(xi, wi) in self.taps {
                let (Some(&x), Some(&w)) = (self.x.get(xi + ch), self.w.get(wi + ch)) else {
                    continue;
                };
                acc = acc.wrapping_add((x as i32 - self.input_zp) * w as i16 as i32);
            }
            *y = self.requant.apply(acc, ch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Activation;

    /// The vector blocks (64, 16) and the one-channel tail equal the scalar sums.
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
        for n in [1usize, 16, 17, 64, 83, 150] {
            let taps: Vec<(usize, usize)> = (0..7).map(|t| (t * 3 * n / 2, t * n)).collect();
            let x: Vec<i8> = (0..8 * 3 * n / 2 + n).map(|_| next()).collect();
            let w: Vec<i32> = (0..7 * n).map(|_| next() as i16 as u16 as i32).collect();
            let bias: Vec<i32> = (0..n).map(|j| j as i32 * 31 - 700).collect();
            let scales: Vec<f32> = (0..n).map(|j| 0.005 + j as f32 * 1e-5).collect();
            let requant = Requant::new(1.0, &scales, (1.0, 5), Activation::None).unwrap();
            let p = Pixel {
                x: &x,
                w: &w,
                taps: &taps,
                bias: &bias,
                input_zp: -9,
                requant: &requant,
            };
            let (mut fast, mut slow) = (vec![0i8; n], vec![0i8; n]);
            // SAFETY: `available()` above.
            unsafe { p.run(&mut fast) };
            p.scalar(0, &mut slow);
            assert_eq!(fast, slow, "{n} channels");
        }
    }
}
