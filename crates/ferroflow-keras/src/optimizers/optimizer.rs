//! [`Optimizer`]: the Keras 3 `BaseOptimizer` procedure around an [`UpdateRule`].
//!
//! `apply_gradients` follows Keras: drop variables without a gradient, clip (`clipnorm`,
//! `global_clipnorm` or `clipvalue`, at most one), apply decoupled weight decay
//! (`v -= v · wd · lr`), run the rule's update per variable, then count the iteration.
//! The learning rate is the schedule's value at the iteration count before the update.

use super::clipping::{clip_by_global_norm, clip_by_norm};
use super::schedules::LearningRateSchedule;
use super::sparse::dedupe;
use ferroflow_core::autodiff::{pause_recording, VariableId};
use ferroflow_core::{Error, Gradient, IndexedSlices, Result, Tensor, Variable};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::Arc;

/// A constant learning rate or a schedule.
#[derive(Clone)]
pub enum LearningRate {
    /// The same rate at every step.
    Constant(f64),
    /// A rate that depends on the iteration count.
    Schedule(Arc<dyn LearningRateSchedule>),
}

impl LearningRate {
    /// The rate at `step`.
    pub fn at(&self, step: u64) -> f64 {
        match self {
            LearningRate::Constant(v) => *v,
            LearningRate::Schedule(s) => s.at(step),
        }
    }
}

impl From<f64> for LearningRate {
    fn from(v: f64) -> Self {
        LearningRate::Constant(v)
    }
}

impl<S: LearningRateSchedule + 'static> From<S> for LearningRate {
    fn from(s: S) -> Self {
        LearningRate::Schedule(Arc::new(s))
    }
}

/// The options every Keras optimiser shares.
#[derive(Clone)]
pub struct OptimizerOptions {
    /// Rate or schedule.
    pub learning_rate: LearningRate,
    /// Decoupled weight decay factor (AdamW's `weight_decay`).
    pub weight_decay: Option<f64>,
    /// Clip each gradient to this L2 norm.
    pub clipnorm: Option<f64>,
    /// Clip each gradient element to `[-clipvalue, clipvalue]`.
    pub clipvalue: Option<f64>,
    /// Scale all gradients so their joint L2 norm is at most this.
    pub global_clipnorm: Option<f64>,
}

impl OptimizerOptions {
    /// Only a learning rate; no decay, no clipping.
    pub fn new(learning_rate: impl Into<LearningRate>) -> Self {
        OptimizerOptions {
            learning_rate: learning_rate.into(),
            weight_decay: None,
            clipnorm: None,
            clipvalue: None,
            global_clipnorm: None,
        }
    }
}

/// One optimisation algorithm's per-variable step (SGD, Adam, ...).
pub trait UpdateRule: Send {
    /// The Keras class name (`"SGD"`, `"Adam"`...).
    fn name(&self) -> &'static str;
    /// Names of the per-variable slots this rule keeps (momentum, velocity...).
    fn slot_names(&self) -> Vec<&'static str>;
    /// The initial value of slot `i` for a variable holding `value`.
    fn init_slot(&self, _i: usize, value: &Tensor) -> Result<Tensor> {
        value.zeros_like()
    }
    /// The new variable value after one step with dense gradient `grad`; updates `slots`.
    /// `lr` is a scalar of the variable's dtype, `step` counts from 1.
    fn update(
        &self,
        value: &Tensor,
        grad: &Tensor,
        slots: &mut [Tensor],
        lr: &Tensor,
        step: u64,
    ) -> Result<Tensor>;
    /// The same step for a sparse gradient with unique indices, when the rule can touch only
    /// the given rows; `None` makes the optimiser densify the gradient instead.
    fn update_sparse(
        &self,
        _value: &Tensor,
        _grad: &IndexedSlices,
        _slots: &mut [Tensor],
        _lr: &Tensor,
        _step: u64,
    ) -> Option<Result<Tensor>> {
        None
    }
}

/// A Keras-style optimiser: options, an update rule, slots and the iteration count.
pub struct Optimizer {
    rule: Box<dyn UpdateRule>,
    options: OptimizerOptions,
    iterations: u64,
    slots: HashMap<VariableId, Vec<Tensor>>,
}

impl Optimizer {
    /// An optimiser running `rule` with `options`. At most one clipping option may be set.
    pub fn new(rule: impl UpdateRule + 'static, options: OptimizerOptions) -> Result<Self> {
        let clips = [options.clipnorm, options.clipvalue, options.global_clipnorm];
        if clips.iter().filter(|c| c.is_some()).count() > 1 {
            return Err(Error::invalid(
                rule.name(),
                "only one of clipnorm, clipvalue and global_clipnorm can be set",
            ));
        }
        Ok(Optimizer {
            rule: Box::new(rule),
            options,
            iterations: 0,
            slots: HashMap::new(),
        })
    }

    /// The Keras class name of the rule.
    pub fn name(&self) -> &'static str {
        self.rule.name()
    }

    /// Number of updates applied so far (`optimizer.iterations`).
    pub fn iterations(&self) -> u64 {
        self.iterations
    }

    /// The learning rate the next update will use.
    pub fn learning_rate(&self) -> f64 {
        self.options.learning_rate.at(self.iterations)
    }

    /// The options in use.
    pub fn options(&self) -> &OptimizerOptions {
        &self.options
    }

    /// The slot tensors kept for `v` (empty before its first update).
    pub fn slots_of(&self, v: &Variable) -> Vec<(&'static str, Tensor)> {
        let names = self.rule.slot_names();
        self.slots
            .get(&v.id())
            .map(|s| names.into_iter().zip(s.iter().cloned()).collect())
            .unwrap_or_default()
    }

    /// Applies one update step (`optimizer.apply_gradients(zip(grads, vars))`).
    ///
    /// Variables whose gradient is `None` are skipped. Shapes are checked for every pair
    /// before any variable changes, so a bad call changes nothing.
    pub fn apply_gradients<V: Borrow<Variable>>(
        &mut self,
        grads: &[Option<Gradient>],
        vars: &[V],
    ) -> Result<()> {
        if grads.len() != vars.len() {
            return Err(Error::invalid(
                "apply_gradients",
                format!("{} gradients for {} variables", grads.len(), vars.len()),
            ));
        }
        let _no_tape = pause_recording();
        let mut pairs: Vec<(Gradient, &Variable)> = Vec::new();
        for (g, v) in grads.iter().zip(vars) {
            let v: &Variable = v.borrow();
            let Some(g) = g else { continue };
            if g.shape() != v.shape() {
                return Err(Error::invalid(
                    "apply_gradients",
                    format!(
                        "gradient of shape {:?} for variable '{}' of shape {:?}",
                        g.shape(),
                        v.name(),
                        v.shape()
                    ),
                ));
            }
            let g = match g {
                Gradient::Dense(t) if t.dtype() != v.dtype() => Gradient::Dense(t.cast(v.dtype())?),
                other => other.clone(),
            };
            pairs.push((g, v));
        }
        if pairs.is_empty() {
            return Ok(());
        }
        let grads = self.clip(pairs.iter().map(|(g, _)| g.clone()).collect())?;
        let lr = self.learning_rate();
        if let Some(wd) = self.options.weight_decay {
            for (_, v) in &pairs {
                let value = v.read_untracked();
                v.assign(&value.sub(&value.mul_scalar(wd * lr)?)?)?;
            }
        }
        let step = self.iterations + 1;
        for (g, (_, v)) in grads.into_iter().zip(&pairs) {
            let value = v.read_untracked();
            let slots = match self.slots.entry(v.id()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let init = (0..self.rule.slot_names().len())
                        .map(|i| self.rule.init_slot(i, &value))
                        .collect::<Result<Vec<_>>>()?;
                    e.insert(init)
                }
            };
            let lr_t = value.scalar_like(lr)?;
            let new = match &g {
                Gradient::Dense(d) => self.rule.update(&value, d, slots, &lr_t, step)?,
                Gradient::Sparse(s) => {
                    let s = dedupe(s)?;
                    match self.rule.update_sparse(&value, &s, slots, &lr_t, step) {
                        Some(r) => r?,
                        None => self
                            .rule
                            .update(&value, &s.to_dense()?, slots, &lr_t, step)?,
                    }
                }
            };
            v.assign(&new)?;
        }
        self.iterations += 1;
        Ok(())
    }

    fn clip(&self, grads: Vec<Gradient>) -> Result<Vec<Gradient>> {
        let o = &self.options;
        if let Some(c) = o.clipnorm.filter(|&c| c > 0.0) {
            grads
                .iter()
                .map(|g| Ok(Gradient::Dense(clip_by_norm(&g.to_dense()?, c)?)))
                .collect()
        } else if let Some(c) = o.global_clipnorm.filter(|&c| c > 0.0) {
            let dense = grads
                .iter()
                .map(Gradient::to_dense)
                .collect::<Result<Vec<_>>>()?;
            Ok(clip_by_global_norm(&dense, c)?
                .into_iter()
                .map(Gradient::Dense)
                .collect())
        } else if let Some(c) = o.clipvalue.filter(|&c| c > 0.0) {
            grads
                .iter()
                .map(|g| match g {
                    Gradient::Dense(t) => Ok(Gradient::Dense(t.clip_scalar(-c, c)?)),
                    Gradient::Sparse(s) => Ok(Gradient::Sparse(IndexedSlices {
                        values: s.values.clip_scalar(-c, c)?,
                        ..s.clone()
                    })),
                })
                .collect()
        } else {
            Ok(grads)
        }
    }
}
