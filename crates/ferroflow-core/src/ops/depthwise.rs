//! The direct kernel for depthwise convolution (a grouped convolution with one input
//! channel per group): each output pixel accumulates its taps over the contiguous channel
//! vector, instead of one tiny im2col + matrix product per channel.

use super::conv::Conv2dGeom;
use crate::parallel::{num_threads, with_best_isa};
use rayon::prelude::*;

/// Output pixels per parallel task, so small feature maps stay on one thread.
const MIN_PIXELS_PER_TASK: usize = 64;

/// `y[n, oy, ox, c*m + k] = Σ x[n, y, x, c] · w[i, j, 0, c*m + k]` over the taps in range,
/// for an HWIO filter `[kh, kw, 1, cin * m]` (NHWC data).
pub(crate) fn depthwise_forward(g: &Conv2dGeom, x: &[f32], wt: &[f32]) -> Vec<f32> {
    let (cin, cout) = (g.cin, g.cout);
    let m = cout / cin;
    let pixels = g.n * g.oh * g.ow;
    let mut out = crate::alloc::zeroed::<f32>(pixels * cout);
    if pixels == 0 || cout == 0 {
        return out;
    }
    let row = |p0: usize, dst: &mut [f32]| {
        with_best_isa(
            #[inline(always)]
            || {
                for (k, acc) in dst.chunks_exact_mut(cout).enumerate() {
                    let p = p0 + k;
                    let (img, rest) = (p / (g.oh * g.ow), p % (g.oh * g.ow));
                    let (oy, ox) = (rest / g.ow, rest % g.ow);
                    for i in 0..g.kh {
                        let y = (oy * g.stride.0 + i * g.dilation.0) as isize - g.pad.0 as isize;
                        if y < 0 || y >= g.h as isize {
                            continue;
                        }
                        for j in 0..g.kw {
                            let xx =
                                (ox * g.stride.1 + j * g.dilation.1) as isize - g.pad.1 as isize;
                            if xx < 0 || xx >= g.w as isize {
                                continue;
                            }
                            let src =
                                &x[((img * g.h + y as usize) * g.w + xx as usize) * cin..][..cin];
                            let w = &wt[(i * g.kw + j) * cout..][..cout];
                            if m == 1 {
                                for ((a, &xv), &wv) in acc.iter_mut().zip(src).zip(w) {
                                    *a += xv * wv;
                                }
                            } else {
                                for (c, &xv) in src.iter().enumerate() {
                                    for (a, &wv) in
                                        acc[c * m..][..m].iter_mut().zip(&w[c * m..][..m])
                                    {
                                        *a += xv * wv;
                                    }
                                }
                            }
                        }
                    }
                }
            },
        )
    };
    let work = pixels * cout * g.kh * g.kw;
    if num_threads() > 1 && work >= 1 << 16 {
        let per_task = pixels.div_ceil(num_threads() * 4).max(MIN_PIXELS_PER_TASK);
        out.par_chunks_mut(per_task * cout)
            .enumerate()
            .for_each(|(t, dst)| row(t * per_task, dst));
    } else {
        row(0, &mut out);
    }
    out
}
