//! `keras.layers.ReLU`: a rectifier with optional ceiling (`ReLU(6.0)` in MobileNet),
//! leak below the threshold, and threshold.

use crate::config::{ConfigReader, Map};
use crate::layer::{expect_inputs, CallContext, Layer, LayerBase};
use ferroflow_core::{Result, Tensor};
use serde_json::Value;

/// `min(max_value, x)` for `x > threshold`, `negative_slope * (x - threshold)` below
/// (Keras's `activations.relu`).
pub struct ReLU {
    base: LayerBase,
    max_value: Option<f64>,
    negative_slope: f64,
    threshold: f64,
}

impl ReLU {
    /// A ReLU capped at `max_value` (`None`: uncapped).
    pub fn new(max_value: Option<f64>) -> Self {
        ReLU {
            base: LayerBase::new("ReLU", None),
            max_value,
            negative_slope: 0.0,
            threshold: 0.0,
        }
    }

    /// Slope below the threshold (a leaky ReLU).
    pub fn negative_slope(mut self, s: f64) -> Self {
        self.negative_slope = s;
        self
    }

    /// Values at or below this are rectified.
    pub fn threshold(mut self, t: f64) -> Self {
        self.threshold = t;
        self
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("ReLU", config)?;
        let mut l = ReLU::new(r.f64_opt("max_value")?)
            .negative_slope(r.f64_or("negative_slope", 0.0)?)
            .threshold(r.f64_or("threshold", 0.0)?);
        l.base = LayerBase::from_reader("ReLU", &r);
        r.finish()?;
        Ok(l)
    }

    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (slope, t) = (self.negative_slope, self.threshold);
        if slope != 0.0 && self.max_value.is_none() && t == 0.0 {
            return x.leaky_relu(slope);
        }
        let mut clip = self.max_value;
        let mut y = if t != 0.0 {
            let above = x.greater(&x.scalar_like(t)?)?.cast(x.dtype())?;
            x.mul(&above)?
        } else if self.max_value == Some(6.0) {
            clip = None;
            x.relu6()?
        } else {
            x.relu()?
        };
        if let Some(m) = clip {
            y = y.clip_scalar(0.0, m)?;
        }
        if slope != 0.0 {
            let negative = x.neg()?.add_scalar(t)?.relu()?;
            y = y.sub(&negative.mul_scalar(slope)?)?;
        }
        Ok(y)
    }
}

super::layer_boilerplate!(ReLU, "ReLU");

impl Layer for ReLU {
    super::layer_identity!("ReLU");

    // Keras's `supports_masking`: the mask passes through.
    fn supports_masking(&self) -> bool {
        true
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        Ok(vec![self.apply(&inputs[0])?])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert(
            "max_value".into(),
            self.max_value.map_or(Value::Null, Value::from),
        );
        m.insert("negative_slope".into(), Value::from(self.negative_slope));
        m.insert("threshold".into(), Value::from(self.threshold));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_keras_relu_semantics() {
        let x = Tensor::from_vec(vec![-3.0f32, -0.5, 0.0, 0.5, 2.0, 7.0], &[6]).unwrap();
        let run = |l: ReLU| l.apply(&x).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(run(ReLU::new(Some(6.0))), [0.0, 0.0, 0.0, 0.5, 2.0, 6.0]);
        assert_eq!(
            run(ReLU::new(None).negative_slope(0.1)),
            [-0.3, -0.05, 0.0, 0.5, 2.0, 7.0]
        );
        assert_eq!(
            run(ReLU::new(Some(1.0)).threshold(0.5)),
            [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
        );
        let y = run(ReLU::new(Some(5.0)).negative_slope(0.5).threshold(1.0));
        assert_eq!(y, [-2.0, -0.75, -0.5, -0.25, 2.0, 5.0]);
    }
}
