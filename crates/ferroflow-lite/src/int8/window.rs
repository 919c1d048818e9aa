//! Sliding-window geometry of NHWC int8 convolutions and pools (TFLite's padding rules).

use crate::ir::{Padding, Window};
use ferroflow_core::{Error, Result};

/// One spatial axis: output size and the padding before the first window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Axis {
    /// Output positions.
    pub(crate) out: usize,
    /// Padding before the input (windows start at `o * stride - pad`).
    pub(crate) pad: usize,
    /// Input size.
    pub(crate) input: usize,
    /// Window size.
    pub(crate) kernel: usize,
    /// Stride.
    pub(crate) stride: usize,
    /// Dilation.
    pub(crate) dilation: usize,
}

impl Axis {
    /// TFLite's `ComputePaddingHeightWidth` for one axis.
    pub(crate) fn new(
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        padding: Padding,
    ) -> Self {
        let (stride, dilation) = (stride.max(1), dilation.max(1));
        let eff = (kernel.max(1) - 1) * dilation + 1;
        let out = match padding {
            Padding::Same => input.div_ceil(stride),
            Padding::Valid => (input + stride).saturating_sub(eff) / stride,
        };
        let total = (out.saturating_sub(1) * stride + eff).saturating_sub(input);
        let pad = match padding {
            Padding::Same => total / 2,
            Padding::Valid => 0,
        };
        Axis {
            out,
            pad,
            input,
            kernel,
            stride,
            dilation,
        }
    }

    /// The input position of tap `t` of output `o`, if inside the input.
    #[inline(always)]
    pub(crate) fn source(&self, o: usize, t: usize) -> Option<usize> {
        (o * self.stride + t * self.dilation)
            .checked_sub(self.pad)
            .filter(|&i| i < self.input)
    }
}

/// An NHWC input `[batch, height, width, channels]` and the two axes of a window over it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub(crate) batch: usize,
    pub(crate) channels: usize,
    pub(crate) h: Axis,
    pub(crate) w: Axis,
}

impl Geometry {
    /// The geometry of a `kernel` window over `shape`, or an error naming `op`.
    pub(crate) fn new(
        op: &'static str,
        shape: &[usize],
        kernel: (usize, usize),
        window: &Window,
    ) -> Result<Self> {
        let [batch, h, w, channels] = shape[..] else {
            return Err(Error::invalid(
                op,
                format!("input of shape {shape:?} is not NHWC"),
            ));
        };
        let g = Geometry {
            batch,
            channels,
            h: Axis::new(
                h,
                kernel.0,
                window.stride.0,
                window.dilation.0,
                window.padding,
            ),
            w: Axis::new(
                w,
                kernel.1,
                window.stride.1,
                window.dilation.1,
                window.padding,
            ),
        };
        crate::kernels::check_output_size(op, &[batch, g.h.out, g.w.out, channels])?;
        Ok(g)
    }

    /// Output pixels (batch x height x width).
    pub(crate) fn pixels(&self) -> usize {
        self.batch * self.h.out * self.w.out
    }

    /// The input offset of pixel (b, y, x).
    #[inline(always)]
    pub(crate) fn at(&self, b: usize, y: usize, x: usize) -> usize {
        ((b * self.h.input + y) * self.w.input + x) * self.channels
    }

    /// (batch, row, column) of output pixel `p`.
    #[inline(always)]
    pub(crate) fn pixel(&self, p: usize) -> (usize, usize, usize) {
        let x = p % self.w.out;
        let y = (p / self.w.out) % self.h.out;
        (p / (self.w.out * self.h.out), y, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_and_valid_padding_as_tflite() {
        let a = Axis::new(7, 3, 2, 1, Padding::Same);
        assert_eq!((a.out, a.pad), (4, 1));
        let a = Axis::new(8, 3, 2, 1, Padding::Same);
        assert_eq!((a.out, a.pad), (4, 0));
        let a = Axis::new(7, 3, 2, 1, Padding::Valid);
        assert_eq!((a.out, a.pad), (3, 0));
        let a = Axis::new(2, 5, 1, 1, Padding::Valid);
        assert_eq!(a.out, 0);
        let a = Axis::new(6, 3, 1, 2, Padding::Same);
        assert_eq!((a.out, a.pad), (6, 2));
    }
}
