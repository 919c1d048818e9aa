//! Weight regularizers (`l1`, `l2`, `l1_l2`) with Keras names and configs.

use crate::config::{obj, serialized};
use ferroflow_core::{Error, Result, Tensor};
use serde_json::Value;

/// A penalty on a weight added to the training loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Regularizer {
    /// Factor of the sum of absolute values.
    pub l1: f64,
    /// Factor of the sum of squares.
    pub l2: f64,
}

impl Regularizer {
    /// `l1(factor)`.
    pub fn l1(factor: f64) -> Self {
        Regularizer {
            l1: factor,
            l2: 0.0,
        }
    }

    /// `l2(factor)`.
    pub fn l2(factor: f64) -> Self {
        Regularizer {
            l1: 0.0,
            l2: factor,
        }
    }

    /// `l1_l2(l1, l2)`.
    pub fn l1_l2(l1: f64, l2: f64) -> Self {
        Regularizer { l1, l2 }
    }

    /// The penalty for weight `w` (a scalar tensor).
    pub fn penalty(&self, w: &Tensor) -> Result<Tensor> {
        let mut total = Tensor::scalar(0f32);
        if self.l1 != 0.0 {
            total = total.add(
                &w.abs()?
                    .sum(ferroflow_core::Axes::All, false)?
                    .mul_scalar(self.l1)?,
            )?;
        }
        if self.l2 != 0.0 {
            total = total.add(
                &w.square()?
                    .sum(ferroflow_core::Axes::All, false)?
                    .mul_scalar(self.l2)?,
            )?;
        }
        Ok(total)
    }

    /// Keras's serialised form.
    pub fn to_json(&self) -> Value {
        if self.l2 == 0.0 {
            serialized(
                "keras.regularizers",
                "L1",
                obj([("l1", Value::from(self.l1))]),
            )
        } else if self.l1 == 0.0 {
            serialized(
                "keras.regularizers",
                "L2",
                obj([("l2", Value::from(self.l2))]),
            )
        } else {
            serialized(
                "keras.regularizers",
                "L1L2",
                obj([("l1", Value::from(self.l1)), ("l2", Value::from(self.l2))]),
            )
        }
    }

    /// Reads a serialised regularizer (a name like `"l2"` or a Keras object).
    pub fn from_json(v: &Value) -> Result<Self> {
        let (class, cfg) = crate::config::class_and_config(v);
        let f = |k: &str, d: f64| {
            cfg.and_then(|c| c.get(k))
                .and_then(Value::as_f64)
                .unwrap_or(d)
        };
        match class {
            "L1" | "l1" => Ok(Self::l1(f("l1", 0.01))),
            "L2" | "l2" => Ok(Self::l2(f("l2", 0.01))),
            "L1L2" | "l1_l2" => Ok(Self::l1_l2(f("l1", 0.0), f("l2", 0.0))),
            _ => Err(Error::invalid(
                "regularizers",
                format!("unknown regularizer {v}"),
            )),
        }
    }
}
