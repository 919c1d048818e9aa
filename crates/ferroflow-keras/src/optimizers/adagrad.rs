//! Adagrad (`keras.optimizers.Adagrad`).

use super::optimizer::{RowUpdate, UpdateRule};
use ferroflow_core::{IndexedSlices, Result, Tensor};

/// Adagrad: `acc += g²; var -= lr·g/√(acc + ε)`. Keras defaults: lr 0.001, initial
/// accumulator 0.1, ε 1e-7. Sparse gradients touch only their rows.
#[derive(Clone, Debug)]
pub struct Adagrad {
    /// Starting value of the accumulator.
    pub initial_accumulator_value: f64,
    /// Added inside the square root.
    pub epsilon: f64,
}

impl Default for Adagrad {
    fn default() -> Self {
        Adagrad {
            initial_accumulator_value: 0.1,
            epsilon: 1e-7,
        }
    }
}

impl UpdateRule for Adagrad {
    fn config(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        crate::config::obj([
            (
                "initial_accumulator_value",
                Value::from(self.initial_accumulator_value),
            ),
            ("epsilon", Value::from(self.epsilon)),
        ])
    }

    fn name(&self) -> &'static str {
        "Adagrad"
    }

    fn slot_names(&self) -> Vec<&'static str> {
        vec!["accumulator"]
    }

    fn init_slot(&self, _: usize, value: &Tensor) -> Result<Tensor> {
        value.full_like(self.initial_accumulator_value)
    }

    fn updates_rows_in_place(&self) -> bool {
        true
    }

    fn update_rows(&self, u: RowUpdate<'_>, lr: &Tensor, _: &Tensor) -> Result<()> {
        let (lr, eps) = (lr.to_scalar::<f32>()?, self.epsilon as f32);
        u.for_each_row(
            "Adagrad",
            #[inline(always)]
            |w, [acc], g| {
                for ((w, a), &g) in w.iter_mut().zip(acc.iter_mut()).zip(g) {
                    *a += g * g;
                    *w -= lr * g / (*a + eps).sqrt();
                }
            },
        )
    }

    fn update(
        &self,
        var: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        lr: &Tensor,
        _: &Tensor,
    ) -> Result<Tensor> {
        let acc = slots[0].add(&g.square()?)?;
        slots[0] = acc.clone();
        var.sub(&lr.mul(g)?.div(&acc.add_scalar(self.epsilon)?.sqrt()?)?)
    }

    fn update_sparse(
        &self,
        var: &Tensor,
        g: &IndexedSlices,
        slots: &mut [Tensor],
        lr: &Tensor,
        _: &Tensor,
    ) -> Option<Result<Tensor>> {
        Some((|| {
            let idx = g.indices.reshape(&[-1, 1])?;
            let acc = slots[0].tensor_scatter_nd_add(&idx, &g.values.square()?)?;
            let rows = acc.gather_nd(&idx)?;
            slots[0] = acc;
            let delta = lr
                .mul(&g.values)?
                .div(&rows.add_scalar(self.epsilon)?.sqrt()?)?;
            var.tensor_scatter_nd_add(&idx, &delta.neg()?)
        })())
    }
}
