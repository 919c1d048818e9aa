//! The run-time input quantisation of dynamic-range ("hybrid") kernels: FULLY_CONNECTED,
//! CONV_2D and DEPTHWISE_CONV_2D with int8 weights and float input.
//!
//! LiteRT quantises such an op's input to int8 on every call, one set of parameters per
//! row (per batch row of a fully-connected layer and per pixel of a 1x1 stride-1
//! convolution, which XNNPACK runs as one; per image of other convolutions), multiplies
//! the integers with the int8 weights and scales the sums back. The products of those
//! integers are exact in float, so running the float kernel on the dequantised values
//! `(q - zero_point) * scale` (against the dequantised weights) reproduces LiteRT's result
//! up to float rounding, where the float input itself would differ by up to half a step
//! of the input quantisation in every term.
//!
//! The two schemes, as LiteRT's kernels compute them:
//! - **asymmetric** (per-channel convolutions, fully-connected layers with
//!   `asymmetric_quantize_inputs`, XNNPACK's dynamically quantised kernels): the row's
//!   range widened to contain 0 over 255 steps, the zero point from whichever end gives
//!   the smaller error, nudged into [-128, 127];
//! - **symmetric** (the other hybrid kernels): scale `max |x| / 127`, values in
//!   [-127, 127].
//!
//! A row of zeros stays zeros.

use crate::ir::{ElementType, LiteModel, Op};
use ferroflow_core::{Result, Tensor};

/// How a hybrid op quantises its input at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InputQuantization {
    /// Zero point per row (else symmetric around 0).
    pub asymmetric: bool,
    /// Rows are the input's first dimension (convolutions: one image per row); else
    /// every dimension but the last (fully-connected layers).
    pub per_batch: bool,
}

impl InputQuantization {
    /// How op `k` of `model` quantises its input, when it is a hybrid kernel: float input,
    /// int8 weights.
    pub fn of_op(model: &LiteModel, k: usize) -> Option<Self> {
        let op = model.ops.get(k)?;
        let tensor = |j: usize| {
            let t = *op.inputs.get(j)?;
            model.tensors.get(usize::try_from(t).ok()?)
        };
        let (x, w) = (tensor(0)?, tensor(1)?);
        // The weights may be stored or decoded at load (DENSIFY of sparse int8 weights).
        let hybrid = x.dtype == ElementType::F32 && x.quant.is_none() && w.dtype == ElementType::I8;
        if !hybrid {
            return None;
        }
        let per_channel = w.quant.as_ref().is_some_and(|q| q.scale.len() > 1);
        match op.op {
            Op::FullyConnected {
                asymmetric_inputs, ..
            } => Some(InputQuantization {
                asymmetric: asymmetric_inputs,
                per_batch: false,
            }),
            // LiteRT's XNNPACK delegate runs a 1x1 stride-1 convolution as a
            // fully-connected layer over the pixels: one row per pixel.
            Op::Conv2d { window, .. } => Some(InputQuantization {
                asymmetric: per_channel,
                per_batch: !(window.stride == (1, 1) && w.shape.get(1..3) == Some(&[1, 1])),
            }),
            Op::DepthwiseConv2d { .. } => Some(InputQuantization {
                asymmetric: per_channel,
                per_batch: true,
            }),
            _ => None,
        }
    }

    /// `x` with every row replaced by its quantised values, dequantised again.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let shape = x.shape().to_vec();
        let row = if self.per_batch {
            shape.iter().skip(1).product::<usize>()
        } else {
            shape.last().copied().unwrap_or(1)
        };
        let mut v = x.to_vec::<f32>()?;
        if row > 0 {
            for r in v.chunks_mut(row) {
                if self.asymmetric {
                    asymmetric_row(r);
                } else {
                    symmetric_row(r);
                }
            }
        }
        Tensor::from_vec(v, &shape)
    }
}

/// LiteRT's rounding of scaled values (half away from zero).
fn round(v: f32) -> f32 {
    v.round()
}

fn min_max(r: &[f32]) -> (f32, f32) {
    r.iter()
        .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// Asymmetric int8: scale `(max - min) / 255` over the range widened to contain 0.
fn asymmetric_row(r: &mut [f32]) {
    let (lo, hi) = min_max(r);
    if lo == hi {
        r.fill(0.0);
        return;
    }
    let (qmin, qmax) = (-128.0f32, 127.0f32);
    let scale = (hi - lo) / (qmax - qmin);
    let from_min = qmin - lo / scale;
    let from_max = qmax - hi / scale;
    let error_min = qmin.abs() + (lo / scale).abs();
    let error_max = qmax.abs() + (hi / scale).abs();
    let zero = if error_min < error_max {
        from_min
    } else {
        from_max
    };
    let zero = if zero <= qmin {
        qmin
    } else if zero >= qmax {
        qmax
    } else {
        round(zero)
    };
    let inv = 1.0 / scale;
    for v in r {
        let q = (round(*v * inv) + zero).clamp(qmin, qmax);
        *v = (q - zero) * scale;
    }
}

/// Symmetric int8: scale `max |x| / 127`.
fn symmetric_row(r: &mut [f32]) {
    let (lo, hi) = min_max(r);
    let range = lo.abs().max(hi);
    if range == 0.0 {
        return;
    }
    let scale = range / 127.0;
    let inv = 127.0 / range;
    for v in r {
        *v = round(*v * inv).clamp(-127.0, 127.0) * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantized(x: &[f32], asymmetric: bool) -> Vec<f32> {
        let q = InputQuantization {
            asymmetric,
            per_batch: false,
        };
        q.apply(&Tensor::from_vec(x.to_vec(), &[1, x.len()]).unwrap())
            .unwrap()
            .to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn asymmetric_rows_hit_their_ends_and_zero_exactly() {
        let x = [-1.0, 0.0, 0.25, 3.0];
        let y = quantized(&x, true);
        let step = 4.0 / 255.0;
        assert_eq!(y[1], 0.0);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= step / 2.0 + 1e-6, "{a} -> {b}");
        }
        // An all-positive row has its zero point at -128: 0 is the bottom of the range.
        let y = quantized(&[0.5, 1.0, 2.0], true);
        assert!((y[2] - 2.0).abs() < 1e-6 && (y[0] - 0.5).abs() <= 1.0 / 255.0);
    }

    #[test]
    fn symmetric_rows_use_127_steps_each_side() {
        let y = quantized(&[-2.0, 0.005, 1.0], false);
        assert_eq!(y[0], -2.0);
        assert_eq!(y[1], 0.0);
        assert!((y[2] - 64.0 * 2.0 / 127.0).abs() < 1e-6);
    }

    #[test]
    fn zero_rows_and_per_batch_rows() {
        assert_eq!(quantized(&[0.0, 0.0], true), vec![0.0, 0.0]);
        let q = InputQuantization {
            asymmetric: false,
            per_batch: true,
        };
        let x = Tensor::from_vec(vec![1.0f32, 0.3, 100.0, 0.3], &[2, 1, 2]).unwrap();
        let y = q.apply(&x).unwrap().to_vec::<f32>().unwrap();
        // Each image has its own scale: 0.3 survives in the first, not in the second.
        assert!((y[1] - 0.3).abs() < 0.5 / 127.0);
        assert_eq!(y[3], 0.0);
    }
}
