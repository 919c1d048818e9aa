//! Tensor constructors: constants, identity, ranges.

use crate::dispatch::with_stored;
use crate::shape::numel;
use crate::{DType, Error, Result, Stored, Tensor};

impl Tensor {
    /// A tensor of `shape` filled with `value` converted to `dtype`.
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        let n = numel(shape);
        Ok(
            with_stored!(dtype, T => Tensor::from_storage(T::into_storage(vec![T::filled(value); n]), shape)),
        )
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, 0.0, dtype)
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, 1.0, dtype)
    }

    /// Zeros with the shape and dtype of `self`.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.shape(), self.dtype())
    }

    /// Ones with the shape and dtype of `self`.
    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::ones(self.shape(), self.dtype())
    }

    /// `value` everywhere, with the shape and dtype of `self`.
    pub fn full_like(&self, value: f64) -> Result<Tensor> {
        Tensor::full(self.shape(), value, self.dtype())
    }

    /// An `n x m` matrix with ones on the diagonal (`tf.eye`).
    pub fn eye(n: usize, m: usize, dtype: DType) -> Result<Tensor> {
        let mut v = vec![0.0; n * m];
        for i in 0..n.min(m) {
            v[i * m + i] = 1.0;
        }
        Tensor::from_vec(v, &[n, m])?.cast(dtype)
    }

    /// Values from `start` up to (not including) `limit` in steps of `delta` (`tf.range`).
    pub fn arange(start: f64, limit: f64, delta: f64, dtype: DType) -> Result<Tensor> {
        if delta == 0.0 || !delta.is_finite() || !start.is_finite() || !limit.is_finite() {
            return Err(Error::invalid(
                "range",
                format!("invalid range {start}..{limit} step {delta}"),
            ));
        }
        let n = ((limit - start) / delta).ceil().max(0.0) as usize;
        let v: Vec<f64> = (0..n).map(|i| start + i as f64 * delta).collect();
        Tensor::from_vec(v, &[n])?.cast(dtype)
    }

    /// `num` evenly spaced values from `start` to `stop` inclusive (`tf.linspace`).
    pub fn linspace(start: f64, stop: f64, num: usize, dtype: DType) -> Result<Tensor> {
        let v: Vec<f64> = match num {
            0 => vec![],
            1 => vec![start],
            _ => {
                let step = (stop - start) / (num - 1) as f64;
                (0..num)
                    .map(|i| {
                        if i == num - 1 {
                            stop
                        } else {
                            start + i as f64 * step
                        }
                    })
                    .collect()
            }
        };
        Tensor::from_vec(v, &[num])?.cast(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors() {
        assert_eq!(
            Tensor::eye(2, 3, DType::I32)
                .unwrap()
                .to_vec::<i32>()
                .unwrap(),
            vec![1, 0, 0, 0, 1, 0]
        );
        assert_eq!(
            Tensor::arange(0.0, 5.0, 2.0, DType::I64)
                .unwrap()
                .to_vec::<i64>()
                .unwrap(),
            vec![0, 2, 4]
        );
        assert_eq!(
            Tensor::arange(3.0, 0.0, -1.0, DType::F32)
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            vec![3.0, 2.0, 1.0]
        );
        assert!(Tensor::arange(0.0, 1.0, 0.0, DType::F32).is_err());
        assert_eq!(
            Tensor::linspace(0.0, 1.0, 5, DType::F64)
                .unwrap()
                .to_vec::<f64>()
                .unwrap(),
            vec![0.0, 0.25, 0.5, 0.75, 1.0]
        );
        let f = Tensor::full(&[2, 2], 7.0, DType::U8).unwrap();
        assert_eq!(f.to_vec::<u8>().unwrap(), vec![7; 4]);
    }
}
