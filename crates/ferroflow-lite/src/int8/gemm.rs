//! The int8 matrix product of FULLY_CONNECTED and CONV_2D: int8 rows times int8 weight
//! rows, accumulated in int32, requantised to int8.

use super::requant::Requant;
use ferroflow_core::with_best_isa;
use rayon::prelude::*;

/// Multiply-adds from which a product is split across threads.
const PAR_MIN_MACS: usize = 1 << 20;

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
        if n == 0 || weights.len() % n != 0 || bias.as_ref().is_some_and(|b| b.len() != n) {
            return None;
        }
        let k = weights.len() / n;
        let offsets = (0..n)
            .map(|j| {
                let sum: i32 = weights[j * k..(j + 1) * k]
                    .iter()
                    .fold(0i32, |s, &w| s.wrapping_add(w as i32));
                let b = bias.as_ref().map_or(0, |b| b[j]);
                b.wrapping_sub(input_zp.wrapping_mul(sum))
            })
            .collect();
        Some(PackedWeights {
            weights,
            offsets,
            k,
            n,
            requant,
        })
    }

    /// `out[r, j] = requant(offsets[j] + rows[r] . weights[j])` for every row of `rows`
    /// (`out.len() / n` rows of `k`).
    pub(crate) fn multiply(&self, rows: &[i8], out: &mut [i8]) {
        let m = out.len() / self.n;
        debug_assert_eq!(rows.len(), m * self.k);
        let macs = m * self.n * self.k;
        if macs >= PAR_MIN_MACS && m > 1 && rayon::current_num_threads() > 1 {
            let per = m.div_ceil(rayon::current_num_threads() * 4).max(1);
            out.par_chunks_mut(per * self.n)
                .zip(rows.par_chunks(per * self.k))
                .for_each(|(o, r)| with_best_isa(|| self.rows_into(r, o)));
        } else {
            with_best_isa(|| self.rows_into(rows, out));
        }
    }

    #[inline(always)]
    pub(crate) fn rows_into(&self, rows: &[i8], out: &mut [i8]) {
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
