//! RMSprop (`keras.optimizers.RMSprop`).

use super::optimizer::UpdateRule;
use ferroflow_core::{Result, Tensor};

/// RMSprop with Keras 3's update: `s = ρ·s + (1-ρ)·g²`; centered subtracts the squared
/// running mean of `g`; `Δ = lr·g/√(s + ε)`; with momentum `m = momentum·m + Δ; var -= m`.
#[derive(Clone, Debug)]
pub struct RMSprop {
    /// Discount of the running average.
    pub rho: f64,
    /// Momentum factor (0: none).
    pub momentum: f64,
    /// Added inside the square root.
    pub epsilon: f64,
    /// Normalise by the variance rather than the second moment.
    pub centered: bool,
}

impl Default for RMSprop {
    fn default() -> Self {
        RMSprop {
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
        }
    }
}

impl UpdateRule for RMSprop {
    fn config(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        crate::config::obj([
            ("rho", Value::from(self.rho)),
            ("momentum", Value::from(self.momentum)),
            ("epsilon", Value::from(self.epsilon)),
            ("centered", Value::from(self.centered)),
        ])
    }

    fn name(&self) -> &'static str {
        "RMSprop"
    }

    fn slot_names(&self) -> Vec<&'static str> {
        let mut s = vec!["velocity"];
        if self.momentum > 0.0 {
            s.push("momentum");
        }
        if self.centered {
            s.push("average_gradient");
        }
        s
    }

    fn update(
        &self,
        var: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        lr: &Tensor,
        _: &Tensor,
    ) -> Result<Tensor> {
        let rho = self.rho;
        let vel = slots[0]
            .mul_scalar(rho)?
            .add(&g.square()?.mul_scalar(1.0 - rho)?)?;
        slots[0] = vel.clone();
        let denom = if self.centered {
            let i = slots.len() - 1;
            let avg = slots[i].mul_scalar(rho)?.add(&g.mul_scalar(1.0 - rho)?)?;
            slots[i] = avg.clone();
            vel.sub(&avg.square()?)?.add_scalar(self.epsilon)?
        } else {
            vel.add_scalar(self.epsilon)?
        };
        let increment = lr.mul(g)?.mul(&denom.rsqrt()?)?;
        if self.momentum > 0.0 {
            let m = slots[1].mul_scalar(self.momentum)?.add(&increment)?;
            slots[1] = m.clone();
            var.sub(&m)
        } else {
            var.sub(&increment)
        }
    }
}
