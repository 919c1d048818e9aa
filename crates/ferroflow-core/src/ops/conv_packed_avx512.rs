//! The register tile of the packed float convolution on AVX-512: `M` output pixels (at
//! most [`MR`]) by `16 * V` output channels, summed over every tap and input channel in
//! `M * V` registers. Each step loads `V` vectors of the packed filter once for all `M`
//! pixels and broadcasts one input value per pixel (folded into the multiply-add).

use super::conv_packed::Tile;
use std::arch::x86_64::*;

/// Most output pixels of one tile.
pub(super) const MR: usize = 8;

/// Computes and stores one tile.
///
/// # Safety
/// The CPU has AVX-512F. For every tap `t < rows.len()` and pixel `r < M`,
/// `rows[t][r]` points at `depth` readable floats; `sliver + v * sliver_len` (`v < V`) at
/// `rows.len() * depth * 16` and `bias` (and `scale` unless null) at `16 * V` readable
/// floats; for `r < M`, `out + r * out_stride` at
/// `16 * (V - 1) + last_lanes` writable floats that no other thread touches.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn run<const M: usize, const V: usize>(t: &Tile<'_>) {
    // SAFETY: every access below stays within the bounds of the contract.
    unsafe {
        let mut bias = [_mm512_setzero_ps(); V];
        for (v, b) in bias.iter_mut().enumerate() {
            *b = _mm512_loadu_ps(t.bias.add(16 * v));
        }
        // With a scale the sums start from zero and take the bias after it.
        let mut acc = if t.scale.is_null() {
            [bias; M]
        } else {
            [[_mm512_setzero_ps(); V]; M]
        };
        let mut w = t.sliver;
        for rows in t.rows {
            for k in 0..t.depth {
                let mut b = [_mm512_setzero_ps(); V];
                for (v, b) in b.iter_mut().enumerate() {
                    *b = _mm512_loadu_ps(w.add(t.sliver_len * v));
                }
                for r in 0..M {
                    let a = _mm512_set1_ps(*rows[r].add(k));
                    for v in 0..V {
                        acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
                    }
                }
                w = w.add(16);
            }
        }
        if !t.scale.is_null() {
            for v in 0..V {
                let s = _mm512_loadu_ps(t.scale.add(16 * v));
                for row in acc.iter_mut() {
                    row[v] = _mm512_fmadd_ps(row[v], s, bias[v]);
                }
            }
        }
        if let Some((lo, hi)) = t.clamp {
            let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
            for row in acc.iter_mut() {
                for a in row.iter_mut() {
                    *a = _mm512_min_ps(_mm512_max_ps(*a, lo), hi);
                }
            }
        }
        let mask: __mmask16 = if t.last_lanes >= 16 {
            0xffff
        } else {
            (1u16 << t.last_lanes) - 1
        };
        for (r, acc) in acc.iter().enumerate() {
            let dst = t.out.add(r * t.out_stride);
            for (v, &y) in acc.iter().enumerate() {
                if v + 1 < V || t.last_lanes >= 16 {
                    _mm512_storeu_ps(dst.add(16 * v), y);
                } else {
                    _mm512_mask_storeu_ps(dst.add(16 * v), mask, y);
                }
            }
        }
    }
}
