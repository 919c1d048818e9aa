//! int8 CONV_2D (im2col tiles times packed filters), DEPTHWISE_CONV_2D and pooling over
//! NHWC inputs.

use super::gemm::PackedWeights;
use super::requant::Requant;
use super::window::Geometry;
use ferroflow_core::alloc::overwritable;
use rayon::prelude::*;

/// Patch bytes per tile of output pixels (the tile's patches stay in L2 while its
/// product runs).
const TILE_BYTES: usize = 64 << 10;
/// Work (multiply-adds or window taps) from which a kernel is split across threads.
const PAR_MIN_WORK: usize = 1 << 20;

/// Runs `f(first_pixel, out_chunk)` over chunks of `per_pixel`-wide output pixels, on the
/// rayon pool when the work is large. (`f` calls a `vectorised!` body, compiled for the
/// CPU's vectors.)
fn over_pixels(
    out: &mut [i8],
    per_pixel: usize,
    pixels_per_chunk: usize,
    work: usize,
    f: impl Fn(usize, &mut [i8]) + Sync,
) {
    let chunk = (pixels_per_chunk.max(1) * per_pixel).max(1);
    if work >= PAR_MIN_WORK && ferroflow_core::num_threads() > 1 && out.len() > chunk {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, o)| f(i * pixels_per_chunk, o));
    } else {
        for (i, o) in out.chunks_mut(chunk).enumerate() {
            f(i * pixels_per_chunk, o);
        }
    }
}

vectorised!(conv_tile: Conv => tile(x: &[i8], g: &Geometry, first: usize, o: &mut [i8]));
vectorised!(depthwise_pixels: Depthwise => pixels(x: &[i8], g: &Geometry, first: usize, o: &mut [i8]));
vectorised!(pool_pixels: Pool => pixels(x: &[i8], g: &Geometry, first: usize, o: &mut [i8]));

/// CONV_2D: filters `[out, kh, kw, in]` as rows of `kh * kw * in`.
#[derive(Clone, Debug)]
pub(crate) struct Conv {
    pub(crate) kernel: (usize, usize),
    pub(crate) input_zp: i8,
    pub(crate) weights: PackedWeights,
}

impl Conv {
    /// The output (`g.pixels()` x out channels) of input `x` laid out as `g`.
    pub(crate) fn run(&self, x: &[i8], g: &Geometry) -> Vec<i8> {
        let n = self.weights.n;
        let k = self.weights.k;
        let mut out = overwritable::<i8>(g.pixels() * n);
        let pointwise = self.kernel == (1, 1)
            && g.h.stride == 1
            && g.w.stride == 1
            && g.h.pad == 0
            && g.w.pad == 0;
        if pointwise {
            self.weights.multiply(x, &mut out);
            return out;
        }
        let tile = (TILE_BYTES / k.max(1)).clamp(1, 256);
        let work = g.pixels() * n * k;
        over_pixels(&mut out, n, tile, work, |first, o| {
            conv_tile(self, x, g, first, o)
        });
        out
    }

    /// Output pixels from `first` on, into `o`: their patches, then their product.
    #[inline(always)]
    fn tile(&self, x: &[i8], g: &Geometry, first: usize, o: &mut [i8]) {
        let k = self.weights.k;
        let count = o.len() / self.weights.n;
        let mut patches = vec![self.input_zp; count * k];
        for (i, patch) in patches.chunks_exact_mut(k).enumerate() {
            self.patch(x, g, first + i, patch);
        }
        self.weights.rows_into(&patches, o);
    }

    /// The input values under output pixel `p`'s window, (ky, kx, channel) order; taps
    /// outside the input keep the zero point they were filled with.
    #[inline(always)]
    fn patch(&self, x: &[i8], g: &Geometry, p: usize, patch: &mut [i8]) {
        let (b, oy, ox) = g.pixel(p);
        let c = g.channels;
        for (ky, iy) in g.h.taps(oy) {
            if g.w.dilation == 1 {
                // Undilated taps of one row are adjacent pixels in both the input and the
                // patch: one copy.
                let mut row = g.w.taps(ox);
                if let Some((kx, ix)) = row.next() {
                    let len = (1 + row.count()) * c;
                    let at = g.at(b, iy, ix);
                    let dst = (ky * self.kernel.1 + kx) * c;
                    patch[dst..dst + len].copy_from_slice(&x[at..at + len]);
                }
                continue;
            }
            for (kx, ix) in g.w.taps(ox) {
                let at = g.at(b, iy, ix);
                let dst = (ky * self.kernel.1 + kx) * c;
                patch[dst..dst + c].copy_from_slice(&x[at..at + c]);
            }
        }
    }
}

/// DEPTHWISE_CONV_2D: filters `[kh, kw, in * multiplier]`.
#[derive(Clone, Debug)]
pub(crate) struct Depthwise {
    pub(crate) kernel: (usize, usize),
    pub(crate) multiplier: usize,
    pub(crate) input_zp: i32,
    pub(crate) weights: Vec<i8>,
    pub(crate) bias: Vec<i32>,
    /// Per channel (see [`Requant::per_channel`]).
    pub(crate) requant: Requant,
    /// The weights as 32-bit lanes with the upper half zero (for `vpmaddwd`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    wide: Vec<i32>,
    /// The bias of a pixel whose taps all lie inside the input: `bias - zp * sum(w)`
    /// (its sums then need no zero point taken from each input).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    interior_bias: Vec<i32>,
}

impl Depthwise {
    /// A depthwise convolution of `weights` (`[kh, kw, channels]`), `bias` per channel.
    pub(crate) fn new(
        kernel: (usize, usize),
        multiplier: usize,
        input_zp: i32,
        weights: Vec<i8>,
        bias: Vec<i32>,
        requant: Requant,
    ) -> Self {
        let n = bias.len().max(1);
        let wide = weights.iter().map(|&w| w as i16 as u16 as i32).collect();
        let mut interior_bias = bias.clone();
        for (c, b) in interior_bias.iter_mut().enumerate() {
            let sum: i32 = weights.iter().skip(c).step_by(n).map(|&w| w as i32).sum();
            *b = b.wrapping_sub(input_zp.wrapping_mul(sum));
        }
        Depthwise {
            kernel,
            multiplier,
            input_zp,
            weights,
            bias,
            requant,
            wide,
            interior_bias,
        }
    }

    /// The output (`g.pixels()` x in * multiplier) of input `x` laid out as `g`.
    pub(crate) fn run(&self, x: &[i8], g: &Geometry) -> Vec<i8> {
        let (cin, m) = (g.channels, self.multiplier);
        let cout = cin * m;
        let mut out = overwritable::<i8>(g.pixels() * cout);
        let taps = self.kernel.0 * self.kernel.1;
        let work = g.pixels() * cout * taps;
        let rows = g.w.out.max(1);
        over_pixels(&mut out, cout, rows, work, |first, o| {
            depthwise_pixels(self, x, g, first, o)
        });
        out
    }

    /// Whether `x` holds the whole input of `g` and the filter, bias and scales every
    /// channel, as the vector kernel assumes.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn fits_wide(&self, x: &[i8], g: &Geometry) -> bool {
        let c = g.channels;
        let input = g.batch * g.h.input * g.w.input * c;
        x.len() >= input
            && self.wide.len() >= self.kernel.0 * self.kernel.1 * c
            && self.bias.len() >= c
            && self.interior_bias.len() >= c
            && self.requant.scales().len() >= c
    }

    /// Output pixels from `first` on, into `o`.
    #[inline(always)]
    fn pixels(&self, x: &[i8], g: &Geometry, first: usize, o: &mut [i8]) {
        let (cin, m) = (g.channels, self.multiplier);
        let cout = cin * m;
        #[cfg(target_arch = "x86_64")]
        if m == 1
            && (super::depthwise_avx512::available() || super::depthwise_avx2::available())
            && self.fits_wide(x, g)
        {
            let avx512 = super::depthwise_avx512::available();
            let (kh, kw) = self.kernel;
            // The taps of a window inside the input, relative to its top-left pixel.
            let window: Vec<(usize, usize)> = (0..kh)
                .flat_map(|ky| {
                    (0..kw).map(move |kx| {
                        let at = g.at(0, ky * g.h.dilation, kx * g.w.dilation);
                        (at, (ky * kw + kx) * cout)
                    })
                })
                .collect();
            let mut taps = Vec::with_capacity(kh * kw);
            for (i, o) in o.chunks_exact_mut(cout).enumerate() {
                let (b, oy, ox) = g.pixel(first + i);
                let corner = g.h.inside_start(oy).zip(g.w.inside_start(ox));
                let (origin, taps, bias, input_zp) = match corner {
                    Some((iy, ix)) => (g.at(b, iy, ix), &window[..], &self.interior_bias, 0),
                    None => {
                        taps.clear();
                        for (ky, iy) in g.h.taps(oy) {
                            for (kx, ix) in g.w.taps(ox) {
                                taps.push((g.at(b, iy, ix), (ky * kw + kx) * cout));
                            }
                        }
                        (0, &taps[..], &self.bias, self.input_zp)
                    }
                };
                let pixel = super::depthwise_avx512::Pixel {
                    x: &x[origin..],
                    w: &self.wide,
                    taps,
                    bias,
                    input_zp,
                    requant: &self.requant,
                };
                // SAFETY: `available()` found AVX-512 F and BW (else AVX2) on this CPU;
                // every tap lies in the input, the filter rows, bias and scales hold
                // `cout` values (`fits_wide`).
                unsafe {
                    if avx512 {
                        pixel.run(o)
                    } else {
                        pixel.run_avx2(o)
                    }
                };
            }
            return;
        }
        {
            let mut acc = vec![0i32; cout];
            for (i, o) in o.chunks_exact_mut(cout).enumerate() {
                let (b, oy, ox) = g.pixel(first + i);
                acc.copy_from_slice(&self.bias);
                for (ky, iy) in g.h.taps(oy) {
                    for (kx, ix) in g.w.taps(ox) {
                        let src = &x[g.at(b, iy, ix)..][..cin];
                        let w = &self.weights[(ky * self.kernel.1 + kx) * cout..][..cout];
                        if m == 1 {
                            for ((a, &v), &f) in acc.iter_mut().zip(src).zip(w) {
                                *a = a.wrapping_add((v as i32 - self.input_zp) * f as i32);
                            }
                        } else {
                            for (c, &v) in src.iter().enumerate() {
                                let v = v as i32 - self.input_zp;
                                for j in 0..m {
                                    let a = &mut acc[c * m + j];
                                    *a = a.wrapping_add(v * w[c * m + j] as i32);
                                }
                            }
                        }
                    }
                }
                self.requant.row(&acc, o);
            }
        }
    }
}

/// MAX_POOL_2D and AVERAGE_POOL_2D with the input's quantisation on the output.
#[derive(Clone, Debug)]
pub(crate) struct Pool {
    pub(crate) max: bool,
    pub(crate) filter: (usize, usize),
    /// The fused activation's range.
    pub(crate) range: (i32, i32),
}

impl Pool {
    /// The output (`g.pixels()` x channels) of input `x` laid out as `g`: the window's
    /// maximum, or its mean over the taps inside the input rounded half away from zero
    /// (TFLite's int8 kernels), clamped to the activation's range.
    pub(crate) fn run(&self, x: &[i8], g: &Geometry) -> Vec<i8> {
        let c = g.channels;
        let mut out = overwritable::<i8>(g.pixels() * c);
        let work = g.pixels() * c * self.filter.0 * self.filter.1;
        over_pixels(&mut out, c, g.w.out.max(1), work, |first, o| {
            pool_pixels(self, x, g, first, o)
        });
        out
    }

    /// Output pixels from `first` on, into `o`.
    #[inline(always)]
    fn pixels(&self, x: &[i8], g: &Geometry, first: usize, o: &mut [i8]) {
        let c = g.channels;
        {
            let mut acc = vec![0i32; c];
            for (i, o) in o.chunks_exact_mut(c).enumerate() {
                let (b, oy, ox) = g.pixel(first + i);
                acc.fill(if self.max { i32::MIN } else { 0 });
                let mut count = 0i32;
                for (_, iy) in g.h.taps(oy) {
                    for (_, ix) in g.w.taps(ox) {
                        count += 1;
                        let src = &x[g.at(b, iy, ix)..][..c];
                        if self.max {
                            for (a, &v) in acc.iter_mut().zip(src) {
                                *a = (*a).max(v as i32);
                            }
                        } else {
                            for (a, &v) in acc.iter_mut().zip(src) {
                                *a += v as i32;
                            }
                        }
                    }
                }
                for (y, &a) in o.iter_mut().zip(&acc) {
                    let v = if self.max || count == 0 {
                        a.max(-128)
                    } else if a > 0 {
                        (a + count / 2) / count
                    } else {
                        (a - count / 2) / count
                    };
                    *y = v.clamp(self.range.0, self.range.1) as i8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Activation, Padding, Window};

    /// The depthwise kernel (vector where the CPU has it: interior and border pixels)
    /// equals the plain sum over the taps inside the input, for strides, dilations and
    /// both paddings.
    #[test]
    fn depthwise_equals_the_sum_over_its_taps() {
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as i8
        };
        let (batch, h, w, c) = (2, 9, 11, 83);
        let x: Vec<i8> = (0..batch * h * w * c).map(|_| next()).collect();
        let weights: Vec<i8> = (0..9 * c).map(|_| next()).collect();
        let bias: Vec<i32> = (0..c).map(|j| j as i32 * 53 - 900).collect();
        let scales: Vec<f32> = (0..c).map(|j| 0.004 + j as f32 * 1e-4).collect();
        let requant = Requant::new(1.0, &scales, (1.0, 4), Activation::None)
            .unwrap()
            .per_channel(c);
        let zp = -6;
        let dw = Depthwise::new(
            (3, 3),
            1,
            zp,
            weights.clone(),
            bias.clone(),
            requant.clone(),
        );
        for padding in [Padding::Same, Padding::Valid] {
            for (stride, dilation) in [((1, 1), (1, 1)), ((2, 1), (1, 2)), ((1, 2), (2, 1))] {
                let window = Window {
                    padding,
                    stride,
                    dilation,
                };
                let g = Geometry::new("test", &[batch, h, w, c], (3, 3), &window).unwrap();
                let got = dw.run(&x, &g);
                let mut want = vec![0i8; g.pixels() * c];
                for (p, o) in want.chunks_exact_mut(c).enumerate() {
                    let (b, oy, ox) = g.pixel(p);
                    let mut acc = bias.clone();
                    for (ky, iy) in g.h.taps(oy) {
                        for (kx, ix) in g.w.taps(ox) {
                            for (ch, a) in acc.iter_mut().enumerate() {
                                let v = x[g.at(b, iy, ix) + ch] as i32 - zp;
                                *a += v * weights[(ky * 3 + kx) * c + ch] as i32;
                            }
                        }
                    }
                    requant.row(&acc, o);
                }
                assert_eq!(got, want, "{window:?}");
            }
        }
    }
}
