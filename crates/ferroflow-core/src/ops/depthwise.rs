//! The direct kernel for depthwise convolution (a grouped convolution with one input
//! channel per group): each output pixel accumulates its taps over the contiguous channel
//! vector, instead of one tiny im2col + matrix product per channel. Sums use fused
//! multiply-adds (as XNNPACK's kernels do); the epilogue runs per task while it is in cache.

use super::conv::Conv2dGeom;
use super::conv_epilogue::Epilogue;
use crate::parallel::{num_threads, with_best_isa, Isa};
use rayon::prelude::*;

/// Output pixels per epilogue pass (so the epilogue finds its rows in cache), and the
/// least a task takes while there are at least as many tasks as threads.
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
    let mut out = crate::alloc::overwritable::<f32>(g.n * g.oh * g.ow * g.cout);
    depthwise_forward_into(g, x, wt, ep, &mut out);
    out
}

/// [`depthwise_forward`] into `out` (`n * oh * ow * cout` elements).
pub(crate) fn depthwise_forward_into(
    g: &Conv2dGeom,
    x: &[f32],
    wt: &[f32],
    ep: &Epilogue<'_>,
    out: &mut [f32],
) {
    let cout = g.cout;
    let pixels = g.n * g.oh * g.ow;
    // What the kernels below read without checking each access: every input pixel a tap
    // reaches and every filter tap (the geometry comes from these two tensors' shapes).
    assert!(
        x.len() >= g.n * g.h * g.w * g.cin && wt.len() >= g.kh * g.kw * cout,
        "depthwise: input or filter shorter than its geometry"
    );
    assert_eq!(
        out.len(),
        pixels * cout,
        "depthwise: output of the wrong size"
    );
    if pixels == 0 || cout == 0 {
        return;
    }
    let chunk = |p0: usize, dst: &mut [f32]| {
        for (k, rows) in dst.chunks_mut(PIXELS_PER_TASK * cout).enumerate() {
            let first = p0 + k * PIXELS_PER_TASK;
            with_best_isa(
                #[inline(always)]
                || pixels_into(g, x, wt, first, rows, RunKernel::detect()),
            );
            ep.apply(rows, cout, first * cout);
        }
    };
    let (work, threads) = (pixels * cout * g.kh * g.kw, num_threads());
    if threads > 1 && work >= 1 << 16 && pixels > 1 {
        // Up to four tasks a thread, and a whole number of them per thread, so that a small
        // map (49 or 196 pixels at batch 1) still gives every thread an equal share.
        let tasks = (pixels / PIXELS_PER_TASK)
            .clamp(1, threads * 4)
            .next_multiple_of(threads);
        let per_task = pixels.div_ceil(tasks);
        out.par_chunks_mut(per_task * cout)
            .enumerate()
            .for_each(|(t, dst)| chunk(t * per_task, dst));
    } else {
        chunk(0, out);
    }
}

/// The kernel of a run's channel blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum RunKernel {
    /// Arrays of [`NARROW`] lanes, vectorised by the compiler.
    Portable,
    /// `depthwise_avx512`: one vector per block.
    Avx512,
    /// `depthwise_avx2`: two vectors per block, one after the other.
    Avx2,
}

impl RunKernel {
    /// The kernel compiled for `isa`.
    fn for_isa(isa: Isa) -> RunKernel {
        match isa {
            Isa::Avx512 => RunKernel::Avx512,
            Isa::Avx2 => RunKernel::Avx2,
            Isa::Baseline => RunKernel::Portable,
        }
    }

    /// The hand-written kernel for this CPU, else the portable one.
    fn detect() -> RunKernel {
        RunKernel::for_isa(Isa::best())
    }

    /// Every hand-written kernel this CPU can run (the tests run each against the
    /// portable one).
    #[cfg(test)]
    fn runnable() -> Vec<RunKernel> {
        Isa::runnable()
            .into_iter()
            .map(RunKernel::for_isa)
            .filter(|k| *k != RunKernel::Portable)
            .collect()
    }
}

/// Output pixels a run kernel computes together (sharing each weight vector it loads).
const RUN: usize = 8;
/// The run for what is left of a row's interior after the runs of [`RUN`] (a 14- or
/// 7-pixel row has room for one run of 8 at most).
const SHORT_RUN: usize = 4;

/// Writes the output pixels from `p0` on into `dst` (whole pixels of `cout` channels).
/// Runs of [`RUN`] (else [`SHORT_RUN`]) pixels of one output row whose taps all fall
/// inside the input's columns (the interior) take [`run`]; the rest, [`pixel`].
#[inline(always)]
fn pixels_into(
    g: &Conv2dGeom,
    x: &[f32],
    wt: &[f32],
    p0: usize,
    dst: &mut [f32],
    kernel: RunKernel,
) {
    let cout = g.cout;
    let count = dst.len() / cout.max(1);
    let runs = g.cin == g.cout && g.kh * g.kw <= MAX_TAPS && cout >= NARROW;
    // Output columns whose taps all fall inside the input's columns.
    let span = (g.kw - 1) * g.dilation.1;
    let first = g.pad.1.div_ceil(g.stride.1);
    let last = (g.w + g.pad.1)
        .checked_sub(span + 1)
        .map(|v| v / g.stride.1);
    // Tap lists of one pixel or run, made once here rather than zeroed per pixel.
    let mut taps = [(0usize, 0usize); MAX_TAPS];
    let mut q = 0;
    while q < count {
        let p = p0 + q;
        let ox = p % g.ow;
        // Whether `len` pixels from here are interior ones of this row, all in `dst`.
        let fits = |len: usize| {
            runs && q + len <= count && last.is_some_and(|last| ox >= first && ox + len <= last + 1)
        };
        let len = if fits(RUN) {
            run::<RUN>(
                g,
                x,
                wt,
                p,
                &mut dst[q * cout..(q + RUN) * cout],
                &mut taps,
                kernel,
            );
            RUN
        } else if fits(SHORT_RUN) {
            run::<SHORT_RUN>(
                g,
                x,
                wt,
                p,
                &mut dst[q * cout..(q + SHORT_RUN) * cout],
                &mut taps,
                kernel,
            );
            SHORT_RUN
        } else {
            pixel(
                g,
                x,
                wt,
                p,
                &mut dst[q * cout..(q + 1) * cout],
                0,
                &mut taps,
            );
            1
        };
        q += len;
    }
}

/// `R` output pixels of one row from `p` on, all of whose taps lie inside the input's
/// columns: per block of [`NARROW`] channels, each weight vector is loaded once for the
/// whole run instead of once per pixel, and the `R` sums stay in registers through all
/// taps.
#[inline(always)]
fn run<const R: usize>(
    g: &Conv2dGeom,
    x: &[f32],
    wt: &[f32],
    p: usize,
    dst: &mut [f32],
    scratch: &mut [(usize, usize); MAX_TAPS],
    kernel: RunKernel,
) {
    let (c, hw) = (g.cout, g.oh * g.ow);
    let (img, rest) = (p / hw, p % hw);
    let (oy, ox) = (rest / g.ow, rest % g.ow);
    // The first input column of the run's first pixel (inside the input: see the caller).
    let col0 = ox * g.stride.1 - g.pad.1;
    let full = c / NARROW * NARROW;
    // Between the run's pixels in the input, and between two taps of a filter row.
    let (step, tap_step) = (g.stride.1 * c, g.dilation.1 * c);
    // The filter rows inside the input: (offset of the run's first input pixel in that
    // input row, index of the row's first tap).
    let rows = &mut *scratch;
    let mut n = 0;
    for_each_tap_row(g, img, oy, |i, row| {
        rows[n] = ((row + col0) * c, i * g.kw);
        n += 1;
    });
    let rows = &rows[..n];
    // Each row's reads end within `reach` of its offset: checked here once, not per load
    // (the vector kernel loads without checks).
    let reach = (R - 1) * step + (g.kw - 1) * tap_step + c;
    assert!(rows.iter().all(|&(at, _)| at + reach <= x.len()));
    // The input rows this output row is the first to read (the last `stride` filter
    // rows): ask for the part of them that the run after the next one reads first, so
    // that their lines arrive from memory while this run and the next compute.
    for &(at, _) in &rows[n.saturating_sub(g.stride.0)..] {
        let ahead = at + reach + R * step;
        crate::prefetch::prefetch_span(
            x.as_ptr().wrapping_add(ahead) as *const u8,
            R * step * std::mem::size_of::<f32>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = kernel;
    for c0 in (0..full).step_by(NARROW) {
        // SAFETY (both kernels): the CPU has the kernel's features (`RunKernel::detect`);
        // every input read ends within `reach` of its row's offset (checked above), every
        // filter read within kh * kw * c <= wt.len() (depthwise_forward's check), c0 +
        // NARROW <= c, and `dst` holds R pixels.
        #[cfg(target_arch = "x86_64")]
        match kernel {
            RunKernel::Avx512 => {
                use super::depthwise_avx512::{run_block, run_block_strided};
                match (g.kw, g.dilation.1, g.stride.1) {
                    (3, 1, 1) => unsafe { run_block_strided::<R, 1, 3>(x, wt, rows, (c, c0), dst) },
                    (3, 1, 2) => unsafe { run_block_strided::<R, 2, 3>(x, wt, rows, (c, c0), dst) },
                    (5, 1, 1) => unsafe { run_block_strided::<R, 1, 5>(x, wt, rows, (c, c0), dst) },
                    (5, 1, 2) => unsafe { run_block_strided::<R, 2, 5>(x, wt, rows, (c, c0), dst) },
                    _ => unsafe {
                        run_block::<R>(x, wt, rows, (g.kw, c, c0), (step, tap_step), dst)
                    },
                }
                continue;
            }
            RunKernel::Avx2 => {
                for half in [c0, c0 + NARROW / 2] {
                    unsafe {
                        super::depthwise_avx2::run_block::<R>(
                            x,
                            wt,
                            rows,
                            (g.kw, c, half),
                            (step, tap_step),
                            dst,
                        )
                    };
                }
                continue;
            }
            RunKernel::Portable => {}
        }
        let mut sum = [[0.0f32; NARROW]; R];
        for &(row, t0) in rows {
            for j in 0..g.kw {
                // By value: one register for the whole run, not a reload per multiply-add.
                let ws: [f32; NARROW] = wt[(t0 + j) * c + c0..][..NARROW]
                    .try_into()
                    .expect("NARROW channels");
                let at = row + j * tap_step + c0;
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
        for r in 0..R {
            pixel(g, x, wt, p + r, &mut dst[r * c..(r + 1) * c], full, scratch);
        }
    }
}

/// `acc += v · w`, lane by lane: fused (one vector multiply-add per 16 lanes, the sums of
/// the AVX kernels bit for bit). The browser build has no fused multiply-add, where
/// `f32::mul_add` is a call to a software routine (half of MobileNetV2's time): there it
/// is a multiply and an add.
#[inline(always)]
fn fma_into<const B: usize>(acc: &mut [f32; B], v: &[f32; B], w: &[f32; B]) {
    for l in 0..B {
        acc[l] = if cfg!(target_arch = "wasm32") {
            acc[l] + v[l] * w[l]
        } else {
            v[l].mul_add(w[l], acc[l])
        };
    }
}

/// Writes channels `from..` of output pixel `p` into `acc[from..]`.
#[inline(always)]
fn pixel(
    g: &Conv2dGeom,
    x: &[f32],
    wt: &[f32],
    p: usize,
    acc: &mut [f32],
    from: usize,
    taps: &mut [(usize, usize); MAX_TAPS],
) {
    let (cin, cout) = (g.cin, g.cout);
    let (img, rest) = (p / (g.oh * g.ow), p % (g.oh * g.ow));
    let (oy, ox) = (rest / g.ow, rest % g.ow);
    if g.kh * g.kw > MAX_TAPS || cin != cout {
        return pixel_general(g, x, wt, img, oy, ox, acc);
    }
    // The filter taps inside the input, as (tap index, input pixel offset) pairs.
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
    for_each_tap_row(g, img, oy, |i, row| {
        for j in 0..g.kw {
            let xx = (ox * g.stride.1 + j * g.dilation.1) as isize - g.pad.1 as isize;
            if xx < 0 || xx >= g.w as isize {
                continue;
            }
            f(i * g.kw + j, (row + xx as usize) * g.cin);
        }
    });
}

/// Calls `f(i, row)` for each filter row `i` of output row `oy` (of image `img`) that
/// falls inside the input: `row` is the pixel index of the input row's first pixel.
#[inline(always)]
fn for_each_tap_row(g: &Conv2dGeom, img: usize, oy: usize, mut f: impl FnMut(usize, usize)) {
    for i in 0..g.kh {
        let y = (oy * g.stride.0 + i * g.dilation.0) as isize - g.pad.0 as isize;
        if (0..g.h as isize).contains(&y) {
            f(i, (img * g.h + y as usize) * g.w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A depthwise geometry over `[n, h, w, c]` with a `k`x`k` filter, stride `s` and
    /// dilation `d`, padded by `(k - 1) * d / 2` on each side.
    fn geom(n: usize, h: usize, w: usize, c: usize, k: usize, s: usize, d: usize) -> Conv2dGeom {
        let pad = (k - 1) * d / 2;
        let out = |len: usize| (len + 2 * pad - (k - 1) * d - 1) / s + 1;
        Conv2dGeom {
            n,
            h,
            w,
            cin: c,
            kh: k,
            kw: k,
            cout: c,
            groups: c,
            oh: out(h),
            ow: out(w),
            stride: (s, s),
            dilation: (d, d),
            pad: (pad, pad),
        }
    }

    /// Small maps split between threads (tasks that end inside a row) give the one-thread
    /// result exactly.
    #[test]
    fn maps_split_between_threads_equal_one_thread() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for (n, h, w, c) in [(1, 7, 7, 256), (1, 14, 14, 96), (2, 5, 9, 160)] {
            let g = geom(n, h, w, c, 3, 1, 1);
            let x: Vec<f32> = (0..n * h * w * c)
                .map(|i| ((i * 7919) % 613) as f32 / 97.0 - 3.0)
                .collect();
            let wt: Vec<f32> = (0..9 * c)
                .map(|i| ((i * 104_729) % 331) as f32 / 57.0 - 2.9)
                .collect();
            let alone = crate::parallel::on_calling_thread(|| {
                depthwise_forward(&g, &x, &wt, &Epilogue::NONE)
            });
            let split = pool.install(|| depthwise_forward(&g, &x, &wt, &Epilogue::NONE));
            assert_eq!(alone, split, "{n}x{h}x{w}x{c}");
        }
    }

    /// Each vector run kernel this CPU has gives exactly the portable kernel's sums (same
    /// taps, same order, fused multiply-adds in both), over run lengths, channel tails,
    /// strides and dilations.
    #[test]
    fn vector_runs_equal_portable_runs() {
        let cases = [
            (2, 9, 14, 48, 3, 1, 1),
            (1, 7, 7, 37, 3, 1, 1),
            (1, 15, 15, 32, 3, 2, 1),
            (1, 8, 21, 16, 3, 1, 2),
            (1, 12, 30, 40, 5, 1, 1),
            (1, 13, 27, 32, 5, 2, 1),
            (1, 11, 40, 16, 5, 1, 1),
        ];
        for (n, h, w, c, k, s, d) in cases {
            let g = geom(n, h, w, c, k, s, d);
            let x: Vec<f32> = (0..n * h * w * c)
                .map(|i| ((i * 7919) % 613) as f32 / 97.0 - 3.0)
                .collect();
            let wt: Vec<f32> = (0..k * k * c)
                .map(|i| ((i * 104_729) % 331) as f32 / 57.0 - 2.9)
                .collect();
            let pixels = n * g.oh * g.ow;
            let mut portable = vec![0.0; pixels * c];
            pixels_into(&g, &x, &wt, 0, &mut portable, RunKernel::Portable);
            for kernel in RunKernel::runnable() {
                let mut vector = vec![0.0; pixels * c];
                with_best_isa(
                    #[inline(always)]
                    || pixels_into(&g, &x, &wt, 0, &mut vector, kernel),
                );
                assert_eq!(
                    portable, vector,
                    "{kernel:?}: {n}x{h}x{w}x{c}, {k}x{k}, stride {s}, dilation {d}"
                );
            }
        }
    }
}
