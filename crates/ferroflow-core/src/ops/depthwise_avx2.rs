//! The register-blocked inner loop of the float depthwise kernel on AVX2 (CPUs without
//! AVX-512): `R` output pixels of one row, 8 channels, summed over every tap in `R`
//! registers, each weight vector loaded once per tap for all `R` pixels. The caller runs
//! it twice per block of 16 channels (`depthwise_avx512` does a block in one pass).

use std::arch::x86_64::*;

/// Writes channels `c0..c0 + 8` of the run's `R` output pixels (`out`, `R` whole pixels
/// of `c` channels): each the sum over its taps.
///
/// `rows` holds, per filter row inside the input, the offset in `x` of the run's first
/// input pixel in that input row and the index of the row's first tap; `(kw, c, c0)` are
/// the filter width, the channel count and the first channel; `(step, tap_step)` the
/// distances in `x` between two pixels of the run and between two taps of a filter row.
///
/// # Safety
/// The CPU has AVX2 and FMA. For every row, `offset + (R - 1) * step + (kw - 1) * tap_step
/// + c0 + 8 <= x.len()`, and `(first_tap + kw - 1) * c + c0 + 8 <= wt.len()`; `c0 + 8 <= c`
/// and `out.len() >= R * c`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn run_block<const R: usize>(
    x: &[f32],
    wt: &[f32],
    rows: &[(usize, usize)],
    (kw, c, c0): (usize, usize, usize),
    (step, tap_step): (usize, usize),
    out: &mut [f32],
) {
    debug_assert!(c0 + 8 <= c && out.len() >= R * c);
    let mut acc = [_mm256_setzero_ps(); R];
    for &(row, t0) in rows {
        debug_assert!(row + (R - 1) * step + (kw - 1) * tap_step + c0 + 8 <= x.len());
        debug_assert!((t0 + kw) * c <= wt.len());
        // SAFETY: every load below stays within the bounds of the contract.
        unsafe {
            let mut xp = x.as_ptr().add(row + c0);
            let mut wp = wt.as_ptr().add(t0 * c + c0);
            for _ in 0..kw {
                let w = _mm256_loadu_ps(wp);
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(r * step)), w, *a);
                }
                // Wrapping: past the last tap these point beyond the slices, unread.
                xp = xp.wrapping_add(tap_step);
                wp = wp.wrapping_add(c);
            }
        }
    }
    for (r, a) in acc.into_iter().enumerate() {
        // SAFETY: r * c + c0 + 8 <= R * c <= out.len() (the contract).
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(r * c + c0), a) };
    }
}
