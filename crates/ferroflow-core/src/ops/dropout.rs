//! Dropout: zero a random fraction of elements while training, scaling the rest.

use crate::{Error, Result, Tensor};

impl Tensor {
    /// Drops each element with probability `rate` and scales survivors by `1 / (1 - rate)`
    /// (`tf.nn.dropout`); identity when `training` is false. `seed` follows the rules of
    /// [`crate::random`].
    pub fn dropout(&self, rate: f64, training: bool, seed: Option<u64>) -> Result<Tensor> {
        if !(0.0..1.0).contains(&rate) {
            return Err(Error::invalid(
                "dropout",
                format!("rate must be in [0, 1), got {rate}"),
            ));
        }
        if !self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: "dropout",
                dtype: self.dtype(),
            });
        }
        if !training || rate == 0.0 {
            return Ok(self.clone());
        }
        let u = crate::random::uniform(self.shape(), 0.0, 1.0, self.dtype(), seed)?;
        let keep = u.greater_equal(&u.scalar_like(rate)?)?;
        let scaled = self.mul_scalar(1.0 / (1.0 - rate))?;
        Tensor::where_(&keep, &scaled, &Tensor::zeros(&[], self.dtype())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn keeps_expectation() {
        let x = Tensor::ones(&[10000], DType::F32).unwrap();
        let y = x
            .dropout(0.3, true, Some(9))
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / 1e4;
        assert!((kept - 0.7).abs() < 0.03, "{kept}");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
        assert_eq!(
            x.dropout(0.5, false, None)
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            vec![1.0; 10000]
        );
        assert!(x.dropout(1.0, true, None).is_err());
    }
}
