//! int8 `MEAN` over a run of adjacent axes (a squeeze-excite or global average pool over
//! `[1, 2]` of NHWC), as LiteRT's default (XNNPACK) kernel computes it: the int32 sum of
//! each group less `count * input_zero_point`, times `(input_scale / output_scale) *
//! (1 / count)` in float32, rounded to nearest even, plus the output zero point,
//! saturated. Axes that are not adjacent run in float.

use super::requant::round_clamped;
use ferroflow_core::alloc::overwritable;

/// The reduction's axes as the model gives them, and the input and output quantisation.
#[derive(Clone, Debug)]
pub(crate) struct Mean {
    /// Axes, negative ones counting from the end; repeats allowed.
    pub(crate) axes: Vec<i64>,
    pub(crate) keep_dims: bool,
    pub(crate) x: (f32, i32),
    pub(crate) y: (f32, i32),
}

/// The input as `[outer, count, inner]`: the reduced axes are the middle run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Split {
    outer: usize,
    count: usize,
    inner: usize,
}

vectorised!(mean_sums: Mean => sums(x: &[i8], s: Split, acc: &mut [i32], out: &mut [i8]));

impl Mean {
    /// The mean of `x` (of shape `shape`) and its shape; `None` when the axes are out of
    /// range or not one run of adjacent axes (the float path then answers).
    pub(crate) fn run(&self, x: &[i8], shape: &[usize]) -> Option<(Vec<i8>, Vec<usize>)> {
        let rank = shape.len() as i64;
        let mut reduced = vec![false; shape.len()];
        for &a in &self.axes {
            let a = if a < 0 { a + rank } else { a };
            *reduced.get_mut(usize::try_from(a).ok()?)? = true;
        }
        let first = reduced.iter().position(|&r| r)?;
        let last = reduced.iter().rposition(|&r| r)?;
        if !reduced[first..=last].iter().all(|&r| r) {
            return None;
        }
        let product = |d: &[usize]| d.iter().product::<usize>();
        let s = Split {
            outer: product(&shape[..first]),
            count: product(&shape[first..=last]),
            inner: product(&shape[last + 1..]),
        };
        // int32 sums of up to 2^23 values of magnitude 2^8 cannot overflow.
        if s.count == 0 || s.count > 1 << 23 || x.len() != s.outer * s.count * s.inner {
            return None;
        }
        let out_shape: Vec<usize> = shape
            .iter()
            .zip(&reduced)
            .filter_map(|(&d, &r)| match (r, self.keep_dims) {
                (false, _) => Some(d),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect();
        let mut out = overwritable::<i8>(s.outer * s.inner);
        if !out.is_empty() {
            let mut acc = vec![0i32; s.inner];
            mean_sums(self, x, s, &mut acc, &mut out);
        }
        Some((out, out_shape))
    }

    /// Sums each group into `acc` (a row of `inner` at a time, so the adds vectorise over
    /// the inner axis), then requantises it into `out`.
    #[inline(always)]
    fn sums(&self, x: &[i8], s: Split, acc: &mut [i32], out: &mut [i8]) {
        let scale = (self.x.0 / self.y.0) * (1.0 / s.count as f32);
        let bias = (s.count as i32).wrapping_mul(self.x.1);
        let (lo, hi) = ((-128 - self.y.1) as f32, (127 - self.y.1) as f32);
        for (group, out) in x
            .chunks_exact(s.count * s.inner)
            .zip(out.chunks_exact_mut(s.inner))
        {
            if s.inner == 1 {
                let sum: i32 = group.iter().map(|&v| v as i32).sum();
                out[0] = round_clamped(sum.wrapping_sub(bias), scale, lo, hi, self.y.1);
                continue;
            }
            acc.fill(0);
            for row in group.chunks_exact(s.inner) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v as i32;
                }
            }
            for (y, &a) in out.iter_mut().zip(acc.iter()) {
                *y = round_clamped(a.wrapping_sub(bias), scale, lo, hi, self.y.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(axes: &[i64], keep_dims: bool) -> Mean {
        Mean {
            axes: axes.to_vec(),
            keep_dims,
            // Scales whose ratio puts no sum on a tie.
            x: (0.0473, -3),
            y: (0.1291, 4),
        }
    }

    /// The float definition: dequantise, average, quantise (ties to even), saturate.
    fn reference(m: &Mean, x: &[i8], outer: usize, count: usize, inner: usize) -> Vec<i8> {
        let mut y = Vec::new();
        for o in 0..outer {
            for i in 0..inner {
                let sum: i64 = (0..count)
                    .map(|c| x[(o * count + c) * inner + i] as i64 - m.x.1 as i64)
                    .sum();
                let v = sum as f64 * m.x.0 as f64 / m.y.0 as f64 / count as f64;
                y.push((v.round_ties_even() + m.y.1 as f64).clamp(-128.0, 127.0) as i8);
            }
        }
        y
    }

    #[test]
    fn averages_adjacent_axes_as_the_float_definition() {
        let shape = [2, 5, 3, 37];
        let x: Vec<i8> = (0..2 * 5 * 3 * 37)
            .map(|i| ((i * 73 + 11) % 256) as u8 as i8)
            .collect();
        let m = mean(&[1, -2], true);
        let (y, s) = m.run(&x, &shape).unwrap();
        assert_eq!(s, vec![2, 1, 1, 37]);
        let want = reference(&m, &x, 2, 15, 37);
        // float32 against float64 scales: at most one step, and rarely.
        let off = y.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert!(y
            .iter()
            .zip(&want)
            .all(|(a, b)| (*a as i32 - *b as i32).abs() <= 1));
        assert!(off * 50 <= y.len(), "{off} of {} differ", y.len());

        let (y, s) = mean(&[3], false).run(&x, &shape).unwrap();
        assert_eq!(s, vec![2, 5, 3]);
        assert_eq!(y.len(), 30);
        let (y, s) = mean(&[0, 1, 2, 3], false).run(&x, &shape).unwrap();
        assert_eq!((y.len(), s), (1, vec![]));
    }

    #[test]
    fn saturates_and_declines_what_it_does_not_take() {
        let x = vec![127i8; 8];
        let m = Mean {
            axes: vec![1],
            keep_dims: false,
            x: (1.0, 0),
            y: (0.01, 0),
        };
        assert_eq!(m.run(&x, &[2, 4]).unwrap().0, vec![127, 127]);
        // Not adjacent, out of range, or a shape that does not fit the values.
        assert!(mean(&[0, 2], true).run(&[0; 8], &[2, 2, 2]).is_none());
        assert!(mean(&[3], true).run(&[0; 8], &[2, 2, 2]).is_none());
        assert!(mean(&[-4], true).run(&[0; 8], &[2, 2, 2]).is_none());
        assert!(mean(&[1], true).run(&[0; 7], &[2, 2, 2]).is_none());
        assert!(mean(&[1], true).run(&[], &[2, 0, 2]).is_none());
    }
}
