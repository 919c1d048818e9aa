//! The register tile of the packed float convolution on AVX2 (CPUs without AVX-512):
//! `M` output pixels (at most [`MR`]) by one sliver of 16 output channels, summed over
//! every tap and input channel in `2 * M` registers of 8 lanes. Each step loads the
//! sliver's two filter vectors once for all `M` pixels and broadcasts one input value per
//! pixel: 12 accumulators, 2 filter vectors and a broadcast fill 15 of the 16 registers.

use super::conv_packed::Tile;
use std::arch::x86_64::*;

/// Most output pixels of one tile.
pub(super) const MR: usize = 6;

/// Computes and stores one tile of one sliver (`Tile::last_lanes` channels of it).
///
/// # Safety
/// The CPU has AVX2 and FMA. For every tap `t < rows.len()` and pixel `r < M`,
/// `rows[t][r]` points at `depth` readable floats; `sliver` at `rows.len() * depth * 16`
/// and `bias` (and `scale` unless null) at 16 readable floats; for `r < M`, `out + r * out_stride` at `last_lanes`
/// writable floats that no other thread touches.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn run<const M: usize>(t: &Tile<'_>) {
    // SAFETY: every access below stays within the bounds of the contract.
    unsafe {
        let bias = [_mm256_loadu_ps(t.bias), _mm256_loadu_ps(t.bias.add(8))];
        // With a scale the sums start from zero and take the bias after it.
        let mut acc = if t.scale.is_null() {
            [bias; M]
        } else {
            [[_mm256_setzero_ps(); 2]; M]
        };
        let mut w = t.sliver;
        for rows in t.rows {
            let mut at = [std::ptr::null::<f32>(); M];
            at.copy_from_slice(&rows[..M]);
            for _ in 0..t.depth {
                let b = [_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(8))];
                for r in 0..M {
                    let a = _mm256_broadcast_ss(&*at[r]);
                    acc[r][0] = _mm256_fmadd_ps(a, b[0], acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(a, b[1], acc[r][1]);
                    at[r] = at[r].add(1);
                }
                w = w.add(16);
            }
        }
        if !t.scale.is_null() {
            let s = [_mm256_loadu_ps(t.scale), _mm256_loadu_ps(t.scale.add(8))];
            for row in acc.iter_mut() {
                for v in 0..2 {
                    row[v] = _mm256_fmadd_ps(row[v], s[v], bias[v]);
                }
            }
        }
        if let Some((lo, hi)) = t.clamp {
            let (lo, hi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
            for row in acc.iter_mut() {
                for a in row.iter_mut() {
                    *a = _mm256_min_ps(_mm256_max_ps(*a, lo), hi);
                }
            }
        }
        let lanes = t.last_lanes.min(16);
        for (r, acc) in acc.iter().enumerate() {
            let dst = t.out.add(r * t.out_stride);
            if lanes == 16 {
                _mm256_storeu_ps(dst, acc[0]);
                _mm256_storeu_ps(dst.add(8), acc[1]);
            } else {
                for (v, &y) in acc.iter().enumerate() {
                    let n = lanes.saturating_sub(8 * v).min(8);
                    if n == 8 {
                        _mm256_storeu_ps(dst.add(8 * v), y);
                    } else if n > 0 {
                        _mm256_maskstore_ps(dst.add(8 * v), lane_mask(n), y);
                    }
                }
            }
        }
    }
}

/// A mask of the first `n` (0 to 8) lanes for `_mm256_maskstore_ps`.
#[target_feature(enable = "avx2")]
fn lane_mask(n: usize) -> __m256i {
    let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), index)
}
