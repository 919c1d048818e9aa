//! Requantisation: an int32 accumulator to an int8 output, as LiteRT's int8 kernels
//! (XNNPACK's, which LiteRT applies by default) do it.

use crate::ir::Activation;

/// Turns int32 accumulators into int8 outputs: `acc * scale` in float32, rounded to
/// nearest (ties to even, the CPU's rounding), plus the output zero point, clamped to the
/// fused activation's range.
#[derive(Clone, Debug)]
pub(crate) struct Requant {
    /// One scale per output channel (`input_scale * filter_scale / output_scale`, in
    /// float32 and in that order), or one for all.
    scales: Vec<f32>,
    zero_point: i32,
    min: i32,
    max: i32,
}

impl Requant {
    /// Requantisation with per-channel (`filter_scales.len() > 1`) or per-tensor scales;
    /// `None` when a scale is not a finite positive number or the activation has no
    /// integer form.
    pub(crate) fn new(
        input_scale: f32,
        filter_scales: &[f32],
        output: (f32, i32),
        act: Activation,
    ) -> Option<Self> {
        let (min, max) = activation_range(act, output.0, output.1)?;
        let scales: Vec<f32> = filter_scales
            .iter()
            .map(|&f| input_scale * f / output.0)
            .collect();
        if scales.is_empty() || scales.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return None;
        }
        Some(Requant {
            scales,
            zero_point: output.1,
            min,
            max,
        })
    }

    /// The scales, one per channel or one for all.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The output zero point.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn zero_point(&self) -> i32 {
        self.zero_point
    }

    /// The output range `[min, max]`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn range(&self) -> (i32, i32) {
        (self.min, self.max)
    }

    /// The output value of accumulator `acc` of output channel `channel`.
    #[inline(always)]
    pub(crate) fn apply(&self, acc: i32, channel: usize) -> i8 {
        let s = if self.scales.len() == 1 {
            self.scales[0]
        } else {
            self.scales[channel]
        };
        let lo = (self.min - self.zero_point) as f32;
        let hi = (self.max - self.zero_point) as f32;
        round_clamped(acc, s, lo, hi, self.zero_point)
    }

    /// The scales repeated per channel for `n` channels (per-tensor parameters made
    /// per-channel), so that [`Self::row`] reads them as a vector.
    pub(crate) fn per_channel(mut self, n: usize) -> Self {
        if self.scales.len() == 1 {
            self.scales = vec![self.scales[0]; n];
        }
        self
    }

    /// `out[c] = apply(acc[c], c)` for a row of channels (scales per channel, see
    /// [`Self::per_channel`]); a loop the compiler vectorises.
    #[inline(always)]
    pub(crate) fn row(&self, acc: &[i32], out: &mut [i8]) {
        let lo = (self.min - self.zero_point) as f32;
        let hi = (self.max - self.zero_point) as f32;
        for ((y, &a), &s) in out.iter_mut().zip(acc).zip(&self.scales) {
            *y = round_clamped(a, s, lo, hi, self.zero_point);
        }
    }
}

/// `round_to_nearest_even(clamp(acc * scale, lo, hi)) + zero_point`, where `lo` and `hi`
/// are integers: clamped first (clamping commutes with rounding to integer bounds), then
/// rounded by adding 1.5 * 2^23, whose float then holds the integer in its low mantissa
/// bits (exact for |v| < 2^22): no libm call, no saturating cast and selects for the
/// clamp, so loops calling this vectorise.
#[inline(always)]
pub(crate) fn round_clamped(acc: i32, scale: f32, lo: f32, hi: f32, zero_point: i32) -> i8 {
    let v = acc as f32 * scale;
    let v = if v < lo { lo } else { v };
    let v = if v > hi { hi } else { v };
    const MAGIC: f32 = 12_582_912.0;
    let rounded = (v + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32;
    (rounded + zero_point) as i8
}

/// [`round_clamped`] of 16 sums at once on AVX-512, with the scales of their 16 channels
/// at `scales`: the int8 results in int32 lanes (within `[lo, hi] + zero_point`). Rounds
/// with the CPU's mode, to nearest even by default, as `round_clamped`.
///
/// # Safety
/// The CPU has AVX-512 F; `scales` points to 16 readable floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) unsafe fn round_clamped_x16(
    v: std::arch::x86_64::__m512i,
    scales: *const f32,
    lo: f32,
    hi: f32,
    zero_point: i32,
) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    // SAFETY: per the function's contract.
    let f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), unsafe { _mm512_loadu_ps(scales) });
    let f = _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps(lo)), _mm512_set1_ps(hi));
    _mm512_add_epi32(_mm512_cvtps_epi32(f), _mm512_set1_epi32(zero_point))
}

/// [`round_clamped`] of 8 sums at once on AVX2, with the scales of their 8 channels at
/// `scales`: the int8 results in int32 lanes, as [`round_clamped_x16`].
///
/// # Safety
/// The CPU has AVX2; `scales` points to 8 readable floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) unsafe fn round_clamped_x8(
    v: std::arch::x86_64::__m256i,
    scales: *const f32,
    lo: f32,
    hi: f32,
    zero_point: i32,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    // SAFETY: per the function's contract.
    let f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), unsafe { _mm256_loadu_ps(scales) });
    let f = _mm256_min_ps(_mm256_max_ps(f, _mm256_set1_ps(lo)), _mm256_set1_ps(hi));
    _mm256_add_epi32(_mm256_cvtps_epi32(f), _mm256_set1_epi32(zero_point))
}

/// The int8 values of two vectors of 8 int32 lanes, all in int8 range, in order: lanes
/// of `q[0]` then of `q[1]` (the saturating packs keep them; the permutes undo the packs'
/// per-128-bit-lane order).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn narrow_x16(q: [std::arch::x86_64::__m256i; 2]) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    let words = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(q[0], q[1]));
    let bytes = _mm256_permute4x64_epi64::<0b00_00_10_00>(_mm256_packs_epi16(words, words));
    _mm256_castsi256_si128(bytes)
}

/// The int8 range `[min, max]` of a tensor with scale `scale` and zero point `zp` after
/// the fused activation `act` (TFLite's `CalculateActivationRangeQuantized`); `None` for
/// activations that have no integer form (tanh).
pub(crate) fn activation_range(act: Activation, scale: f32, zp: i32) -> Option<(i32, i32)> {
    let q = |v: f32| zp.saturating_add((v / scale).round() as i32);
    let (lo, hi) = (-128, 127);
    Some(match act {
        Activation::None => (lo, hi),
        Activation::Relu => (zp.max(lo), hi),
        Activation::Relu6 => (zp.max(lo), q(6.0).min(hi)),
        Activation::ReluN1To1 => (q(-1.0).max(lo), q(1.0).min(hi)),
        Activation::Tanh => return None,
    })
    .filter(|(a, b)| a <= b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_ties_to_even_and_clamps_to_the_activation() {
        let r = Requant::new(1.0, &[0.5], (1.0, 3), Activation::None).unwrap();
        assert_eq!(r.apply(5, 0), 5); // 2.5 -> 2, + 3
        assert_eq!(r.apply(7, 0), 7); // 3.5 -> 4, + 3
        assert_eq!(r.apply(-5, 0), 1); // -2.5 -> -2, + 3
        assert_eq!(r.apply(1000, 0), 127);
        assert_eq!(r.apply(i32::MIN, 0), -128);
        let relu = Requant::new(1.0, &[1.0], (0.5, -10), Activation::Relu6).unwrap();
        assert_eq!(relu.apply(-100, 0), -10);
        assert_eq!(relu.apply(100, 0), 2); // 6 / 0.5 - 10
        assert!(Requant::new(1.0, &[1.0], (0.0, 0), Activation::None).is_none());
        assert!(Requant::new(1.0, &[1.0], (1.0, 0), Activation::Tanh).is_none());
    }
}
