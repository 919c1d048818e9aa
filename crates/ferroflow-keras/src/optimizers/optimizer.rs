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
    /// The rule's own hyper-parameters in Keras's config keys (`beta_1`, `momentum`...).
    fn config(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
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

    /// Replaces the learning rate (or schedule) with a constant (what Keras callbacks do
    /// when they assign `optimizer.learning_rate`).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.options.learning_rate = LearningRate::Constant(lr);
    }

    /// Sets the iteration count (restoring a saved optimiser).
    pub fn set_iterations(&mut self, n: u64) {
        self.iterations = n;
    }

    /// The names of the per-variable slots of the rule.
    pub fn slot_names(&self) -> Vec<&'static str> {
        self.rule.slot_names()
    }

    /// Restores the slots of `v` (in [`Optimizer::slot_names`] order), checking shapes.
    pub fn set_slots(&mut self, v: &Variable, slots: Vec<Tensor>) -> Result<()> {
        let names = self.rule.slot_names();
        if slots.len() != names.len() || slots.iter().any(|s| s.shape() != v.shape()) {
            return Err(Error::invalid(
                self.rule.name(),
                format!(
                    "slots for variable '{}' of shape {:?} do not match ({} given, {} expected)",
                    v.name(),
                    v.shape(),
                    slots.len(),
                    names.len()
                ),
            ));
        }
        self.slots.insert(v.id(), slots);
        Ok(())
    }

    /// Keras's `optimizer.get_config()`.
    pub fn get_config(&self) -> serde_json::Value {
        use serde_json::Value;
        let o = &self.options;
        let opt = |x: Option<f64>| x.map_or(Value::Null, Value::from);
        let mut m = serde_json::Map::new();
        m.insert(
            "name".into(),
            Value::from(self.rule.name().to_ascii_lowercase()),
        );
        let lr = match &o.learning_rate {
            LearningRate::Constant(v) => Value::from(*v),
            LearningRate::Schedule(_) => Value::from(self.learning_rate()),
        };
        m.insert("learning_rate".into(), lr);
        m.insert("weight_decay".into(), opt(o.weight_decay));
        m.insert("clipnorm".into(), opt(o.clipnorm));
        m.insert("global_clipnorm".into(), opt(o.global_clipnorm));
        m.insert("clipvalue".into(), opt(o.clipvalue));
        for (k, v) in self.rule.config() {
            m.insert(k, v);
        }
        Value::Object(m)
    }

    /// Rebuilds an optimiser from its Keras class name and config.
    pub fn from_config(class: &str, cfg: &serde_json::Value) -> Result<Optimizer> {
        let f = |k: &str, d: f64| cfg.get(k).and_then(serde_json::Value::as_f64).unwrap_or(d);
        let fo = |k: &str| cfg.get(k).and_then(serde_json::Value::as_f64);
        let b = |k: &str| {
            cfg.get(k)
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
        };
        let lr = f(
            "learning_rate",
            if class.eq_ignore_ascii_case("sgd") {
                0.01
            } else {
                0.001
            },
        );
        let mut o = OptimizerOptions::new(lr);
        o.weight_decay = fo("weight_decay");
        o.clipnorm = fo("clipnorm");
        o.global_clipnorm = fo("global_clipnorm");
        o.clipvalue = fo("clipvalue");
        match class.to_ascii_lowercase().as_str() {
            "sgd" => Optimizer::new(
                super::Sgd {
                    momentum: f("momentum", 0.0),
                    nesterov: b("nesterov"),
                },
                o,
            ),
            "adam" | "adamw" => {
                if class.eq_ignore_ascii_case("adamw") && o.weight_decay.is_none() {
                    o.weight_decay = Some(0.004);
                }
                Optimizer::new(
                    super::Adam {
                        beta_1: f("beta_1", 0.9),
                        beta_2: f("beta_2", 0.999),
                        epsilon: f("epsilon", 1e-7),
                        amsgrad: b("amsgrad"),
                    },
                    o,
                )
            }
            "rmsprop" => Optimizer::new(
                super::RMSprop {
                    rho: f("rho", 0.9),
                    momentum: f("momentum", 0.0),
                    epsilon: f("epsilon", 1e-7),
                    centered: b("centered"),
                },
                o,
            ),
            "adagrad" => Optimizer::new(
                super::Adagrad {
                    initial_accumulator_value: f("initial_accumulator_value", 0.1),
                    epsilon: f("epsilon", 1e-7),
                },
                o,
            ),
            other => Err(Error::invalid(
                "optimizers::deserialize",
                format!("unknown optimizer '{other}'"),
            )),
        }
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
