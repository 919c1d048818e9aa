//! Normalisation kernels: moments, batch normalisation and layer normalisation.

use crate::ops::reduce::Axes;
use crate::{Error, Result, Tensor};

impl Tensor {
    /// Mean and population variance over `axes` (`tf.nn.moments`).
    pub fn moments(&self, axes: impl Into<Axes>, keepdims: bool) -> Result<(Tensor, Tensor)> {
        let axes = axes.into();
        Ok((
            self.mean(axes.clone(), keepdims)?,
            self.variance(axes, keepdims)?,
        ))
    }

    /// `(x - mean) / sqrt(variance + epsilon) * scale + offset` (`tf.nn.batch_normalization`);
    /// statistics and parameters broadcast against `x` (usually shape `[channels]`).
    pub fn batch_norm(
        &self,
        mean: &Tensor,
        variance: &Tensor,
        offset: Option<&Tensor>,
        scale: Option<&Tensor>,
        epsilon: f64,
    ) -> Result<Tensor> {
        let inv = variance.add_scalar(epsilon)?.rsqrt()?;
        let inv = match scale {
            Some(s) => inv.mul(s)?,
            None => inv,
        };
        let y = self.sub(mean)?.mul(&inv)?;
        match offset {
            Some(o) => y.add(o),
            None => Ok(y),
        }
    }

    /// Layer normalisation over the trailing `num_axes` axes with per-feature `gamma`/`beta`
    /// (`keras.layers.LayerNormalization` with `axis=-1` when `num_axes` is 1).
    pub fn layer_norm(
        &self,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        num_axes: usize,
        epsilon: f64,
    ) -> Result<Tensor> {
        if num_axes == 0 || num_axes > self.rank() {
            return Err(Error::invalid(
                "layer_norm",
                format!(
                    "cannot normalise {num_axes} trailing axes of {:?}",
                    self.shape()
                ),
            ));
        }
        let axes: Vec<isize> = (self.rank() - num_axes..self.rank())
            .map(|a| a as isize)
            .collect();
        let (mean, var) = self.moments(axes, true)?;
        self.batch_norm(&mean, &var, beta, gamma, epsilon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn normalises() {
        let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 6.0, 8.0], &[2, 3]).unwrap();
        let y = x
            .layer_norm(None, None, 1, 0.0)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let k = (1.5f32).sqrt();
        assert!((y[0] + k).abs() < 1e-5 && (y[1]).abs() < 1e-6 && (y[5] - k).abs() < 1e-5);
        let (m, v) = x.moments(0, false).unwrap();
        assert_eq!(m.to_vec::<f32>().unwrap(), vec![2.5, 4.0, 5.5]);
        assert_eq!(v.to_vec::<f32>().unwrap(), vec![2.25, 4.0, 6.25]);
        let g = Tensor::full(&[3], 2.0, DType::F32).unwrap();
        let b = Tensor::full(&[3], 1.0, DType::F32).unwrap();
        let bn = x
            .batch_norm(&m, &v, Some(&b), Some(&g), 0.0)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert!((bn[0] + 1.0).abs() < 1e-6 && (bn[3] - 3.0).abs() < 1e-6);
        assert!(x.layer_norm(None, None, 3, 1e-3).is_err());
    }
}
