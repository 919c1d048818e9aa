//! Stochastic gradient descent with optional (Nesterov) momentum (`keras.optimizers.SGD`).

use super::optimizer::UpdateRule;
use ferroflow_core::{IndexedSlices, Result, Tensor};

/// SGD: `v -= lr·g`, or with momentum `m = momentum·m - lr·g; v += m`
/// (Nesterov: `v += momentum·m - lr·g`). Keras defaults: lr 0.01, momentum 0.
#[derive(Clone, Debug, Default)]
pub struct Sgd {
    /// Momentum factor in [0, 1].
    pub momentum: f64,
    /// Use Nesterov momentum.
    pub nesterov: bool,
}

impl UpdateRule for Sgd {
    fn config(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        crate::config::obj([
            ("momentum", Value::from(self.momentum)),
            ("nesterov", Value::from(self.nesterov)),
        ])
    }

    fn name(&self) -> &'static str {
        "SGD"
    }

    fn slot_names(&self) -> Vec<&'static str> {
        if self.momentum != 0.0 {
            vec!["momentum"]
        } else {
            vec![]
        }
    }

    fn update(
        &self,
        v: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        lr: &Tensor,
        _: &Tensor,
    ) -> Result<Tensor> {
        let step = g.mul(lr)?;
        if self.momentum == 0.0 {
            return v.sub(&step);
        }
        let m = slots[0].mul_scalar(self.momentum)?.sub(&step)?;
        slots[0] = m.clone();
        if self.nesterov {
            v.add(&m.mul_scalar(self.momentum)?.sub(&step)?)
        } else {
            v.add(&m)
        }
    }

    fn update_sparse(
        &self,
        v: &Tensor,
        g: &IndexedSlices,
        _: &mut [Tensor],
        lr: &Tensor,
        _: &Tensor,
    ) -> Option<Result<Tensor>> {
        if self.momentum != 0.0 {
            return None;
        }
        Some((|| {
            let idx = g.indices.reshape(&[-1, 1])?;
            v.tensor_scatter_nd_add(&idx, &g.values.mul(lr)?.neg()?)
        })())
    }
}
