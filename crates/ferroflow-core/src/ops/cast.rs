//! `cast`: convert elements to another dtype (`tf.cast`).

use crate::autodiff::record::Recorder;
use crate::dispatch::with_any;
use crate::elementwise::map;
use crate::{DType, Element, Result, Tensor};

impl Tensor {
    /// Converts every element to `dtype`, like `tf.cast`.
    ///
    /// Floats to integers truncate toward zero (saturating at the integer range; NaN
    /// becomes 0); booleans become 0/1; any non-zero value becomes `true`.
    pub fn cast(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let out = with_any!(self.dtype(), "cast", A => {
            with_any!(dtype, "cast", B => map::<A, B>(self, 1, |v| B::from_f64(v.to_f64())))
        })?;
        if let Some(r) = Recorder::new(&[self]) {
            let from = self.dtype();
            r.finish(&out, move |g, _| Ok(vec![Some(g.cast(from)?)]));
        }
        crate::trace::record(
            "cast",
            crate::trace::OpKind::Cast(dtype),
            || dtype.to_string(),
            &[self],
            &out,
            move |x| x[0].cast(dtype),
        );
        Ok(out)
    }

    /// Runs `f` in the dtype arithmetic happens in: f16/bf16 inputs are widened to f32 and
    /// float results narrowed back; other dtypes pass straight through.
    pub(crate) fn in_compute_dtype(
        &self,
        f: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let dt = self.dtype();
        if dt.compute_dtype() == dt {
            return f(self);
        }
        let out = f(&self.cast(dt.compute_dtype())?)?;
        if out.dtype().is_float() {
            out.cast(dt)
        } else {
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_like_tensorflow() {
        let t = Tensor::from_vec(vec![-1.7f32, 0.0, 2.9, f32::NAN], &[4]).unwrap();
        assert_eq!(
            t.cast(DType::I32).unwrap().to_vec::<i32>().unwrap(),
            vec![-1, 0, 2, 0]
        );
        assert_eq!(
            t.cast(DType::Bool).unwrap().to_vec::<bool>().unwrap(),
            vec![true, false, true, true]
        );
        let h = t
            .cast(DType::F16)
            .unwrap()
            .cast(DType::F32)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert!((h[0] + 1.7).abs() < 1e-3);
        let u = Tensor::from_vec(vec![true, false], &[2])
            .unwrap()
            .cast(DType::F64)
            .unwrap();
        assert_eq!(u.to_vec::<f64>().unwrap(), vec![1.0, 0.0]);
    }
}
