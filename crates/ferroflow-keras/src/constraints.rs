//! Weight constraints applied after each optimiser step, with Keras names and configs.

use crate::config::{obj, serialized, Map};
use ferroflow_core::{Error, Result, Tensor};
use serde_json::Value;

/// A projection applied to a weight after each update.
#[derive(Clone, Debug, PartialEq)]
pub enum Constraint {
    /// Norms along `axis` at most `max_value`.
    MaxNorm {
        /// Largest allowed norm.
        max_value: f64,
        /// Axis along which norms are taken.
        axis: i64,
    },
    /// No negative entries.
    NonNeg,
    /// Unit norm along `axis`.
    UnitNorm {
        /// Axis along which norms are taken.
        axis: i64,
    },
    /// Norms along `axis` pulled into `[min_value, max_value]` at `rate`.
    MinMaxNorm {
        /// Smallest allowed norm.
        min_value: f64,
        /// Largest allowed norm.
        max_value: f64,
        /// How far to move towards the clipped norm (1 = all the way).
        rate: f64,
        /// Axis along which norms are taken.
        axis: i64,
    },
}

const EPSILON: f64 = 1e-7;

impl Constraint {
    /// The projected weight.
    pub fn apply(&self, w: &Tensor) -> Result<Tensor> {
        let norms = |axis: i64| -> Result<Tensor> { w.square()?.sum(axis as isize, true)?.sqrt() };
        match *self {
            Constraint::NonNeg => w.relu(),
            Constraint::MaxNorm { max_value, axis } => {
                let n = norms(axis)?;
                let desired = n.clip_scalar(0.0, max_value)?;
                w.mul(&desired.div(&n.add_scalar(EPSILON)?)?)
            }
            Constraint::UnitNorm { axis } => w.div(&norms(axis)?.add_scalar(EPSILON)?),
            Constraint::MinMaxNorm {
                min_value,
                max_value,
                rate,
                axis,
            } => {
                let n = norms(axis)?;
                let desired = n
                    .clip_scalar(min_value, max_value)?
                    .mul_scalar(rate)?
                    .add(&n.mul_scalar(1.0 - rate)?)?;
                w.mul(&desired.div(&n.add_scalar(EPSILON)?)?)
            }
        }
    }

    /// Keras's serialised form.
    pub fn to_json(&self) -> Value {
        let (class, cfg): (&str, Map) = match *self {
            Constraint::NonNeg => ("NonNeg", Map::new()),
            Constraint::MaxNorm { max_value, axis } => (
                "MaxNorm",
                obj([
                    ("max_value", Value::from(max_value)),
                    ("axis", Value::from(axis)),
                ]),
            ),
            Constraint::UnitNorm { axis } => ("UnitNorm", obj([("axis", Value::from(axis))])),
            Constraint::MinMaxNorm {
                min_value,
                max_value,
                rate,
                axis,
            } => (
                "MinMaxNorm",
                obj([
                    ("min_value", Value::from(min_value)),
                    ("max_value", Value::from(max_value)),
                    ("rate", Value::from(rate)),
                    ("axis", Value::from(axis)),
                ]),
            ),
        };
        serialized("keras.constraints", class, cfg)
    }

    /// Reads a serialised constraint (a name like `"non_neg"` or a Keras object).
    pub fn from_json(v: &Value) -> Result<Self> {
        let (class, cfg) = crate::config::class_and_config(v);
        let f = |k: &str, d: f64| {
            cfg.and_then(|c| c.get(k))
                .and_then(Value::as_f64)
                .unwrap_or(d)
        };
        let axis = cfg
            .and_then(|c| c.get("axis"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        match class {
            "NonNeg" | "non_neg" => Ok(Constraint::NonNeg),
            "MaxNorm" | "max_norm" => Ok(Constraint::MaxNorm {
                max_value: f("max_value", 2.0),
                axis,
            }),
            "UnitNorm" | "unit_norm" => Ok(Constraint::UnitNorm { axis }),
            "MinMaxNorm" | "min_max_norm" => Ok(Constraint::MinMaxNorm {
                min_value: f("min_value", 0.0),
                max_value: f("max_value", 1.0),
                rate: f("rate", 1.0),
                axis,
            }),
            _ => Err(Error::invalid(
                "constraints",
                format!("unknown constraint {v}"),
            )),
        }
    }
}
