//! Gradients of 2-D convolution: the input gradient (patch-gradient gemm + col2im) and
//! the filter gradient (patch-matrix-transposed gemm, summed over images).

use crate::alloc::Scratch;
use crate::autodiff::record::Recorder;
use crate::ops::conv::Conv2dGeom;
use crate::ops::matmul::{gemm_into, MatRef};
use crate::parallel::num_threads;
use crate::{Result, Tensor};
use rayon::prelude::*;

impl Conv2dGeom {
    /// Adds patch rows `cols` (`[oh*ow, kh*kw*cin_g]`) of group `grp` back into the image
    /// positions their taps came from (`img` is one `[h, w, cin]` image).
    pub(crate) fn col2im(&self, cols: &[f32], grp: usize, img: &mut [f32]) {
        let cg = self.cin_g();
        let row_len = self.kh * self.kw * cg;
        for oy in 0..self.oh {
            for ox in 0..self.ow {
                let row = &cols[(oy * self.ow + ox) * row_len..][..row_len];
                for i in 0..self.kh {
                    let y =
                        (oy * self.stride.0 + i * self.dilation.0) as isize - self.pad.0 as isize;
                    if y < 0 || y >= self.h as isize {
                        continue;
                    }
                    for j in 0..self.kw {
                        let x = (ox * self.stride.1 + j * self.dilation.1) as isize
                            - self.pad.1 as isize;
                        if x < 0 || x >= self.w as isize {
                            continue;
                        }
                        let at = (y as usize * self.w + x as usize) * self.cin + grp * cg;
                        let src = &row[(i * self.kw + j) * cg..][..cg];
                        for (d, &v) in img[at..at + cg].iter_mut().zip(src) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// A kernel taking the geometry and two f32 buffers to one f32 buffer.
type ConvKernel = fn(&Conv2dGeom, &[f32], &[f32]) -> Vec<f32>;

/// Records `out = op(x, w)` for a convolution-like op (f32, geometry `g`) whose input
/// gradient is `input_grad(g, dy, w)` and filter gradient `filter_grad(g, x, dy)`.
pub(crate) fn record_conv(
    x: &Tensor,
    w: &Tensor,
    out: &Tensor,
    g: Conv2dGeom,
    input_grad: ConvKernel,
    filter_grad: ConvKernel,
) {
    let Some(r) = Recorder::new(&[x, w]) else {
        return;
    };
    let (xt, wt) = (x.clone(), w.clone());
    r.finish(out, move |dy, needs| {
        let gx = needs[0]
            .then(|| conv_kernel("conv_backprop_input", g, input_grad, dy, &wt, xt.shape()))
            .transpose()?;
        let gw = needs[1]
            .then(|| conv_kernel("conv_backprop_filter", g, filter_grad, &xt, dy, wt.shape()))
            .transpose()?;
        Ok(vec![gx, gw])
    });
}

/// Runs a convolution gradient kernel on `(a, b)` into a tensor of `shape`, and reports it
/// to a tracer as an op of its own.
fn conv_kernel(
    name: &'static str,
    g: Conv2dGeom,
    kernel: ConvKernel,
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
) -> Result<Tensor> {
    let run = move |a: &Tensor, b: &Tensor, shape: &[usize]| {
        Tensor::from_vec(
            kernel(
                &g,
                &a.contiguous_data::<f32>()?,
                &b.contiguous_data::<f32>()?,
            ),
            shape,
        )
    };
    let out = run(a, b, shape)?;
    let s = shape.to_vec();
    crate::trace::record(
        name,
        crate::trace::OpKind::Other,
        move || format!("{g:?}"),
        &[a, b],
        &out,
        move |t| run(&t[0], &t[1], &s),
    );
    Ok(out)
}

/// dL/dx of a convolution: `dy` is `[n, oh, ow, cout]`, `wt` the `[kh, kw, cin_g, cout]`
/// filter; returns `[n, h, w, cin]`.
pub(crate) fn conv2d_backprop_input(g: &Conv2dGeom, dy: &[f32], wt: &[f32]) -> Vec<f32> {
    if g.is_pointwise() {
        // dx[p, i] = Σ_o dy[p, o] · w[i, o] over every pixel p of the batch.
        let m = g.n * g.h * g.w;
        let mut dx = crate::alloc::overwritable::<f32>(m * g.cin);
        let lhs = MatRef::row_major(dy, g.cout);
        let rhs = MatRef::row_major(wt, g.cout).t();
        // (With no output channels, gemm_into writes zeros.)
        gemm_into(
            m,
            g.cin,
            g.cout,
            &mut dx,
            g.cin,
            lhs,
            rhs,
            false,
            num_threads(),
        );
        return dx;
    }
    let rows = g.oh * g.ow;
    let cg = g.cin_g();
    let row_len = g.kh * g.kw * cg;
    let cout_g = g.cout / g.groups;
    let per_image = g.h * g.w * g.cin;
    let mut dx = crate::alloc::zeroed::<f32>(g.n * per_image);
    if per_image == 0 {
        return dx;
    }
    let image = |img: usize, dst: &mut [f32], cols: &mut Scratch<f32>, threads: usize| {
        for grp in 0..g.groups {
            // cols[r, t] = Σ_o dy[r, o] · w[t, o]
            let lhs = MatRef::row_major(dy, g.cout).at(img * rows, grp * cout_g);
            let rhs = MatRef::row_major(wt, g.cout).at(0, grp * cout_g).t();
            gemm_into(
                rows,
                row_len,
                cout_g,
                &mut cols.0,
                row_len,
                lhs,
                rhs,
                false,
                threads,
            );
            g.col2im(&cols.0, grp, dst);
        }
    };
    let scratch = || Scratch::<f32>::zeroed(rows * row_len);
    if g.n >= num_threads() && num_threads() > 1 {
        dx.par_chunks_mut(per_image)
            .enumerate()
            .for_each_init(scratch, |cols, (i, d)| image(i, d, cols, 1));
    } else {
        let mut cols = scratch();
        for (i, d) in dx.chunks_mut(per_image).enumerate() {
            image(i, d, &mut cols, num_threads());
        }
    }
    dx
}

/// dL/dw of a convolution: `x` is `[n, h, w, cin]`, `dy` `[n, oh, ow, cout]`; returns the
/// `[kh, kw, cin_g, cout]` filter gradient.
pub(crate) fn conv2d_backprop_filter(g: &Conv2dGeom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    if g.is_pointwise() {
        // dw[i, o] = Σ_p x[p, i] · dy[p, o] over every pixel p of the batch, one product
        // (split between threads in a fixed way, so the sum's order is fixed too).
        let m = g.n * g.h * g.w;
        let mut dw = crate::alloc::overwritable::<f32>(g.cin * g.cout);
        let lhs = MatRef::row_major(x, g.cin).t();
        let rhs = MatRef::row_major(dy, g.cout);
        // (With no pixels, gemm_into writes zeros.)
        gemm_into(
            g.cin,
            g.cout,
            m,
            &mut dw,
            g.cout,
            lhs,
            rhs,
            false,
            num_threads(),
        );
        return dw;
    }
    let rows = g.oh * g.ow;
    let cg = g.cin_g();
    let row_len = g.kh * g.kw * cg;
    let cout_g = g.cout / g.groups;
    let size = row_len * g.cout;
    // dw_g[t, o] += Σ_r cols[r, t] · dy[r, o], per image, into per-worker accumulators.
    let image = |img: usize, acc: &mut [f32], cols: &mut [f32], threads: usize| {
        for grp in 0..g.groups {
            g.im2col(x, img, grp, cols);
            let lhs = MatRef::row_major(cols, row_len).t();
            let rhs = MatRef::row_major(dy, g.cout).at(img * rows, grp * cout_g);
            gemm_into(
                row_len,
                cout_g,
                rows,
                &mut acc[grp * cout_g..],
                g.cout,
                lhs,
                rhs,
                true,
                threads,
            );
        }
    };
    if g.n >= num_threads() && num_threads() > 1 {
        // Fixed chunks of images, summed in chunk order: the result does not depend on how
        // rayon schedules the work, so training is reproducible run to run.
        let per_chunk = g.n.div_ceil(num_threads());
        let images: Vec<usize> = (0..g.n).collect();
        let partials: Vec<Vec<f32>> = images
            .par_chunks(per_chunk)
            .map(|imgs| {
                let mut acc = vec![0.0f32; size];
                let mut cols = Scratch::<f32>::zeroed(rows * row_len);
                for &img in imgs {
                    image(img, &mut acc, &mut cols.0, 1);
                }
                acc
            })
            .collect();
        let mut total = vec![0.0f32; size];
        for p in &partials {
            total.iter_mut().zip(p).for_each(|(x, y)| *x += y);
        }
        total
    } else {
        let mut acc = vec![0.0f32; size];
        let mut cols = Scratch::<f32>::zeroed(rows * row_len);
        for img in 0..g.n {
            image(img, &mut acc, &mut cols.0, num_threads());
        }
        acc
    }
}
