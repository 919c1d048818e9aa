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

impl Adam {
    /// The same arithmetic as the composed update, in one pass over the four buffers.
    fn update_fused_f32(
        &self,
        var: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        lr: &Tensor,
        step: u64,
    ) -> Result<Tensor> {
        let alpha = lr.to_scalar::<f32>()? * self.bias_correction(DType::F32, step) as f32;
        let (b1, b2, eps) = (
            (1.0 - self.beta_1) as f32,
            (1.0 - self.beta_2) as f32,
            self.epsilon as f32,
        );
        let (w, gd) = (var.data::<f32>()?, g.data::<f32>()?);
        let (m0, v0) = (slots[0].data::<f32>()?, slots[1].data::<f32>()?);
        let n = w.len();
        let zeroed = ferroflow_core::alloc::zeroed::<f32>;
        let (mut m, mut v, mut out) = (zeroed(n), zeroed(n), zeroed(n));
        let kernel = |start: usize, m: &mut [f32], v: &mut [f32], out: &mut [f32]| {
            let r = start..start + m.len();
            let (w, gd, m0, v0) = (&w[r.clone()], &gd[r.clone()], &m0[r.clone()], &v0[r]);
            for i in 0..m.len() {
                let gi = gd[i];
                let mi = m0[i] + (gi - m0[i]) * b1;
                let vi = v0[i] + (gi * gi - v0[i]) * b2;
                m[i] = mi;
                v[i] = vi;
                out[i] = w[i] - (mi * alpha) / (vi.sqrt() + eps);
            }
        };
        const CHUNK: usize = 1 << 15;
        if n > 2 * CHUNK {
            use rayon::prelude::*;
            m.par_chunks_mut(CHUNK)
                .zip(v.par_chunks_mut(CHUNK))
                .zip(out.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(c, ((m, v), o))| kernel(c * CHUNK, m, v, o));
        } else {
            kernel(0, &mut m, &mut v, &mut out);
        }
        let shape = var.shape().to_vec();
        drop((m0, v0));
        slots[0] = Tensor::from_vec(m, &shape)?;
        slots[1] = Tensor::from_vec(v, &shape)?;
        Tensor::from_vec(out, &shape)
    }
}

impl UpdateRule for Adam {
    fn config(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        crate::config::obj([
            ("beta_1", Value::from(self.beta_1)),
            ("beta_2", Value::from(self.beta_2)),
            ("epsilon", Value::from(self.epsilon)),
            ("amsgrad", Value::from(self.amsgrad)),
        ])
    }

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
        if var.dtype() == DType::F32 && !self.amsgrad {
            return self.update_fused_f32(var, g, slots, lr, step);
        }
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
