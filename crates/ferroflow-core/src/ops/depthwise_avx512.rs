//! The register-blocked inner loop of the float depthwise kernel on AVX-512: `R` output
//! pixels of one row, 16 channels, summed over every tap in `R` registers, each weight
//! vector loaded once per tap for all `R` pixels. Written with intrinsics because the
//! portable form (arrays of 16 lanes) lets LLVM vectorise across the `R` pixels instead,
//! with gathers.

use std::arch::x86_64::*;

/// Writes channels `c0..c0 + 16` of the run's `R` output pixels (`out`, `R` whole
/// pixels of `c` channels): each the sum over its taps.
///
/// `rows` holds, per filter row inside the input, the offset in `x` of the run's first
/// input pixel in that input row and the index of the row's first tap; `(kw, c, c0)` are
/// the filter width, the channel count and the first channel; `(step, tap_step)` the
/// distances in `x` between two pixels of the run and between two taps of a filter row.
///
/// # Safety
/// The CPU has AVX-512F. For every row, `offset + (R - 1) * step + (kw - 1) * tap_step + c0
/// + 16 <= x.len()`, and `(first_tap + kw - 1) * c + c0 + 16 <= wt.len()`; `c0 + 16 <= c`
/// and `out.len() >= R * c`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn run_block<const R: usize>(
    x: &[f32],
    wt: &[f32],
    rows: &[(usize, usize)],
    (kw, c, c0): (usize, usize, usize),
    (step, tap_step): (usize, usize),
    out: &mut [f32],
) {
    debug_assert!(c0 + 16 <= c && out.len() >= R * c);
    let mut acc = [_mm512_setzero_ps(); R];
    for &(row, t0) in rows {
        debug_assert!(row + (R - 1) * step + (kw - 1) * tap_step + c0 + 16 <= x.len());
        debug_assert!((t0 + kw) * c <= wt.len());
        // SAFETY: every load below stays within the bounds of the contract.
        unsafe {
            let mut xp = x.as_ptr().add(row + c0);
            let mut wp = wt.as_ptr().add(t0 * c + c0);
            for _ in 0..kw {
                let w = _mm512_loadu_ps(wp);
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(r * step)), w, *a);
                }
                // Wrapping: past the last tap these point beyond the slices, unread.
                xp = xp.wrapping_add(tap_step);
                wp = wp.wrapping_add(c);
            }
        }
    }
    for (r, a) in acc.into_iter().enumerate() {
        // SAFETY: r * c + c0 + 16 <= R * c <= out.len() (the contract).
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(r * c + c0), a) };
    }
}

/// [`run_block`] for a filter row of `KW` taps without dilation at stride `S` (a 3x3 or
/// 5x5 depthwise convolution at stride 1 or 2): the `S * (R - 1) + KW` input vectors a filter
/// row reaches are loaded once each and kept in registers for all `KW * R` multiply-adds,
/// where [`run_block`] loads one per multiply-add (the run's neighbouring pixels share
/// their inputs). The same sums in the same order.
///
/// # Safety
/// As [`run_block`] with `step = S * c`, `tap_step = c` and `kw = KW`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn run_block_strided<const R: usize, const S: usize, const KW: usize>(
    x: &[f32],
    wt: &[f32],
    rows: &[(usize, usize)],
    (c, c0): (usize, usize),
    out: &mut [f32],
) {
    const { assert!(S * (R - 1) + KW <= 24) };
    debug_assert!(c0 + 16 <= c && out.len() >= R * c);
    let mut acc = [_mm512_setzero_ps(); R];
    let mut v = [_mm512_setzero_ps(); 24];
    for &(row, t0) in rows {
        debug_assert!(row + (S * (R - 1) + KW - 1) * c + c0 + 16 <= x.len());
        debug_assert!((t0 + KW) * c <= wt.len());
        // SAFETY: every load below stays within the bounds of the contract.
        unsafe {
            let xp = x.as_ptr().add(row + c0);
            let wp = wt.as_ptr().add(t0 * c + c0);
            for (q, v) in v.iter_mut().enumerate().take(S * (R - 1) + KW) {
                *v = _mm512_loadu_ps(xp.add(q * c));
            }
            for j in 0..KW {
                let w = _mm512_loadu_ps(wp.add(j * c));
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(v[S * r + j], w, *a);
                }
            }
        }
    }
    for (r, a) in acc.into_iter().enumerate() {
        // SAFETY: r * c + c0 + 16 <= R * c <= out.len() (the contract).
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(r * c + c0), a) };
    }
}
