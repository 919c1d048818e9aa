//! Gradients of 2-D max and average pooling (NHWC, f32).

use crate::ops::pool::PoolKind;

/// The geometry of one pooling op.
#[derive(Clone, Copy)]
pub(crate) struct PoolGeom {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub oh: usize,
    pub ow: usize,
    pub k: (usize, usize),
    pub s: (usize, usize),
    pub pad: (usize, usize),
}

/// dL/dx: max pooling sends each window's gradient to its (first) largest input; average
/// pooling spreads it evenly over the window's real (unpadded) inputs, as TF does.
pub(crate) fn pool2d_backward(kind: PoolKind, g: &PoolGeom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let per_image = g.h * g.w * g.c;
    let mut dx = crate::alloc::zeroed::<f32>(g.n * per_image);
    if per_image == 0 {
        return dx;
    }
    // Whole images per task, split only when the work pays for the handoff.
    crate::parallel::par_rows(&mut dx, per_image, g.k.0 * g.k.1, |start, images| {
        for (i, dst) in images.chunks_mut(per_image).enumerate() {
            let img = start / per_image + i;
            let xi = &x[img * per_image..][..per_image];
            for oy in 0..g.oh {
                let y0 = (oy * g.s.0) as isize - g.pad.0 as isize;
                let ys =
                    y0.max(0) as usize..(y0 + g.k.0 as isize).min(g.h as isize).max(0) as usize;
                for ox in 0..g.ow {
                    let x0 = (ox * g.s.1) as isize - g.pad.1 as isize;
                    let xs =
                        x0.max(0) as usize..(x0 + g.k.1 as isize).min(g.w as isize).max(0) as usize;
                    let grad = &dy[((img * g.oh + oy) * g.ow + ox) * g.c..][..g.c];
                    match kind {
                        PoolKind::Max => {
                            for (ch, &gv) in grad.iter().enumerate() {
                                let mut best: Option<(usize, f32)> = None;
                                for yy in ys.clone() {
                                    for xx in xs.clone() {
                                        let at = (yy * g.w + xx) * g.c + ch;
                                        let v = xi[at];
                                        if best.is_none_or(|(_, b)| {
                                            v > b || (v.is_nan() && !b.is_nan())
                                        }) {
                                            best = Some((at, v));
                                        }
                                    }
                                }
                                if let Some((at, _)) = best {
                                    dst[at] += gv;
                                }
                            }
                        }
                        PoolKind::Avg => {
                            let count = ys.len() * xs.len();
                            if count == 0 {
                                continue;
                            }
                            let inv = 1.0 / count as f32;
                            for yy in ys.clone() {
                                for xx in xs.clone() {
                                    let d = &mut dst[(yy * g.w + xx) * g.c..][..g.c];
                                    d.iter_mut().zip(grad).for_each(|(d, &v)| *d += v * inv);
                                }
                            }
                        }
                    }
                }
            }
        }
    });
    dx
}
