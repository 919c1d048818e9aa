//! The optimiser's state as Keras 3 stores it in `model.weights.h5`: `optimizer/vars/0`
//! the iteration count, `vars/1` the learning rate (absent with a schedule), then the
//! slots of the trainable variables in `model.trainable_variables` order. Keras creates
//! slots in groups: within a group they interleave per variable (Adam's momentum and
//! velocity), groups follow each other (RMSprop's velocities, then its momentums).
//! Training resumes exactly in either framework.

use super::keras_weights::Layout;
use crate::models::Model;
use ferroflow_core::{DType, Result, Tensor, Variable};

/// Where the optimiser's variables live in the weights file.
pub const GROUP: &str = "optimizer/vars";

/// The trainable variables in Keras's `model.trainable_variables` order: layout order
/// (Keras's layer order, trainable weights first within a layer).
fn trainable_in_keras_order(model: &Model, layout: &Layout) -> Vec<Variable> {
    let trainable = model.trainable_variables();
    layout
        .variables
        .iter()
        .map(|(_, v)| v)
        .filter(|v| trainable.iter().any(|t| t.same_as(v)))
        .cloned()
        .collect()
}

/// Slot indices grouped as Keras creates them.
fn slot_groups(optimizer: &str, n_slots: usize) -> Vec<Vec<usize>> {
    match optimizer {
        "Adam" | "AdamW" if n_slots >= 2 => {
            let mut g = vec![vec![0, 1]];
            g.extend((2..n_slots).map(|i| vec![i]));
            g
        }
        _ => (0..n_slots).map(|i| vec![i]).collect(),
    }
}

/// `(variable, slot index)` in file order after the iteration and learning rate.
fn slot_order(model: &Model, layout: &Layout) -> Vec<(Variable, usize)> {
    let Some(c) = &model.compiled else {
        return Vec::new();
    };
    let vars = trainable_in_keras_order(model, layout);
    let mut order = Vec::new();
    for group in slot_groups(c.optimizer.name(), c.optimizer.slot_names().len()) {
        for v in &vars {
            for &s in &group {
                order.push((v.clone(), s));
            }
        }
    }
    order
}

/// The optimiser's variables in file order, when the model is compiled and every
/// trainable variable has its slots (the optimiser has run); `None` otherwise.
pub fn state(model: &Model, layout: &Layout) -> Option<Vec<Tensor>> {
    let c = model.compiled.as_ref()?;
    let opt = &c.optimizer;
    let mut out = vec![Tensor::scalar(opt.iterations() as i64)];
    if !opt.has_schedule() {
        out.push(Tensor::scalar(opt.learning_rate() as f32));
    }
    for (v, s) in slot_order(model, layout) {
        out.push(opt.slot(&v, s)?);
    }
    Some(out)
}

/// How many variables a file must hold for this model's optimiser.
pub fn expected_len(model: &Model, layout: &Layout) -> Option<usize> {
    let c = model.compiled.as_ref()?;
    Some(1 + usize::from(!c.optimizer.has_schedule()) + slot_order(model, layout).len())
}

/// Restores the optimiser from values in file order (checked by [`expected_len`]).
pub fn restore(model: &mut Model, layout: &Layout, values: Vec<Tensor>) -> Result<()> {
    let order = slot_order(model, layout);
    let Some(c) = model.compiled.as_mut() else {
        return Ok(());
    };
    let opt = &mut c.optimizer;
    let mut it = values.into_iter();
    if let Some(n) = it.next() {
        opt.set_iterations(
            n.cast(DType::F64)?
                .to_f64_vec()
                .first()
                .copied()
                .unwrap_or(0.0) as u64,
        );
    }
    if !opt.has_schedule() {
        if let Some(lr) = it.next() {
            opt.set_learning_rate(
                lr.cast(DType::F64)?
                    .to_f64_vec()
                    .first()
                    .copied()
                    .unwrap_or(0.0),
            );
        }
    }
    let n_slots = opt.slot_names().len();
    let mut per_var: Vec<(Variable, Vec<Option<Tensor>>)> = Vec::new();
    for ((v, s), t) in order.into_iter().zip(it) {
        let entry = match per_var.iter_mut().position(|(x, _)| x.same_as(&v)) {
            Some(i) => &mut per_var[i].1,
            None => {
                per_var.push((v.clone(), vec![None; n_slots]));
                &mut per_var.last_mut().expect("just pushed").1
            }
        };
        entry[s] = Some(t.cast(v.dtype())?);
    }
    for (v, slots) in per_var {
        if let Some(slots) = slots.into_iter().collect::<Option<Vec<_>>>() {
            opt.set_slots(&v, slots)?;
        }
    }
    Ok(())
}
