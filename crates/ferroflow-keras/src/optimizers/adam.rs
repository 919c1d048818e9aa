//! Adam and AdamW (`keras.optimizers.Adam`, `AdamW`: AdamW is Adam with the optimiser's
//! decoupled `weight_decay` set, 0.004 by default).

use super::optimizer::UpdateRule;
use ferroflow_core::{DType, Result, Tensor};

/// Adam with Keras 3's update:
/// `m += (g - m)(1 - β1); v += (g² - v)(1 - β2); α = lr·√(1 - β2^t)/(1 - β1^t);
/// var -= α·m / (√v + ε)` (with `v` replaced by its running maximum when `amsgrad`).
#[derive(Clone, Debug)]
pub struct Adam {
    /// Decay of the first moment.
    pub beta_1: f64,
    /// Decay of the second moment.
    pub beta_2: f64,
    /// Added to the denominator.
    pub epsilon: f64,
    /// Use the running maximum of the second moment (AMSGrad).
    pub amsgrad: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
        }
    }
}

impl Adam {
    /// `√(1 - β2^t) / (1 - β1^t)`, computed in the variable's precision as Keras does
    /// (early in training `1 - β2^t` is small, so the rounding of `β2^t` shows).
    fn bias_correction(&self, dtype: DType, step: u64) -> f64 {
        if dtype == DType::F64 {
            let t = step as f64;
            (1.0 - self.beta_2.powf(t)).sqrt() / (1.0 - self.beta_1.powf(t))
        } else {
            let t = step as f32;
            let b1p = (self.beta_1 as f32).powf(t);
            let b2p = (self.beta_2 as f32).powf(t);
            ((1.0 - b2p).sqrt() / (1.0 - b1p)) as f64
        }
    }
}

impl UpdateRule for Adam {
    fn name(&self) -> &'static str {
        "Adam"
    }

    fn slot_names(&self) -> Vec<&'static str> {
        if self.amsgrad {
            vec!["momentum", "velocity", "velocity_hat"]
        } else {
            vec!["momentum", "velocity"]
        }
    }

    fn update(
        &self,
        var: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        lr: &Tensor,
        step: u64,
    ) -> Result<Tensor> {
        let alpha = lr.mul_scalar(self.bias_correction(var.dtype(), step))?;
        let m = slots[0].add(&g.sub(&slots[0])?.mul_scalar(1.0 - self.beta_1)?)?;
        let v = slots[1].add(&g.square()?.sub(&slots[1])?.mul_scalar(1.0 - self.beta_2)?)?;
        slots[0] = m.clone();
        slots[1] = v.clone();
        let v = if self.amsgrad {
            slots[2] = slots[2].maximum(&v)?;
            slots[2].clone()
        } else {
            v
        };
        var.sub(&m.mul(&alpha)?.div(&v.sqrt()?.add_scalar(self.epsilon)?)?)
    }
}
