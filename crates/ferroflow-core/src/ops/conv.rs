//! Convolutions in NHWC with HWIO filters (TensorFlow's layouts): conv1d, conv2d with
//! strides, SAME/VALID padding, dilation and groups, and depthwise conv2d.
//!
//! Each image is lowered to a patch matrix (im2col) that one gemm multiplies by the filter;
//! images run in parallel, each with a single-threaded gemm on a cache-sized buffer.

use crate::alloc::Scratch;
use crate::ops::binary::same_dtype;
use crate::ops::conv_epilogue::{ConvEpilogue, Epilogue};
use crate::ops::conv_grad::{conv2d_backprop_filter, conv2d_backprop_input, record_conv};
use crate::ops::matmul::{gemm_into, MatRef};
use crate::parallel::num_threads;
use crate::{DType, Error, Result, Tensor};
use rayon::prelude::*;

/// How a convolution or pooling window treats the border.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: windows stay inside the input.
    Valid,
    /// Zero padding so that `out = ceil(in / stride)`; the extra goes after (TF's rule).
    Same,
    /// Zero padding given per side, as ONNX's `pads`: top, left, bottom, right.
    Explicit([usize; 4]),
}

/// Whether an explicitly padded convolution takes `pad` zeros on one side of an axis whose
/// window has `kernel` taps `dilation` apart: fewer than the (dilated) window spans.
pub fn explicit_pad_fits(pad: usize, kernel: usize, dilation: usize) -> bool {
    pad < kernel
        .saturating_sub(1)
        .saturating_mul(dilation)
        .saturating_add(1)
}

/// Output size and leading pad of spatial axis `axis` (0: height, 1: width).
pub(crate) fn conv_output(
    op: &'static str,
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
    axis: usize,
) -> Result<(usize, usize)> {
    if stride == 0 || dilation == 0 || kernel == 0 {
        return Err(Error::invalid(
            op,
            format!("kernel {kernel}, stride {stride} and dilation {dilation} must be positive"),
        ));
    }
    let eff = (kernel - 1) * dilation + 1;
    match padding {
        Padding::Valid => {
            if input < eff {
                return Err(Error::invalid(op, format!("input size {input} is smaller than the (dilated) window {eff} with VALID padding")));
            }
            Ok(((input - eff) / stride + 1, 0))
        }
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out.saturating_sub(1)) * stride + eff).saturating_sub(input);
            Ok((out, total / 2))
        }
        Padding::Explicit(p) => {
            let (before, after) = (p[axis], p[axis + 2]);
            let padded = input.saturating_add(before).saturating_add(after);
            let fit = |pad| explicit_pad_fits(pad, kernel, dilation);
            if padded < eff || !fit(before) || !fit(after) {
                return Err(Error::invalid(
                    op,
                    format!(
                        "pads {p:?} do not fit input size {input} and the (dilated) window {eff}"
                    ),
                ));
            }
            Ok(((padded - eff) / stride + 1, before))
        }
    }
}

/// Geometry of a 2-D convolution, shared by the forward and transposed kernels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conv2dGeom {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub kh: usize,
    pub kw: usize,
    pub cout: usize,
    pub groups: usize,
    pub oh: usize,
    pub ow: usize,
    pub stride: (usize, usize),
    pub dilation: (usize, usize),
    pub pad: (usize, usize),
}

impl Conv2dGeom {
    /// The geometry of an NHWC `input` and an HWIO `filter` (`[kh, kw, cin / groups,
    /// cout]`, the group count inferred), checked: errors name `op` and both shapes.
    pub fn new(
        op: &'static str,
        s: &[usize],
        f: &[usize],
        stride: (usize, usize),
        padding: Padding,
        dilation: (usize, usize),
    ) -> Result<Self> {
        if s.len() != 4 || f.len() != 4 {
            return Err(Error::shapes(op, "needs a rank-4 input and filter", s, f));
        }
        if f[2] == 0 || !s[3].is_multiple_of(f[2]) || !f[3].is_multiple_of((s[3] / f[2]).max(1)) {
            return Err(Error::shapes(op, "input channels must be a multiple of the filter's input channels, and output channels of the group count", s, f));
        }
        let (oh, pt) = conv_output(op, s[1], f[0], stride.0, dilation.0, padding, 0)?;
        let (ow, pl) = conv_output(op, s[2], f[1], stride.1, dilation.1, padding, 1)?;
        Ok(Conv2dGeom {
            n: s[0],
            h: s[1],
            w: s[2],
            cin: s[3],
            kh: f[0],
            kw: f[1],
            cout: f[3],
            groups: s[3] / f[2],
            oh,
            ow,
            stride,
            dilation,
            pad: (pt, pl),
        })
    }

    /// Input channels per group (the filter's third dimension).
    pub fn cin_g(&self) -> usize {
        self.cin / self.groups
    }

    /// A 1x1 convolution with stride 1, no padding and one group: a product of the pixels
    /// (rows) with the filter, the input already being its own patch matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == (1, 1)
            && self.pad == (0, 0)
            && self.groups == 1
            && self.cin > 0
    }

    /// Writes the patch matrix of image `img` and group `g` into `cols`
    /// (`[oh*ow, kh*kw*cin_g]`, zeros where a tap falls into the padding).
    pub fn im2col(&self, x: &[f32], img: usize, g: usize, cols: &mut [f32]) {
        self.im2col_rows(x, img, g, 0..self.oh * self.ow, cols);
    }

    /// Writes the patch rows of output pixels `pixels` (row-major over `[oh, ow]`) of image
    /// `img` and group `g` into `cols` (`[pixels.len(), kh*kw*cin_g]`).
    pub fn im2col_rows(
        &self,
        x: &[f32],
        img: usize,
        g: usize,
        pixels: std::ops::Range<usize>,
        cols: &mut [f32],
    ) {
        let cg = self.cin_g();
        let row_len = self.kh * self.kw * cg;
        let base = img * self.h * self.w * self.cin + g * cg;
        // A window row whose taps are adjacent pixels (no dilation, one group) is one run
        // of `kw * cin` floats in the input: one copy instead of `kw` (a stem convolution's
        // taps are 3 floats each, where a library copy call costs more than the data).
        let runs = self.dilation.1 == 1 && cg == self.cin;
        for (k, p) in pixels.enumerate() {
            let (oy, ox) = (p / self.ow, p % self.ow);
            let row = &mut cols[k * row_len..][..row_len];
            let x0 = (ox * self.stride.1) as isize - self.pad.1 as isize;
            let inside = x0 >= 0 && x0 as usize + self.kw <= self.w;
            for (i, dst) in row.chunks_exact_mut(self.kw * cg).enumerate() {
                let y = (oy * self.stride.0 + i * self.dilation.0) as isize - self.pad.0 as isize;
                if y < 0 || y >= self.h as isize {
                    dst.fill(0.0);
                    continue;
                }
                let line = base + y as usize * self.w * self.cin;
                if runs && inside {
                    let src = line + x0 as usize * self.cin;
                    copy_floats(dst, &x[src..src + dst.len()]);
                    continue;
                }
                for (j, dst) in dst.chunks_exact_mut(cg).enumerate() {
                    let xx = x0 + (j * self.dilation.1) as isize;
                    if xx < 0 || xx >= self.w as isize {
                        dst.fill(0.0);
                    } else {
                        let src = line + xx as usize * self.cin;
                        copy_floats(dst, &x[src..src + cg]);
                    }
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` inline: in blocks of 8 and then one by one, so that the few
/// floats of a patch tap cost no library call.
#[inline(always)]
fn copy_floats(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let block: [f32; 8] = s.try_into().expect("blocks of 8");
        d.copy_from_slice(&block);
    }
    for (d, &s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = s;
    }
}

impl Tensor {
    /// 2-D convolution (`tf.nn.conv2d` / `keras.layers.Conv2D` without bias).
    ///
    /// # Shapes
    /// input `[n, h, w, cin]`, filter `[kh, kw, cin / groups, cout]` -> `[n, oh, ow, cout]`;
    /// `groups` is inferred from `cin / filter[2]`.
    pub fn conv2d(
        &self,
        filter: &Tensor,
        strides: (usize, usize),
        padding: Padding,
        dilations: (usize, usize),
    ) -> Result<Tensor> {
        self.conv2d_fused(filter, strides, padding, dilations, ConvEpilogue::default())
    }

    /// [`Tensor::conv2d`] followed by `epilogue` (bias, then activation), which the kernel
    /// applies to each tile of the output while it is in cache. Under a recording tape or a
    /// tracer, and for a bias that is not one f32 per output channel, the epilogue runs as
    /// the separate ops (`add`, then the activation), with the same result.
    pub fn conv2d_fused(
        &self,
        filter: &Tensor,
        strides: (usize, usize),
        padding: Padding,
        dilations: (usize, usize),
        epilogue: ConvEpilogue<'_>,
    ) -> Result<Tensor> {
        let op = "conv2d";
        let dt = same_dtype(op, self, filter)?;
        if dt != DType::F32 {
            if !dt.is_float() {
                return Err(Error::UnsupportedDType { op, dtype: dt });
            }
            let y = self
                .cast(DType::F32)?
                .conv2d(&filter.cast(DType::F32)?, strides, padding, dilations)?
                .cast(dt)?;
            return epilogue.apply_separately(y);
        }
        let g = Conv2dGeom::new(
            op,
            self.shape(),
            filter.shape(),
            strides,
            padding,
            dilations,
        )?;
        let (s, f, oh, ow) = (self.shape(), filter.shape(), g.oh, g.ow);
        let (pt, pl) = g.pad;
        let groups = g.groups;
        let x = self.contiguous_data::<f32>()?;
        let wt = filter.contiguous_data::<f32>()?;
        let observed = crate::trace::is_tracing() || crate::autodiff::is_recording();
        if let Some(ep) = epilogue
            .kernel_form(&[g.n, oh, ow, g.cout])
            .filter(|_| !observed)
        {
            return Tensor::from_vec(
                conv2d_forward_with(&g, &x, &wt, &ep),
                &[g.n, oh, ow, g.cout],
            );
        }
        let out = Tensor::from_vec(conv2d_forward(&g, &x, &wt), &[g.n, oh, ow, g.cout])?;
        // dx = conv2d_backprop_input(dy, w), dw = conv2d_backprop_filter(x, dy).
        record_conv(
            self,
            filter,
            &out,
            g,
            conv2d_backprop_input,
            conv2d_backprop_filter,
        );
        let spec = crate::trace::ConvSpec::new(
            (s[1], s[2]),
            (oh, ow),
            (f[0], f[1]),
            strides,
            dilations,
            (pt, pl),
            groups,
        );
        crate::trace::record(
            op,
            crate::trace::OpKind::Conv2d(spec),
            move || format!("strides={strides:?}, padding={padding:?}, dilations={dilations:?}"),
            &[self, filter],
            &out,
            move |x| x[0].conv2d(&x[1], strides, padding, dilations),
        );
        epilogue.apply_separately(out)
    }

    /// 1-D convolution over `[n, w, cin]` with a `[kw, cin / groups, cout]` filter.
    pub fn conv1d(
        &self,
        filter: &Tensor,
        stride: usize,
        padding: Padding,
        dilation: usize,
    ) -> Result<Tensor> {
        if self.rank() != 3 || filter.rank() != 3 {
            return Err(Error::shapes(
                "conv1d",
                "needs a rank-3 input and filter",
                self.shape(),
                filter.shape(),
            ));
        }
        let y = self.expand_dims(1)?.conv2d(
            &filter.expand_dims(0)?,
            (1, stride),
            padding,
            (1, dilation),
        )?;
        y.squeeze(&[1])
    }

    /// Depthwise 2-D convolution (`tf.nn.depthwise_conv2d`): each input channel is
    /// convolved with its own `multiplier` filters.
    ///
    /// # Shapes
    /// input `[n, h, w, c]`, filter `[kh, kw, c, multiplier]` -> `[n, oh, ow, c * multiplier]`
    pub fn depthwise_conv2d(
        &self,
        filter: &Tensor,
        strides: (usize, usize),
        padding: Padding,
        dilations: (usize, usize),
    ) -> Result<Tensor> {
        self.depthwise_conv2d_fused(filter, strides, padding, dilations, ConvEpilogue::default())
    }

    /// [`Tensor::depthwise_conv2d`] followed by `epilogue`, applied as
    /// [`Tensor::conv2d_fused`] does.
    pub fn depthwise_conv2d_fused(
        &self,
        filter: &Tensor,
        strides: (usize, usize),
        padding: Padding,
        dilations: (usize, usize),
        epilogue: ConvEpilogue<'_>,
    ) -> Result<Tensor> {
        if self.rank() != 4 || filter.rank() != 4 || filter.shape()[2] != self.shape()[3] {
            return Err(Error::shapes(
                "depthwise_conv2d",
                "filter must be [kh, kw, channels, multiplier]",
                self.shape(),
                filter.shape(),
            ));
        }
        let f = filter.shape();
        // Channel c, multiplier m is output channel c * mult + m: a grouped conv with one
        // input channel per group.
        let grouped = filter.reshape_to(&[f[0], f[1], 1, f[2] * f[3]])?;
        self.conv2d_fused(&grouped, strides, padding, dilations, epilogue)
    }
}

/// Runs the forward convolution for f32 data in NHWC / HWIO layout.
pub(crate) fn conv2d_forward(g: &Conv2dGeom, x: &[f32], wt: &[f32]) -> Vec<f32> {
    conv2d_forward_with(g, x, wt, &Epilogue::NONE)
}

/// The forward convolution, with `ep` applied to each tile of the output as it is made.
pub(crate) fn conv2d_forward_with(
    g: &Conv2dGeom,
    x: &[f32],
    wt: &[f32],
    ep: &Epilogue<'_>,
) -> Vec<f32> {
    if g.groups > 1 && g.cin_g() == 1 {
        return super::depthwise::depthwise_forward(g, x, wt, ep);
    }
    let pointwise = g.is_pointwise();
    if pointwise && ep.is_identity() {
        // Every pixel of the batch is one row of a single product: no patch matrix.
        let m = g.n * g.h * g.w;
        let mut out = crate::alloc::overwritable::<f32>(m * g.cout);
        let lhs = MatRef::row_major(x, g.cin);
        let rhs = MatRef::row_major(wt, g.cout);
        gemm_into(
            m,
            g.cout,
            g.cin,
            &mut out,
            g.cout,
            lhs,
            rhs,
            false,
            num_threads(),
        );
        return out;
    }
    let rows = g.oh * g.ow;
    let row_len = g.kh * g.kw * g.cin_g();
    let cout_g = g.cout / g.groups;
    let per_image = rows * g.cout;
    let mut out = crate::alloc::overwritable::<f32>(g.n * per_image);
    if per_image == 0 {
        return out;
    }
    // Output pixels per tile: the tile's patch rows (for a pointwise convolution, its input
    // and output rows) stay in L2 between im2col, gemm and epilogue (a whole image's patch
    // matrix is 9x the image for a 3x3 filter, megabytes early in a network, and would go
    // out to memory and back).
    let tile_row_bytes = 4 * if pointwise { g.cin + g.cout } else { row_len };
    let tile = (CONV_TILE_BYTES / tile_row_bytes.max(1)).max(16).min(rows);
    let tiles = rows.div_ceil(tile);
    let run_tile =
        |img: usize, t: usize, dst: &mut [f32], cols: &mut Scratch<f32>, threads: usize| {
            let pixels = t * tile..((t + 1) * tile).min(rows);
            let len = pixels.len();
            for grp in 0..g.groups {
                let lhs = if pointwise {
                    MatRef::row_major(&x[(img * rows + pixels.start) * g.cin..], g.cin)
                } else {
                    g.im2col_rows(x, img, grp, pixels.clone(), &mut cols.0);
                    MatRef::row_major(&cols.0, row_len)
                };
                let rhs = MatRef::row_major(wt, g.cout).at(0, grp * cout_g);
                gemm_into(
                    len,
                    cout_g,
                    row_len,
                    &mut dst[grp * cout_g..],
                    g.cout,
                    lhs,
                    rhs,
                    false,
                    threads,
                );
            }
            ep.apply(
                &mut dst[..len * g.cout],
                g.cout,
                (img * rows + pixels.start) * g.cout,
            );
        };
    let scratch = || Scratch::<f32>::zeroed(if pointwise { 0 } else { tile * row_len });
    let threads = num_threads();
    if g.n * tiles >= 2 * threads && threads > 1 {
        out.par_chunks_mut(per_image)
            .enumerate()
            .flat_map(|(img, d)| {
                d.par_chunks_mut(tile * g.cout)
                    .enumerate()
                    .map(move |(t, dd)| (img, t, dd))
            })
            .for_each_init(scratch, |cols, (img, t, d)| run_tile(img, t, d, cols, 1));
    } else {
        let mut cols = scratch();
        for (img, d) in out.chunks_mut(per_image).enumerate() {
            for (t, dd) in d.chunks_mut(tile * g.cout).enumerate() {
                run_tile(img, t, dd, &mut cols, threads);
            }
        }
    }
    out
}

/// Bytes of patch rows a convolution tile holds (about half of a core's L2).
const CONV_TILE_BYTES: usize = 256 << 10;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UnaryOp;

    /// Direct convolution by definition, for checking the im2col path.
    fn naive(x: &Tensor, f: &Tensor, s: (usize, usize), p: Padding, d: (usize, usize)) -> Vec<f32> {
        let (xs, fs) = (x.shape().to_vec(), f.shape().to_vec());
        let (xv, fv) = (x.to_vec::<f32>().unwrap(), f.to_vec::<f32>().unwrap());
        let (oh, pt) = conv_output("t", xs[1], fs[0], s.0, d.0, p, 0).unwrap();
        let (ow, pl) = conv_output("t", xs[2], fs[1], s.1, d.1, p, 1).unwrap();
        let groups = xs[3] / fs[2];
        let (cg, og) = (fs[2], fs[3] / groups);
        let mut out = vec![0.0; xs[0] * oh * ow * fs[3]];
        for n in 0..xs[0] {
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..fs[3] {
                        let grp = o / og;
                        let mut acc = 0.0;
                        for i in 0..fs[0] {
                            for j in 0..fs[1] {
                                let y = (oy * s.0 + i * d.0) as isize - pt as isize;
                                let xx = (ox * s.1 + j * d.1) as isize - pl as isize;
                                if y < 0 || xx < 0 || y >= xs[1] as isize || xx >= xs[2] as isize {
                                    continue;
                                }
                                for c in 0..cg {
                                    let xi = ((n * xs[1] + y as usize) * xs[2] + xx as usize)
                                        * xs[3]
                                        + grp * cg
                                        + c;
                                    acc += xv[xi] * fv[((i * fs[1] + j) * cg + c) * fs[3] + o];
                                }
                            }
                        }
                        out[((n * oh + oy) * ow + ox) * fs[3] + o] = acc;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_convolution() {
        let cases = [
            ([2, 7, 6, 4], [3, 3, 4, 5], (1, 1), Padding::Same, (1, 1)),
            ([1, 8, 9, 3], [3, 2, 3, 2], (2, 3), Padding::Valid, (1, 1)),
            ([2, 9, 9, 4], [3, 3, 2, 6], (2, 2), Padding::Same, (1, 1)),
            ([1, 10, 10, 2], [3, 3, 2, 2], (1, 1), Padding::Same, (2, 2)),
            // A stem: 3 channels, so whole window rows are copied as one run where they
            // lie inside the input, tap by tap at the explicit pads.
            (
                [2, 11, 13, 3],
                [3, 5, 3, 8],
                (2, 2),
                Padding::Explicit([1, 2, 1, 2]),
                (1, 1),
            ),
            // 1x1 (one product over the batch's pixels), and 1x1 with a stride (patches).
            ([3, 9, 7, 40], [1, 1, 40, 24], (1, 1), Padding::Same, (1, 1)),
            ([2, 9, 7, 6], [1, 1, 6, 5], (2, 2), Padding::Valid, (1, 1)),
            // One input channel per group (depthwise): the direct kernel, serial and
            // parallel, multiplier 1 and 3, strides, dilation, SAME and VALID.
            ([2, 7, 6, 5], [3, 3, 1, 5], (1, 1), Padding::Same, (1, 1)),
            ([1, 9, 8, 4], [3, 3, 1, 12], (2, 2), Padding::Same, (1, 1)),
            ([1, 11, 10, 3], [5, 3, 1, 3], (1, 2), Padding::Valid, (2, 1)),
            (
                [3, 40, 40, 96],
                [3, 3, 1, 96],
                (2, 2),
                Padding::Same,
                (1, 1),
            ),
            // Rows wide enough for the depthwise run kernel (8 pixels sharing each weight
            // vector), with channels past the last 16-channel block, strides and dilation.
            (
                [1, 12, 21, 40],
                [3, 3, 1, 40],
                (1, 1),
                Padding::Same,
                (1, 1),
            ),
            ([2, 9, 41, 24], [3, 3, 1, 24], (2, 2), Padding::Same, (1, 1)),
            (
                [1, 14, 30, 16],
                [5, 5, 1, 16],
                (1, 1),
                Padding::Valid,
                (1, 2),
            ),
            ([1, 7, 26, 33], [3, 5, 1, 33], (1, 3), Padding::Same, (2, 1)),
            // Rows with room for runs of 4 after those of 8 (14 and 7 wide, as in
            // MobileNet's late blocks), with a channel tail, a stride and a dilation.
            ([2, 9, 14, 48], [3, 3, 1, 48], (1, 1), Padding::Same, (1, 1)),
            ([1, 7, 7, 37], [3, 3, 1, 37], (1, 1), Padding::Same, (1, 1)),
            (
                [1, 15, 15, 32],
                [3, 3, 1, 32],
                (2, 2),
                Padding::Same,
                (1, 1),
            ),
            ([1, 8, 13, 16], [3, 3, 1, 16], (1, 1), Padding::Same, (1, 2)),
        ];
        for (xs, fs, s, p, d) in cases {
            let x = crate::random::normal(&xs, 0.0, 1.0, DType::F32, Some(1)).unwrap();
            let f = crate::random::normal(&fs, 0.0, 1.0, DType::F32, Some(2)).unwrap();
            let got = x.conv2d(&f, s, p, d).unwrap().to_vec::<f32>().unwrap();
            let want = naive(&x, &f, s, p, d);
            assert!(
                got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4),
                "{xs:?} {fs:?}"
            );
        }
        let x = Tensor::zeros(&[1, 4, 4, 3], DType::F32).unwrap();
        let f = Tensor::zeros(&[3, 3, 2, 4], DType::F32).unwrap();
        assert!(x.conv2d(&f, (1, 1), Padding::Same, (1, 1)).is_err());
        let big = Tensor::zeros(&[5, 5, 3, 1], DType::F32).unwrap();
        assert!(x
            .conv2d(&big, (1, 1), Padding::Valid, (1, 1))
            .unwrap_err()
            .to_string()
            .contains("smaller than"));
    }

    /// Every kernel (one product, tiles of patches, depthwise runs and single pixels,
    /// one and two threads) applies the epilogue with exactly the separate ops' result.
    #[test]
    fn fused_epilogue_equals_the_separate_ops() {
        let cases = [
            ([2, 9, 7, 40], [1, 1, 40, 24], (1, 1), Padding::Same),
            ([1, 40, 40, 8], [1, 1, 8, 32], (1, 1), Padding::Same),
            ([2, 9, 9, 4], [3, 3, 4, 6], (2, 2), Padding::Same),
            ([2, 9, 9, 4], [3, 3, 2, 6], (1, 1), Padding::Valid),
            ([1, 12, 21, 40], [3, 3, 1, 40], (1, 1), Padding::Same),
            ([1, 9, 8, 4], [3, 3, 1, 12], (2, 2), Padding::Same),
        ];
        let acts = [
            None,
            Some(UnaryOp::Relu),
            Some(UnaryOp::Relu6),
            Some(UnaryOp::Tanh),
        ];
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                for (xs, fs, s, p) in cases {
                    let x = crate::random::normal(&xs, 0.0, 3.0, DType::F32, Some(1)).unwrap();
                    let f = crate::random::normal(&fs, 0.0, 1.0, DType::F32, Some(2)).unwrap();
                    let b = crate::random::normal(&[fs[3]], 0.0, 1.0, DType::F32, Some(3)).unwrap();
                    for act in acts {
                        for bias in [None, Some(&b)] {
                            let ep = ConvEpilogue::new(bias, act);
                            let got = x.conv2d_fused(&f, s, p, (1, 1), ep).unwrap();
                            let want = ep
                                .apply_separately(x.conv2d(&f, s, p, (1, 1)).unwrap())
                                .unwrap();
                            assert_eq!(
                                got.to_vec::<f32>().unwrap(),
                                want.to_vec::<f32>().unwrap(),
                                "{xs:?} {fs:?} {act:?} bias {}",
                                bias.is_some()
                            );
                        }
                    }
                }
            });
        }
    }

    /// A float64 convolution with a caller's tile runs the tile on f32 values and keeps its
    /// own dtype.
    #[test]
    fn tiled_epilogue_of_another_float_dtype_keeps_the_dtype() {
        let x = crate::random::normal(&[1, 5, 5, 2], 0.0, 1.0, DType::F64, Some(1)).unwrap();
        let f = crate::random::normal(&[3, 3, 2, 3], 0.0, 1.0, DType::F64, Some(2)).unwrap();
        let double = |_: usize, t: &mut [f32]| t.iter_mut().for_each(|v| *v *= 2.0);
        let got = x
            .conv2d_fused(
                &f,
                (1, 1),
                Padding::Same,
                (1, 1),
                ConvEpilogue::tiled(&double),
            )
            .unwrap();
        assert_eq!(got.dtype(), DType::F64);
        let want = x.conv2d(&f, (1, 1), Padding::Same, (1, 1)).unwrap();
        for (g, w) in got
            .to_vec::<f64>()
            .unwrap()
            .iter()
            .zip(want.to_vec::<f64>().unwrap())
        {
            assert!(
                (g - 2.0 * w).abs() < 1e-5 * (1.0 + w.abs()),
                "{g} vs 2 x {w}"
            );
        }
    }

    /// A bias that broadcasts and a recording tape both take the separate ops: the
    /// result and the gradients are those of conv2d + add + activation.
    #[test]
    fn fused_epilogue_falls_back_for_broadcasts_and_tapes() {
        let x = crate::random::normal(&[1, 6, 6, 3], 0.0, 1.0, DType::F32, Some(1)).unwrap();
        let f = crate::random::normal(&[3, 3, 3, 4], 0.0, 1.0, DType::F32, Some(2)).unwrap();
        let b = crate::random::normal(&[6, 1, 4], 0.0, 1.0, DType::F32, Some(3)).unwrap();
        let ep = ConvEpilogue::new(Some(&b), Some(UnaryOp::Relu));
        let sep = |x: &Tensor, f: &Tensor, b: &Tensor| {
            x.conv2d(f, (1, 1), Padding::Same, (1, 1))
                .unwrap()
                .add(b)
                .unwrap()
                .relu()
                .unwrap()
        };
        let got = x
            .conv2d_fused(&f, (1, 1), Padding::Same, (1, 1), ep)
            .unwrap();
        assert_eq!(got.shape(), &[1, 6, 6, 4]);
        assert_eq!(
            got.to_vec::<f32>().unwrap(),
            sep(&x, &f, &b).to_vec::<f32>().unwrap()
        );
        let b = crate::random::normal(&[4], 0.0, 1.0, DType::F32, Some(3)).unwrap();
        let grads = |fused: bool| {
            let tape = crate::GradientTape::new();
            for t in [&x, &f, &b] {
                tape.watch(t);
            }
            let y = if fused {
                let ep = ConvEpilogue::new(Some(&b), Some(UnaryOp::Relu));
                x.conv2d_fused(&f, (1, 1), Padding::Same, (1, 1), ep)
                    .unwrap()
            } else {
                sep(&x, &f, &b)
            };
            let loss = y.square().unwrap().sum(crate::Axes::All, false).unwrap();
            tape.gradient(&loss, &[&x, &f, &b])
                .unwrap()
                .into_iter()
                .map(|g| g.unwrap().to_dense().unwrap().to_vec::<f32>().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(grads(true), grads(false));
    }

    #[test]
    fn depthwise_and_1d() {
        let x = Tensor::from_vec((0..8).map(|v| v as f32).collect(), &[1, 2, 2, 2]).unwrap();
        let f = Tensor::ones(&[1, 1, 2, 2], DType::F32)
            .unwrap()
            .mul(&Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap())
            .unwrap();
        let y = x
            .depthwise_conv2d(&f, (1, 1), Padding::Valid, (1, 1))
            .unwrap();
        assert_eq!(y.shape(), &[1, 2, 2, 4]);
        assert_eq!(y.to_vec::<f32>().unwrap()[..4], [0., 0., 3., 4.]);
        let s = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 4, 1]).unwrap();
        let k = Tensor::from_vec(vec![1.0f32, -1.0], &[2, 1, 1]).unwrap();
        assert_eq!(
            s.conv1d(&k, 1, Padding::Valid, 1)
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            vec![-1., -1., -1.]
        );
    }
}
