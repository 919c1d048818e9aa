//! FTRL-Proximal (`keras.optimizers.Ftrl`), the click-through-rate staple.

use super::optimizer::UpdateRule;
use ferroflow_core::{Error, Result, Tensor};

/// FTRL with Keras 3's update: with `n` the accumulator and `z` the linear slot,
/// `g' = g + 2·l2_shrinkage·w; n' = n + g²; z += g' - (n'^-p - n^-p)/lr · w;
/// w = (clip(z, ±l1) - z) / (n'^-p/lr + 2·(l2 + β/(2·lr)))`, `p` the
/// `learning_rate_power`. Keras defaults: lr 0.001, p -0.5, accumulator 0.1.
#[derive(Clone, Debug)]
pub struct Ftrl {
    /// `learning_rate_power` (at most 0).
    pub learning_rate_power: f64,
    /// Starting value of the accumulator (at least 0).
    pub initial_accumulator_value: f64,
    /// L1 strength (`l1_regularization_strength`).
    pub l1: f64,
    /// L2 strength (`l2_regularization_strength`).
    pub l2: f64,
    /// L2 shrinkage on the gradient (`l2_shrinkage_regularization_strength`).
    pub l2_shrinkage: f64,
    /// `beta`.
    pub beta: f64,
}

impl Default for Ftrl {
    fn default() -> Self {
        Ftrl {
            learning_rate_power: -0.5,
            initial_accumulator_value: 0.1,
            l1: 0.0,
            l2: 0.0,
            l2_shrinkage: 0.0,
            beta: 0.0,
        }
    }
}

impl Ftrl {
    /// Checks the options as Keras's constructor does.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f64| Err(Error::invalid("Ftrl", format!("{what} must be {v}")));
        if self.initial_accumulator_value < 0.0 {
            return bad(
                "initial_accumulator_value >= 0, got",
                self.initial_accumulator_value,
            );
        }
        if self.learning_rate_power > 0.0 {
            return bad("learning_rate_power <= 0, got", self.learning_rate_power);
        }
        if self.l1 < 0.0 || self.l2 < 0.0 || self.l2_shrinkage < 0.0 {
            return bad(
                "regularization strengths >= 0, got l1/l2/shrinkage with minimum",
                self.l1.min(self.l2).min(self.l2_shrinkage),
            );
        }
        Ok(())
    }
}

impl UpdateRule for Ftrl {
    fn config(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        crate::config::obj([
            ("learning_rate_power", Value::from(self.learning_rate_power)),
            (
                "initial_accumulator_value",
                Value::from(self.initial_accumulator_value),
            ),
            ("l1_regularization_strength", Value::from(self.l1)),
            ("l2_regularization_strength", Value::from(self.l2)),
            (
                "l2_shrinkage_regularization_strength",
                Value::from(self.l2_shrinkage),
            ),
            ("beta", Value::from(self.beta)),
        ])
    }

    fn name(&self) -> &'static str {
        "Ftrl"
    }

    fn slot_names(&self) -> Vec<&'static str> {
        vec!["accumulator", "linear"]
    }

    fn init_slot(&self, i: usize, value: &Tensor) -> Result<Tensor> {
        if i == 0 {
            value.full_like(self.initial_accumulator_value)
        } else {
            value.zeros_like()
        }
    }

    fn update(
        &self,
        var: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        lr: &Tensor,
        _: &Tensor,
    ) -> Result<Tensor> {
        let p = -self.learning_rate_power;
        let l2 = lr
            .scalar_like(self.beta)?
            .div(&lr.mul_scalar(2.0)?)?
            .add_scalar(self.l2)?;
        let grad = g.add(&var.mul_scalar(2.0 * self.l2_shrinkage)?)?;
        let (accum, linear) = (&slots[0], &slots[1]);
        let new_accum = accum.add(&g.square()?)?;
        let (pn, po) = (new_accum.pow_scalar(p)?, accum.pow_scalar(p)?);
        let linear = linear.add(&grad.sub(&pn.sub(&po)?.div(lr)?.mul(var)?)?)?;
        let quadratic = pn.div(lr)?.add(&l2.mul_scalar(2.0)?)?;
        let clipped = linear.clip(
            &linear.scalar_like(-self.l1)?,
            &linear.scalar_like(self.l1)?,
        )?;
        let new = clipped.sub(&linear)?.div(&quadratic)?;
        slots[0] = new_accum;
        slots[1] = linear;
        Ok(new)
    }
}
