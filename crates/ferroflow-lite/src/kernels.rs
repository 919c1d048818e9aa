//! Float kernels of TFLite builtins that have no ferroflow core op of their own: image
//! resizing with TFLite's coordinate rules, depth/space rearrangement, PReLU, and L2 and
//! local response normalisation, each as LiteRT's reference kernels define it.

use ferroflow_core::ops::remap::PadMode;
use ferroflow_core::{DType, Error, Result, Tensor};

fn float_data(op: &'static str, x: &Tensor) -> Result<Vec<f32>> {
    if !x.dtype().is_float() {
        return Err(Error::invalid(
            op,
            format!("needs a float input, got {}", x.dtype()),
        ));
    }
    x.cast(DType::F32)?.contiguous().to_vec::<f32>()
}

fn nhwc(op: &'static str, x: &Tensor) -> Result<[usize; 4]> {
    match *x.shape() {
        [n, h, w, c] => Ok([n, h, w, c]),
        _ => Err(Error::invalid(
            op,
            format!("needs an NHWC input, got shape {:?}", x.shape()),
        )),
    }
}

/// Most elements an op may produce from sizes a file gives (tile multiples, paddings,
/// resize and output shapes): 2^28 (1 GiB of float32), past the largest activations of
/// real models (a 1024x1024x64 segmentation map is 2^26) and within a fuzzer's 2 GB.
pub(crate) const MAX_ELEMENTS: usize = 1 << 28;

/// An error unless an output of shape `dims` has at most [`MAX_ELEMENTS`] elements.
pub(crate) fn check_output_size(op: &'static str, dims: &[usize]) -> Result<usize> {
    match dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
        Some(n) if n <= MAX_ELEMENTS => Ok(n),
        _ => Err(Error::invalid(
            op,
            format!("an output of shape {dims:?} is too large"),
        )),
    }
}

/// An error unless a pad or tile output of shape `dims` fits in [`MAX_ELEMENTS`] together
/// with the per-axis index maps the core remap builds for it (an entry and its offset,
/// 32 bytes, per position along each output axis: for a long 1-D tile they outweigh the
/// output eightfold).
pub(crate) fn check_remap_size(op: &'static str, dims: &[usize]) -> Result<()> {
    let n = check_output_size(op, dims)?;
    let positions = dims.iter().try_fold(0usize, |a, &d| a.checked_add(d));
    match positions
        .and_then(|p| p.checked_mul(8))
        .and_then(|m| m.checked_add(n))
    {
        Some(cost) if cost <= MAX_ELEMENTS => Ok(()),
        _ => Err(Error::invalid(
            op,
            format!("an output of shape {dims:?} needs index maps that are too large"),
        )),
    }
}

/// The source coordinate scale of one axis (TFLite's `align_corners` rule).
fn axis_scale(input: usize, output: usize, align_corners: bool) -> f32 {
    if align_corners && output > 1 {
        (input as f32 - 1.0) / (output as f32 - 1.0)
    } else {
        input as f32 / output as f32
    }
}

/// For each output position of one axis: the two source indices and the weight of the
/// second (bilinear), as LiteRT computes them.
fn bilinear_taps(input: usize, output: usize, align: bool, half: bool) -> Vec<(usize, usize, f32)> {
    let scale = axis_scale(input, output, align);
    (0..output)
        .map(|o| {
            let src = if half {
                (o as f32 + 0.5) * scale - 0.5
            } else {
                o as f32 * scale
            };
            let lo = (src.floor() as isize).max(0) as usize;
            let hi = (src.ceil() as isize).clamp(0, input as isize - 1) as usize;
            (lo.min(input - 1), hi, src - lo as f32)
        })
        .collect()
}

/// For each output position of one axis: its nearest source index.
fn nearest_taps(input: usize, output: usize, align: bool, half: bool) -> Vec<usize> {
    let scale = axis_scale(input, output, align);
    let offset = if half { 0.5 } else { 0.0 };
    (0..output)
        .map(|o| {
            let src = (o as f32 + offset) * scale;
            // TFLite rounds half away from zero (`TfLiteRound`) when corners are aligned.
            let i = if align { src.round() } else { src.floor() } as isize;
            i.clamp(0, input as isize - 1) as usize
        })
        .collect()
}

/// `RESIZE_BILINEAR` / `RESIZE_NEAREST_NEIGHBOR` of an NHWC image to `(height, width)`.
pub fn resize(
    x: &Tensor,
    size: (usize, usize),
    bilinear: bool,
    align_corners: bool,
    half_pixel_centers: bool,
) -> Result<Tensor> {
    let op = if bilinear {
        "RESIZE_BILINEAR"
    } else {
        "RESIZE_NEAREST_NEIGHBOR"
    };
    let [n, h, w, c] = nhwc(op, x)?;
    let (oh, ow) = size;
    let total = check_output_size(op, &[n, oh, ow, c])?;
    if h == 0 || w == 0 || oh == 0 || ow == 0 {
        return Err(Error::invalid(
            op,
            format!("cannot resize {:?} to {oh}x{ow}", x.shape()),
        ));
    }
    let data = float_data(op, x)?;
    let mut out = Vec::with_capacity(total);
    let pixel = |b: usize, y: usize, xx: usize| ((b * h + y) * w + xx) * c;
    if bilinear {
        let ys = bilinear_taps(h, oh, align_corners, half_pixel_centers);
        let xs = bilinear_taps(w, ow, align_corners, half_pixel_centers);
        for b in 0..n {
            for &(y0, y1, dy) in &ys {
                for &(x0, x1, dx) in &xs {
                    let (p00, p01) = (pixel(b, y0, x0), pixel(b, y0, x1));
                    let (p10, p11) = (pixel(b, y1, x0), pixel(b, y1, x1));
                    for ch in 0..c {
                        out.push(
                            data[p00 + ch] * (1.0 - dy) * (1.0 - dx)
                                + data[p10 + ch] * dy * (1.0 - dx)
                                + data[p01 + ch] * (1.0 - dy) * dx
                                + data[p11 + ch] * dy * dx,
                        );
                    }
                }
            }
        }
    } else {
        let ys = nearest_taps(h, oh, align_corners, half_pixel_centers);
        let xs = nearest_taps(w, ow, align_corners, half_pixel_centers);
        for b in 0..n {
            for &y in &ys {
                for &xx in &xs {
                    let p = pixel(b, y, xx);
                    out.extend_from_slice(&data[p..p + c]);
                }
            }
        }
    }
    Tensor::from_vec(out, &[n, oh, ow, c])
}

/// `DEPTH_TO_SPACE`: `[n, h, w, b*b*c]` to `[n, h*b, w*b, c]` (TF's DCR order).
pub fn depth_to_space(x: &Tensor, block: usize) -> Result<Tensor> {
    let [n, h, w, c] = nhwc("DEPTH_TO_SPACE", x)?;
    let bb = block * block;
    if block == 0 || c % bb != 0 {
        return Err(Error::invalid(
            "DEPTH_TO_SPACE",
            format!(
                "block {block} does not divide the {c} channels of {:?}",
                x.shape()
            ),
        ));
    }
    let (b, co) = (block as isize, (c / bb) as isize);
    let (n, h, w) = (n as isize, h as isize, w as isize);
    x.reshape(&[n, h, w, b, b, co])?
        .transpose(&[0, 1, 3, 2, 4, 5])?
        .contiguous()
        .reshape(&[n, h * b, w * b, co])
}

/// `SPACE_TO_DEPTH`: `[n, h*b, w*b, c]` to `[n, h, w, b*b*c]`.
pub fn space_to_depth(x: &Tensor, block: usize) -> Result<Tensor> {
    let [n, h, w, c] = nhwc("SPACE_TO_DEPTH", x)?;
    if block == 0 || h % block != 0 || w % block != 0 {
        return Err(Error::invalid(
            "SPACE_TO_DEPTH",
            format!("block {block} does not divide the image of {:?}", x.shape()),
        ));
    }
    let b = block as isize;
    let (n, ho, wo, c) = (
        n as isize,
        (h / block) as isize,
        (w / block) as isize,
        c as isize,
    );
    x.reshape(&[n, ho, b, wo, b, c])?
        .transpose(&[0, 1, 3, 2, 4, 5])?
        .contiguous()
        .reshape(&[n, ho, wo, b * b * c])
}

/// The block sizes and per-axis pairs of `SPACE_TO_BATCH_ND` / `BATCH_TO_SPACE_ND`,
/// checked against `x`: one block size (>= 1) and one pair (>= 0) per spatial axis,
/// which are the axes after the batch.
fn blocks(op: &'static str, x: &Tensor, block: &[i64], pairs: &[i64]) -> Result<Vec<usize>> {
    let m = block.len();
    if m == 0
        || x.rank() < m + 1
        || pairs.len() != 2 * m
        || block.iter().any(|&b| !(1..=1 << 16).contains(&b))
        || pairs.iter().any(|&p| !(0..=1 << 24).contains(&p))
    {
        return Err(Error::invalid(
            op,
            format!(
                "block shape {block:?} and pads/crops {pairs:?} for an input of shape {:?}",
                x.shape()
            ),
        ));
    }
    Ok(block.iter().map(|&b| b as usize).collect())
}

/// `SPACE_TO_BATCH_ND(x, block_shape, paddings)`: the padded spatial axes cut into
/// blocks whose offsets move to the batch (block offsets major, batch minor):
/// `[n, p1, .., pm, rest..]` to `[n * b1 * .. * bm, p1 / b1, .., pm / bm, rest..]`. TF's
/// converter brackets a dilated convolution with it and [`batch_to_space_nd`].
pub fn space_to_batch_nd(x: &Tensor, block: &[i64], pads: &[i64]) -> Result<Tensor> {
    let op = "SPACE_TO_BATCH_ND";
    let b = blocks(op, x, block, pads)?;
    let m = b.len();
    let mut pairs = vec![(0usize, 0usize); x.rank()];
    let mut padded = x.shape().to_vec();
    for i in 0..m {
        pairs[i + 1] = (pads[2 * i] as usize, pads[2 * i + 1] as usize);
        padded[i + 1] += pairs[i + 1].0 + pairs[i + 1].1;
        if !padded[i + 1].is_multiple_of(b[i]) {
            return Err(Error::invalid(
                op,
                format!(
                    "block {} does not divide padded axis {} of size {}",
                    b[i],
                    i + 1,
                    padded[i + 1]
                ),
            ));
        }
    }
    check_output_size(op, &padded)?;
    let xp = x.pad(&pairs, PadMode::Constant(0.0))?;
    let rest = &padded[m + 1..];
    let mut split = vec![padded[0] as isize];
    for i in 0..m {
        split.extend([(padded[i + 1] / b[i]) as isize, b[i] as isize]);
    }
    split.extend(rest.iter().map(|&d| d as isize));
    let mut perm: Vec<usize> = (0..m).map(|i| 2 * i + 2).collect();
    perm.push(0);
    perm.extend((0..m).map(|i| 2 * i + 1));
    perm.extend(2 * m + 1..2 * m + 1 + rest.len());
    let mut out = vec![(padded[0] * b.iter().product::<usize>()) as isize];
    out.extend((0..m).map(|i| (padded[i + 1] / b[i]) as isize));
    out.extend(rest.iter().map(|&d| d as isize));
    xp.reshape(&split)?
        .transpose(&perm)?
        .contiguous()
        .reshape(&out)
}

/// `BATCH_TO_SPACE_ND(x, block_shape, crops)`: the inverse of [`space_to_batch_nd`], then
/// `crops` taken off each spatial axis.
pub fn batch_to_space_nd(x: &Tensor, block: &[i64], crops: &[i64]) -> Result<Tensor> {
    let op = "BATCH_TO_SPACE_ND";
    let b = blocks(op, x, block, crops)?;
    let m = b.len();
    let shape = x.shape();
    let blocks_n: usize = b.iter().product();
    if !shape[0].is_multiple_of(blocks_n) {
        return Err(Error::invalid(
            op,
            format!("block shape {block:?} does not divide the batch of {shape:?}"),
        ));
    }
    let n = shape[0] / blocks_n;
    let rest = &shape[m + 1..];
    let mut split: Vec<isize> = b.iter().map(|&v| v as isize).collect();
    split.push(n as isize);
    split.extend(shape[1..].iter().map(|&d| d as isize));
    let mut perm = vec![m];
    for i in 0..m {
        perm.extend([m + 1 + i, i]);
    }
    perm.extend(2 * m + 1..2 * m + 1 + rest.len());
    let mut joined = vec![n as isize];
    joined.extend((0..m).map(|i| (shape[i + 1] * b[i]) as isize));
    joined.extend(rest.iter().map(|&d| d as isize));
    let mut begin = vec![0usize; x.rank()];
    let mut size: Vec<isize> = joined.clone();
    for i in 0..m {
        let (lo, hi) = (crops[2 * i] as usize, crops[2 * i + 1] as usize);
        let full = shape[i + 1] * b[i];
        if lo + hi > full {
            return Err(Error::invalid(
                op,
                format!("crops {crops:?} exceed axis {} of size {full}", i + 1),
            ));
        }
        begin[i + 1] = lo;
        size[i + 1] = (full - lo - hi) as isize;
    }
    x.reshape(&split)?
        .transpose(&perm)?
        .contiguous()
        .reshape(&joined)?
        .slice(&begin, &size)
        .map(|t| t.contiguous())
}

/// `PRELU`: `x` where `x >= 0`, else `alpha * x`, with `alpha` broadcasting.
pub fn prelu(x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    let zero = Tensor::scalar(0.0f32).cast(x.dtype())?;
    Tensor::where_(&x.greater_equal(&zero)?, x, &x.mul(alpha)?)
}

/// `L2_NORMALIZATION` over the last axis: `x / max(||x||, 1e-6)`.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let op = "L2_NORMALIZATION";
    let depth = *x
        .shape()
        .last()
        .ok_or_else(|| Error::invalid(op, "needs an input of rank 1 or more"))?;
    let mut data = float_data(op, x)?;
    if depth > 0 {
        for row in data.chunks_mut(depth) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
    Tensor::from_vec(data, x.shape())
}

/// `LOCAL_RESPONSE_NORMALIZATION` across the last axis:
/// `x[i] * (bias + alpha * sum(x[j]^2 for |j - i| <= radius))^-beta`.
pub fn local_response_norm(
    x: &Tensor,
    radius: usize,
    bias: f32,
    alpha: f32,
    beta: f32,
) -> Result<Tensor> {
    let op = "LOCAL_RESPONSE_NORMALIZATION";
    let depth = *x
        .shape()
        .last()
        .ok_or_else(|| Error::invalid(op, "needs an input of rank 1 or more"))?;
    let data = float_data(op, x)?;
    let mut out = vec![0f32; data.len()];
    if depth > 0 {
        for (row, dst) in data.chunks(depth).zip(out.chunks_mut(depth)) {
            for (i, d) in dst.iter_mut().enumerate() {
                let lo = i.saturating_sub(radius);
                let hi = (i + radius).min(depth - 1);
                let sum: f32 = row[lo..=hi].iter().map(|v| v * v).sum();
                *d = row[i] * (bias + alpha * sum).powf(-beta);
            }
        }
    }
    Tensor::from_vec(out, x.shape())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_resizes_keep_the_image() {
        let x =
            Tensor::from_vec((0..24).map(|v| v as f32).collect::<Vec<_>>(), &[1, 2, 3, 4]).unwrap();
        for (bilinear, align, half) in [
            (true, false, false),
            (true, false, true),
            (false, true, false),
        ] {
            let y = resize(&x, (2, 3), bilinear, align, half).unwrap();
            assert_eq!(y.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
        }
    }

    #[test]
    fn depth_and_space_are_inverse() {
        let x =
            Tensor::from_vec((0..96).map(|v| v as f32).collect::<Vec<_>>(), &[2, 2, 3, 8]).unwrap();
        let y = depth_to_space(&x, 2).unwrap();
        assert_eq!(y.shape(), &[2, 4, 6, 2]);
        assert_eq!(
            space_to_depth(&y, 2).unwrap().to_vec::<f32>().unwrap(),
            x.to_vec::<f32>().unwrap()
        );
        assert!(depth_to_space(&x, 3).is_err());
    }

    #[test]
    fn bad_resize_sizes_are_errors() {
        let x = Tensor::zeros(&[1, 2, 2, 1], DType::F32).unwrap();
        assert!(resize(&x, (0, 4), true, false, false).is_err());
        assert!(resize(&x, (1 << 20, 1 << 20), false, false, false).is_err());
        assert!(resize(&x, (1 << 15, 1 << 14), false, false, false).is_err());
        assert!(resize(
            &Tensor::zeros(&[2, 2], DType::F32).unwrap(),
            (4, 4),
            true,
            false,
            false
        )
        .is_err());
    }
}
