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

    /// The taps of output `o`'s window that fall inside the input, as (tap, input
    /// position) pairs: at most `input` of them however wide the window, so a pool
    /// whose file declares a huge filter costs no more than one over the whole input.
    #[inline(always)]
    pub(crate) fn taps(&self, o: usize) -> impl Iterator<Item = (usize, usize)> + use<> {
        let start = o * self.stride;
        let d = self.dilation;
        let first = self.pad.saturating_sub(start).div_ceil(d);
        let end = (self.pad + self.input)
            .saturating_sub(start)
            .div_ceil(d)
            .min(self.kernel);
        let base = start.wrapping_sub(self.pad);
        (first..end.max(first)).map(move |t| (t, base.wrapping_add(t * d)))
    }

    /// The input position of output `o`'s first tap when every tap of its window lies
    /// inside the input ([`Axis::taps`] then yields all `kernel` of them), else `None`.
    #[inline(always)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn inside_start(&self, o: usize) -> Option<usize> {
        let start = (o * self.stride).checked_sub(self.pad)?;
        (start + self.kernel.saturating_sub(1) * self.dilation < self.input).then_some(start)
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

    #[test]
    fn inside_start_is_the_first_tap_of_whole_windows() {
        for a in grid_axes() {
            for o in 0..a.out {
                let taps: Vec<(usize, usize)> = a.taps(o).collect();
                let whole = (taps.len() == a.kernel).then(|| taps.first().map(|t| t.1));
                let expected = match whole {
                    Some(Some(first)) => Some(first),
                    // An empty window lies inside wherever it starts there.
                    Some(None) => a.inside_start(o),
                    None => None,
                };
                assert_eq!(a.inside_start(o), expected, "{a:?} output {o}");
            }
        }
    }

    #[test]
    fn taps_are_the_window_positions_inside_the_input() {
        for a in grid_axes() {
            for o in 0..a.out {
                let expected: Vec<(usize, usize)> = (0..a.kernel)
                    .filter_map(|t| {
                        (o * a.stride + t * a.dilation)
                            .checked_sub(a.pad)
                            .filter(|&i| i < a.input)
                            .map(|i| (t, i))
                    })
                    .collect();
                assert_eq!(a.taps(o).collect::<Vec<_>>(), expected, "{a:?} output {o}");
            }
        }
    }

    /// Every axis of inputs 1..9, windows 1..7, strides and dilations 1..4, both paddings.
    fn grid_axes() -> impl Iterator<Item = Axis> {
        [Padding::Same, Padding::Valid]
            .into_iter()
            .flat_map(|padding| {
                (1..9).flat_map(move |input| {
                    (1..7).flat_map(move |kernel| {
                        (1..4).flat_map(move |stride| {
                            (1..4).map(move |d| Axis::new(input, kernel, stride, d, padding))
                        })
                    })
                })
            })
    }

    #[test]
    fn a_huge_window_visits_only_the_input() {
        let a = Axis::new(20, 1 << 40, 1, 1, Padding::Same);
        assert_eq!(a.out, 20);
        assert!((0..a.out).all(|o| a.taps(o).count() <= 20));
        assert_eq!(
            a.taps(10).map(|(_, i)| i).collect::<Vec<_>>(),
            (0..20).collect::<Vec<_>>()
        );
    }
}
