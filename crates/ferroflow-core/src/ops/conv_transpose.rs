//! Transposed 2-D convolution (`tf.nn.conv2d_transpose`): the gradient of conv2d with
//! respect to its input, computed as one gemm per image followed by col2im.

use crate::ops::binary::same_dtype;
use crate::ops::conv::conv2d_forward;
use crate::ops::conv::{conv_output, Conv2dGeom, Padding};
use crate::ops::conv_grad::{conv2d_backprop_filter, conv2d_backprop_input, record_conv};
use crate::{DType, Error, Result, Tensor};

impl Tensor {
    /// Transposed convolution.
    ///
    /// # Shapes
    /// input `[n, h, w, cin]`, filter `[kh, kw, cout, cin]` (TF's layout), `output_hw`
    /// `(oh, ow)` -> `[n, oh, ow, cout]`. `output_hw` must be a size that conv2d with the
    /// same strides and padding maps back to `(h, w)`.
    pub fn conv2d_transpose(
        &self,
        filter: &Tensor,
        output_hw: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
        dilations: (usize, usize),
    ) -> Result<Tensor> {
        let op = "conv2d_transpose";
        let dt = same_dtype(op, self, filter)?;
        if dt != DType::F32 {
            if !dt.is_float() {
                return Err(Error::UnsupportedDType { op, dtype: dt });
            }
            let (x, f) = (self.cast(DType::F32)?, filter.cast(DType::F32)?);
            return x
                .conv2d_transpose(&f, output_hw, strides, padding, dilations)?
                .cast(dt);
        }
        if self.rank() != 4 || filter.rank() != 4 || filter.shape()[3] != self.shape()[3] {
            return Err(Error::shapes(
                op,
                "needs input [n, h, w, cin] and filter [kh, kw, cout, cin]",
                self.shape(),
                filter.shape(),
            ));
        }
        let (s, f) = (self.shape(), filter.shape());
        // The forward conv maps the output size back to the input size.
        let (fh, pt) = conv_output(op, output_hw.0, f[0], strides.0, dilations.0, padding, 0)?;
        let (fw, pl) = conv_output(op, output_hw.1, f[1], strides.1, dilations.1, padding, 1)?;
        if (fh, fw) != (s[1], s[2]) {
            return Err(Error::invalid(
                op,
                format!(
                    "output size {output_hw:?} maps to {:?} under conv2d, not the input's {:?}",
                    (fh, fw),
                    (s[1], s[2])
                ),
            ));
        }
        let g = Conv2dGeom {
            n: s[0],
            h: output_hw.0,
            w: output_hw.1,
            cin: f[2],
            kh: f[0],
            kw: f[1],
            cout: s[3],
            groups: 1,
            oh: s[1],
            ow: s[2],
            stride: strides,
            dilation: dilations,
            pad: (pt, pl),
        };
        let x = self.contiguous_data::<f32>()?;
        let wt = filter.contiguous_data::<f32>()?;
        // The transposed convolution is the input gradient of the matching conv2d.
        let out = Tensor::from_vec(conv2d_backprop_input(&g, &x, &wt), &[g.n, g.h, g.w, g.cin])?;
        // dx = conv2d(dy, w), dw = conv2d_backprop_filter with dy as the conv's input.
        record_conv(self, filter, &out, g, conv2d_forward, |g, x, dy| {
            conv2d_backprop_filter(g, dy, x)
        });
        let spec = crate::trace::ConvSpec::new(
            output_hw,
            (s[1], s[2]),
            (f[0], f[1]),
            strides,
            dilations,
            (pt, pl),
            1,
        );
        crate::trace::record(
            op,
            crate::trace::OpKind::Conv2dTranspose(spec),
            move || {
                format!("output_hw={output_hw:?}, strides={strides:?}, padding={padding:?}, dilations={dilations:?}")
            },
            &[self, filter],
            &out,
            move |x| x[0].conv2d_transpose(&x[1], output_hw, strides, padding, dilations),
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// <conv2d(x), y> == <x, conv2d_transpose(y)> for every x, y: the adjoint identity.
    #[test]
    fn is_the_adjoint_of_conv2d() {
        for (pad, s) in [
            (Padding::Same, (2, 2)),
            (Padding::Valid, (1, 2)),
            (Padding::Same, (1, 1)),
        ] {
            let x = crate::random::normal(&[2, 7, 8, 3], 0.0, 1.0, DType::F32, Some(4)).unwrap();
            let f = crate::random::normal(&[3, 2, 3, 5], 0.0, 1.0, DType::F32, Some(5)).unwrap();
            let y = x.conv2d(&f, s, pad, (1, 1)).unwrap();
            let r = crate::random::normal(y.shape(), 0.0, 1.0, DType::F32, Some(6)).unwrap();
            // conv2d_transpose takes the filter as [kh, kw, out=3, in=5].
            let back = r.conv2d_transpose(&f, (7, 8), s, pad, (1, 1)).unwrap();
            assert_eq!(back.shape(), x.shape());
            let lhs: f64 = y
                .to_f64_vec()
                .iter()
                .zip(r.to_f64_vec())
                .map(|(a, b)| a * b)
                .sum();
            let rhs: f64 = x
                .to_f64_vec()
                .iter()
                .zip(back.to_f64_vec())
                .map(|(a, b)| a * b)
                .sum();
            assert!(
                (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                "{lhs} vs {rhs}"
            );
        }
        let r = Tensor::zeros(&[1, 3, 3, 5], DType::F32).unwrap();
        let f = Tensor::zeros(&[3, 3, 2, 5], DType::F32).unwrap();
        assert!(r
            .conv2d_transpose(&f, (9, 9), (1, 1), Padding::Same, (1, 1))
            .is_err());
    }
}
