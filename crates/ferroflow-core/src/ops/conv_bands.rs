//! A pointwise convolution and the depthwise convolution that reads its output (the
//! expansion and the depthwise step of a MobileNet inverted-residual block) computed band
//! by band of output rows: each band expands only the input rows its depthwise taps reach,
//! so the expanded activation (6x the block's channels, megabytes at 112x112) is made and
//! read while it is in the core's cache instead of going out to memory and back. Rows on
//! a band's edge are expanded by both neighbouring bands.

use super::conv::{Conv2dGeom, Padding};
use super::conv_epilogue::ConvEpilogue;
use super::conv_packed::PackedConvFilter;
use crate::{DType, Error, Result, Tensor};

/// Bytes of expanded rows (and the input rows they come from) one band holds: with its
/// output and the filters, inside a 1 MiB L2. A smaller band expands a larger share of
/// rows twice (MobileNetV2 at batch 1 ran fastest from about 640 KiB).
const BAND_BYTES: usize = 640 << 10;
/// Expanded maps (one image's) from this size on run in bands: a smaller one stays in
/// the core's cache between the two ops anyway, and bands would only add the rows they
/// expand twice.
const BANDED_MIN_BYTES: usize = 1 << 20;

impl Tensor {
    /// `self.conv2d_packed(pointwise, 1, VALID, 1, pointwise_ep)` followed by
    /// `.depthwise_conv2d_fused(depthwise, strides, padding, dilations, depthwise_ep)`,
    /// computed in bands of output rows (see the module's note) when the two can run that
    /// way: f32 data, a 1x1 pointwise filter, a depthwise filter with channel multiplier 1,
    /// epilogues without residuals or tile functions, nothing traced or recorded. Otherwise
    /// the two ops run one after the other. Either way the result is the same.
    #[allow(clippy::too_many_arguments)]
    pub fn pointwise_then_depthwise(
        &self,
        pointwise: &PackedConvFilter,
        pointwise_ep: ConvEpilogue<'_>,
        depthwise: &Tensor,
        strides: (usize, usize),
        padding: Padding,
        dilations: (usize, usize),
        depthwise_ep: ConvEpilogue<'_>,
    ) -> Result<Tensor> {
        let pf = pointwise.filter().shape();
        let banded = self.dtype() == DType::F32
            && self.rank() == 4
            && pf.len() == 4
            && pf[..2] == [1, 1]
            && pf[2] == self.shape()[3]
            && depthwise.rank() == 4
            && depthwise.shape()[2] == pf[3]
            && depthwise.shape()[3] == 1
            && [&pointwise_ep, &depthwise_ep]
                .iter()
                .all(|ep| ep.residual.is_none() && ep.tile.is_none())
            && !crate::trace::is_tracing()
            && !crate::autodiff::is_recording();
        let separately = || {
            self.conv2d_packed(pointwise, (1, 1), Padding::Valid, (1, 1), pointwise_ep)?
                .depthwise_conv2d_fused(depthwise, strides, padding, dilations, depthwise_ep)
        };
        if !banded {
            return separately();
        }
        let s = self.shape();
        let mid = [s[0], s[1], s[2], pf[3]];
        let grouped = [depthwise.shape()[0], depthwise.shape()[1], 1, pf[3]];
        let g = Conv2dGeom::new(
            "depthwise_conv2d",
            &mid,
            &grouped,
            strides,
            padding,
            dilations,
        )?;
        let bands = Bands::new(&g, self.shape()[3]);
        if bands.per_image <= 1 || 4 * g.h * g.w * g.cout < BANDED_MIN_BYTES {
            return separately();
        }
        let (Some(ep1), Some(ep2)) = (
            pointwise_ep.kernel_form(&mid),
            depthwise_ep.kernel_form(&[g.n, g.oh, g.ow, g.cout]),
        ) else {
            return separately();
        };
        let x = self.contiguous_data::<f32>()?;
        let dw = depthwise.contiguous_data::<f32>()?;
        let in_row = g.w * s[3];
        let out_row = g.ow * g.cout;
        let mut out = crate::alloc::overwritable::<f32>(g.n * g.oh * out_row);
        // Per image, per band: (image, band, the band's output rows).
        let mut parts = Vec::with_capacity(g.n * bands.per_image);
        for (img, image) in out.chunks_mut(g.oh * out_row).enumerate() {
            for (band, rows) in image.chunks_mut(bands.rows * out_row).enumerate() {
                parts.push((img, band, rows));
            }
        }
        let run = |(img, band, dst): (usize, usize, &mut [f32])| -> Result<bool> {
            let (oy0, oy1) = bands.out_rows(band, g.oh);
            let (r0, r1, pads) = bands.input_rows(&g, oy0, oy1);
            let base = (img * g.h + r0) * in_row;
            let band_x = &x[base..base + (r1 - r0) * in_row];
            let pg = Conv2dGeom::new(
                "conv2d",
                &[1, r1 - r0, g.w, s[3]],
                pf,
                (1, 1),
                Padding::Valid,
                (1, 1),
            )?;
            let mut expanded =
                crate::alloc::Scratch(crate::alloc::overwritable::<f32>((r1 - r0) * g.w * g.cout));
            if !pointwise.forward_into(&pg, band_x, &ep1, &mut expanded.0) {
                return Ok(false);
            }
            let dg = Conv2dGeom::new(
                "depthwise_conv2d",
                &[1, r1 - r0, g.w, g.cout],
                &grouped,
                strides,
                Padding::Explicit(pads),
                dilations,
            )?;
            if (dg.oh, dg.ow) != (oy1 - oy0, g.ow) {
                return Err(Error::invalid(
                    "depthwise_conv2d",
                    format!("band {band} of {:?} came out {}x{}", mid, dg.oh, dg.ow),
                ));
            }
            super::depthwise::depthwise_forward_into(&dg, &expanded.0, &dw, &ep2, dst);
            Ok(true)
        };
        let done: Vec<bool> = if crate::num_threads() > 1 {
            use rayon::prelude::*;
            parts
                .into_par_iter()
                .map(|p| crate::on_calling_thread(|| run(p)))
                .collect::<Result<_>>()?
        } else {
            parts.into_iter().map(run).collect::<Result<_>>()?
        };
        if done.contains(&false) {
            return separately();
        }
        Tensor::from_vec(out, &[g.n, g.oh, g.ow, g.cout])
    }
}

/// How the output rows of one image are cut into bands.
struct Bands {
    /// Output rows per band (the last band may have fewer).
    rows: usize,
    /// Bands per image.
    per_image: usize,
}

impl Bands {
    /// Bands whose expanded input rows take about [`BAND_BYTES`], at least one output row
    /// each, in a number that the threads share evenly where the image allows.
    fn new(g: &Conv2dGeom, cin: usize) -> Bands {
        let span = (g.kh - 1) * g.dilation.0 + 1;
        // Expanded rows plus the input rows they come from.
        let row_bytes = 4 * g.w * (g.cout + cin);
        let fit = BAND_BYTES / row_bytes.max(1);
        // Input rows of a band of r output rows: (r - 1) * stride + span.
        let rows = (fit.saturating_sub(span) / g.stride.0 + 1).clamp(1, g.oh.max(1));
        let threads = crate::num_threads();
        let mut per_image = g.oh.div_ceil(rows);
        if g.n == 1 && threads > 1 && per_image > 1 {
            per_image = per_image.next_multiple_of(threads).min(g.oh);
        }
        let rows = g.oh.div_ceil(per_image.max(1));
        Bands {
            rows,
            per_image: g.oh.div_ceil(rows),
        }
    }

    /// The output rows `oy0..oy1` of band `band`.
    fn out_rows(&self, band: usize, oh: usize) -> (usize, usize) {
        let oy0 = band * self.rows;
        (oy0, (oy0 + self.rows).min(oh))
    }

    /// The input rows `r0..r1` that output rows `oy0..oy1` read, and the explicit pads
    /// (top, left, bottom, right) that give exactly those output rows from them.
    fn input_rows(&self, g: &Conv2dGeom, oy0: usize, oy1: usize) -> (usize, usize, [usize; 4]) {
        let (s, pt) = (g.stride.0, g.pad.0);
        let span = (g.kh - 1) * g.dilation.0 + 1;
        // First input row of the band's first window, and one past its last window's end,
        // in padded coordinates (the image starts at pt).
        let (first, end) = (oy0 * s, (oy1 - 1) * s + span);
        let r0 = first.saturating_sub(pt).min(g.h);
        let r1 = end.saturating_sub(pt).min(g.h);
        let top = (pt + r0) - first;
        let bottom = end - (pt + r1);
        let span_w = (g.kw - 1) * g.dilation.1 + 1;
        let right = ((g.ow - 1) * g.stride.1 + span_w).saturating_sub(g.w + g.pad.1);
        (r0, r1, [top, g.pad.1, bottom, right])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::unary::UnaryOp;

    fn normal(shape: &[usize], seed: u64) -> Tensor {
        crate::random::normal(shape, 0.0, 1.0, DType::F32, Some(seed)).unwrap()
    }

    /// Banded and op-by-op results of one block, on `threads` threads.
    fn both(
        x: &[usize],
        expand: usize,
        k: usize,
        stride: usize,
        padding: Padding,
        dilation: usize,
        threads: usize,
    ) -> Option<(Tensor, Tensor)> {
        let (cin, c) = (x[3], expand);
        let xs = normal(x, 1);
        let pw = normal(&[1, 1, cin, c], 2);
        let dw = normal(&[k, k, c, 1], 3);
        let (b1, b2) = (normal(&[c], 4), normal(&[c], 5));
        let packed = PackedConvFilter::new(&pw).unwrap()?;
        let ep1 = ConvEpilogue::new(Some(&b1), Some(UnaryOp::Relu6));
        let ep2 = ConvEpilogue::new(Some(&b2), None);
        let (s, d) = ((stride, stride), (dilation, dilation));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let banded = xs
                .pointwise_then_depthwise(&packed, ep1, &dw, s, padding, d, ep2)
                .unwrap();
            let apart = xs
                .conv2d_fused(&pw, (1, 1), Padding::Valid, (1, 1), ep1)
                .unwrap()
                .depthwise_conv2d_fused(&dw, s, padding, d, ep2)
                .unwrap();
            Some((banded, apart))
        })
    }

    /// Input shape, expanded channels, depthwise size, stride, padding, dilation.
    type Case = (&'static [usize], usize, usize, usize, Padding, usize);

    #[test]
    fn bands_equal_the_two_ops_one_after_the_other() {
        let cases: &[Case] = &[
            (&[1, 112, 112, 16], 96, 3, 2, Padding::Same, 1),
            (&[1, 56, 56, 24], 144, 3, 1, Padding::Same, 1),
            (&[2, 75, 61, 8], 64, 3, 2, Padding::Same, 1),
            (&[1, 80, 67, 8], 64, 5, 2, Padding::Same, 1),
            (&[1, 128, 40, 16], 64, 3, 1, Padding::Valid, 2),
            (
                &[1, 121, 60, 8],
                48,
                3,
                2,
                Padding::Explicit([1, 0, 0, 1]),
                1,
            ),
        ];
        for &(x, c, k, s, p, d) in cases {
            // Every case is large enough to run in bands (else this compares an op with itself).
            assert!(4 * x[1] * x[2] * c >= BANDED_MIN_BYTES, "{x:?} x {c}");
            for threads in [1, 2, 3] {
                let Some((banded, apart)) = both(x, c, k, s, p, d, threads) else {
                    return; // no packed kernel on this CPU
                };
                assert_eq!(banded.shape(), apart.shape(), "{x:?} s{s} {p:?} t{threads}");
                let (a, b) = (
                    banded.to_vec::<f32>().unwrap(),
                    apart.to_vec::<f32>().unwrap(),
                );
                let worst = a
                    .iter()
                    .zip(&b)
                    .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
                    .fold(0.0f32, f32::max);
                assert!(worst < 1e-5, "{x:?} s{s} {p:?} t{threads}: {worst}");
            }
        }
    }

    #[test]
    fn input_rows_and_pads_give_exactly_the_band() {
        let g = Conv2dGeom::new(
            "t",
            &[1, 112, 112, 96],
            &[3, 3, 1, 96],
            (2, 2),
            Padding::Same,
            (1, 1),
        )
        .unwrap();
        let bands = Bands::new(&g, 16);
        assert!(bands.per_image > 1);
        let mut next = 0;
        for band in 0..bands.per_image {
            let (oy0, oy1) = bands.out_rows(band, g.oh);
            assert_eq!(oy0, next);
            next = oy1;
            let (r0, r1, p) = bands.input_rows(&g, oy0, oy1);
            let rows = r1 - r0;
            let (oh, _) =
                super::super::conv::conv_output("t", rows, 3, 2, 1, Padding::Explicit(p), 0)
                    .unwrap();
            assert_eq!(oh, oy1 - oy0);
        }
        assert_eq!(next, g.oh);
    }
}
