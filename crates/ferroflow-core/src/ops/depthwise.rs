//! The direct kernel for depthwise convolution (a grouped convolution with one input
//! channel per group): each output pixel accumulates its taps over the contiguous channel
//! vector, instead of one tiny im2col + matrix product per channel. Sums use fused
//! multiply-adds (as XNNPACK's kernels do); the epilogue runs per task while it is in cache.

use super::conv::Conv2dGeom;
use super::conv_epilogue::Epilogue;
use crate::parallel::{num_threads, with_best_isa};
use rayon::prelude::*;

/// Output pixels per task (and per epilogue pass), so small feature maps stay on one
/// thread and the epilogue finds its rows in cache.
const PIXELS_PER_TASK: usize = 64;

/// Channels one accumulator block holds in registers across all taps of a pixel.
const WIDE: usize = 64;
/// The block for the channels left after the wide blocks (one AVX-512 vector).
const NARROW: usize = 16;

/// `y[n, oy, ox, c*m + k] = Σ x[n, y, x, c] · w[i, j, 0, c*m + k]` over the taps in range,
/// for an HWIO filter `[kh, kw, 1, cin * m]` (NHWC data), then `ep`.
pub(crate) fn depthwise_forward(
    g: &Conv2dGeom,
    x: &[f32],
    wt: &[f32],
    ep: &Epilogue<'_>,
) -> Vec<f32> {
    let cout = g.cout;
    let pixels = g.n * g.oh * g.ow;
    let mut out = crate::alloc::overwritable::<f32>(pixels * cout);
    if pixels == 0 || cout == 0 {
        return out;
    }
    let chunk = |p0: usize, dst: &mut [f32]| {
        for (k, rows) in dst.chunks_mut(PIXELS_PER_TASK * cout).enumerate() {
            let first = p0 + k * PIXELS_PER_TASK;
            with_best_isa(
                #[inline(always)]
                || pixels_into(g, x, wt, first, rows),
            );
            ep.apply(rows, cout, first * cout);
        }
    };
    let work = pixels * cout * g.kh * g.kw;
    if num_threads() > 1 && work >= 1 << 16 {
        let per_task = pixels.div_ceil(num_threads() * 4).max(PIXELS_PER_TASK);
        out.par_chunks_mut(per_task * cout)
            .enumerate()
            .for_each(|(t, dst)| chunk(t * per_task, dst));
    } else {
        chunk(0, &mut out);
    }
    out
}

/// Output pixels a run kernel computes together (sharing each weight vector it loads).
const RUN: usize = 8;

/// Writes the output pixels from `p0` on into `dst` (whole pixels of `cout` channels).
/// Runs of [`RUN`] pixels of one output row whose taps all fall inside the input (the
/// interior) take [`run`]; the rest, [`pixel`].
#[inline(always)]
fn pixels_into(g: &Conv2dGeom, x: &[f32], wt: &[f32], p0: usize, dst: &mut [f32]) {
    let cout = g.cout;
    let count = dst.len() / cout.max(1);
    let runs = g.cin == g.cout && g.kh * g.kw <= MAX_TAPS && cout >= NARROW;
    // Output columns whose taps all fall inside the input's columns.
    let span = (g.kw - 1) * g.dilation.1;
    let first = g.pad.1.div_ceil(g.stride.1);
    let last = (g.w + g.pad.1)
        .checked_sub(span + 1)
        .map(|v| v / g.stride.1);
    let mut q = 0;
    while q < count {
        let p = p0 + q;
        let ox = p % g.ow;
        let interior = last.is_some_and(|last| ox >= first && ox + RUN - 1 <= last);
        if runs && interior && ox + RUN <= g.ow && q + RUN <= count {
            run(g, x, wt, p, &mut dst[q * cout..(q + RUN) * cout]);
            q += RUN;
        } else {
            pixel(g, x, wt, p, &mut dst[q * cout..(q + 1) * cout], 0);
            q += 1;
        }
    }
}

/// [`RUN`] output pixels of one row from `p` on, all of whose taps lie inside the input's
/// columns: per block of [`NARROW`] channels, each weight vector is loaded once for the
/// whole run instead of once per pixel.
#[inline(always)]
fn run(g: &Conv2dGeom, x: &[f32], wt: &[f32], p: usize, dst: &mut [f32]) {
    let (c, hw) = (g.cout, g.oh * g.ow);
    let (img, rest) = (p / hw, p % hw);
    let (oy, ox) = (rest / g.ow, rest % g.ow);
    // The first input column of the run's first pixel (inside the input: see the caller).
    let col0 = ox * g.stride.1 - g.pad.1;
    let full = c / NARROW * NARROW;
    // Between the run's pixels in the input.
    let step = g.stride.1 * c;
    for c0 in (0..full).step_by(NARROW) {
        let mut sum = [[0.0f32; NARROW]; RUN];
        for i in 0..g.kh {
            let y = (oy * g.stride.0 + i * g.dilation.0) as isize - g.pad.0 as isize;
            if y < 0 || y >= g.h as isize {
                continue;
            }
            let row = (img * g.h + y as usize) * g.w + col0;
            for j in 0..g.kw {
                // By value: one register for the whole run, not a reload per multiply-add.
                let ws: [f32; NARROW] = wt[(i * g.kw + j) * c + c0..][..NARROW]
                    .try_into()
                    .expect("NARROW channels");
                let at = (row + j * g.dilation.1) * c + c0;
                for (r, acc) in sum.iter_mut().enumerate() {
                    let v: &[f32; NARROW] = x[at + r * step..][..NARROW]
                        .try_into()
                        .expect("NARROW channels");
                    fma_into(acc, v, &ws);
                }
            }
        }
        for (r, acc) in sum.iter().enumerate() {
            dst[r * c + c0..][..NARROW].copy_from_slice(acc);
        }
    }
    if full < c {
        for r in 0..RUN {
            pixel(g, x, wt, p + r, &mut dst[r * c..(r + 1) * c], full);
        }
    }
}

/// `acc += v · w`, lane by lane (one vector multiply-add per 16 lanes).
#[inline(always)]
fn fma_into<const B: usize>(acc: &mut [f32; B], v: &[f32; B], w: &[f32; B]) {
    for l in 0..B {
        acc[l] = v[l].mul_add(w[l], acc[l]);
    }
}

/// Writes channels `from..` of output pixel `p` into `acc[from..]`.
#[inline(always)]
fn pixel(g: &Conv2dGeom, x: &[f32], wt: &[f32], p: usize, acc: &mut [f32], from: usize) {
    let (cin, cout) = (g.cin, g.cout);
    let (img, rest) = (p / (g.oh * g.ow), p % (g.oh * g.ow));
    let (oy, ox) = (rest / g.ow, rest % g.ow);
    if g.kh * g.kw > MAX_TAPS || cin != cout {
        return pixel_general(g, x, wt, img, oy, ox, acc);
    }
    // The filter taps inside the input, as (tap index, input pixel offset) pairs.
    let mut taps = [(0usize, 0usize); MAX_TAPS];
    let mut n = 0;
    for_each_tap(g, img, oy, ox, |tap, src| {
        taps[n] = (tap, src);
        n += 1;
    });
    let taps = &taps[..n];
    let mut c0 = from;
    while c0 + WIDE <= cout {
        block::<WIDE>(x, wt, cout, taps, c0, acc);
        c0 += WIDE;
    }
    while c0 + NARROW <= cout {
        block::<NARROW>(x, wt, cout, taps, c0, acc);
        c0 += NARROW;
    }
    if c0 < cout {
        let acc = &mut acc[c0..];
        acc.fill(0.0);
        for &(t, src) in taps {
            let (src, w) = (
                &x[src + c0..][..acc.len()],
                &wt[t * cout + c0..][..acc.len()],
            );
            for ((a, &xv), &wv) in acc.iter_mut().zip(src).zip(w) {
                *a += xv * wv;
            }
        }
    }
}

/// Filters up to this many taps (7x7 with room) take the register-blocked path.
const MAX_TAPS: usize = 64;

/// Channels `c0..c0 + B` of one pixel, summed over `taps` in registers.
#[inline(always)]
fn block<const B: usize>(
    x: &[f32],
    wt: &[f32],
    cout: usize,
    taps: &[(usize, usize)],
    c0: usize,
    acc: &mut [f32],
) {
    let mut sum = [0.0f32; B];
    for &(t, src) in taps {
        let xs: &[f32; B] = x[src + c0..][..B].try_into().expect("B channels");
        let ws: &[f32; B] = wt[t * cout + c0..][..B].try_into().expect("B channels");
        fma_into(&mut sum, xs, ws);
    }
    acc[c0..c0 + B].copy_from_slice(&sum);
}

/// Any multiplier and filter size: accumulates tap by tap into `acc`.
#[inline(always)]
fn pixel_general(
    g: &Conv2dGeom,
    x: &[f32],
    wt: &[f32],
    img: usize,
    oy: usize,
    ox: usize,
    acc: &mut [f32],
) {
    let (cin, cout) = (g.cin, g.cout);
    let m = cout / cin;
    acc.fill(0.0);
    for_each_tap(g, img, oy, ox, |tap, src| {
        let src = &x[src..][..cin];
        let w = &wt[tap * cout..][..cout];
        for (c, &xv) in src.iter().enumerate() {
            for (a, &wv) in acc[c * m..][..m].iter_mut().zip(&w[c * m..][..m]) {
                *a += xv * wv;
            }
        }
    });
}

/// Calls `f(tap, offset)` for each filter tap of output pixel (`img`, `oy`, `ox`) that falls
/// inside the input: the tap's index (`i * kw + j`) and the offset of the input pixel it
/// reads.
#[inline(always)]
fn for_each_tap(g: &Conv2dGeom, img: usize, oy: usize, ox: usize, mut f: impl FnMut(usize, usize)) {
    for i in 0..g.kh {
        let y = (oy * g.stride.0 + i * g.dilation.0) as isize - g.pad.0 as isize;
        if y < 0 || y >= g.h as isize {
            continue;
        }
        for j in 0..g.kw {
            let xx = (ox * g.stride.1 + j * g.dilation.1) as isize - g.pad.1 as isize;
            if xx < 0 || xx >= g.w as isize {
                continue;
            }
            f(
                i * g.kw + j,
                ((img * g.h + y as usize) * g.w + xx as usize) * g.cin,
            );
        }
    }
}
