//! [`Optimizer`]: the Keras 3 `BaseOptimizer` procedure around an [`UpdateRule`].
//!
//! `apply_gradients` follows Keras: drop variables without a gradient, clip (`clipnorm`,
//! `global_clipnorm` or `clipvalue`, at most one), apply decoupled weight decay
//! (`v -= v · wd · lr`), run the rule's update per variable, then count the iteration.
//! The learning rate is the schedule's value at the iteration count before the update.

use super::clipping::{clip_by_global_norm, clip_by_norm};
use super::row_slots::RowSlots;
use super::schedules::LearningRateSchedule;
use super::sparse::dedupe;
use ferroflow_core::autodiff::{pause_recording, VariableId};
use ferroflow_core::{DType, Error, Gradient, IndexedSlices, Result, Tensor, Variable};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

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
pub trait UpdateRule: Send + Sync {
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
    /// `lr` and `step` (counting from 1) are scalars of the variable's dtype, computed at
    /// every call of a compiled step.
    fn update(
        &self,
        value: &Tensor,
        grad: &Tensor,
        slots: &mut [Tensor],
        lr: &Tensor,
        step: &Tensor,
    ) -> Result<Tensor>;
    /// The same step for a sparse gradient with unique indices, when the rule can touch only
    /// the given rows; `None` makes the optimiser densify the gradient instead.
    fn update_sparse(
        &self,
        _value: &Tensor,
        _grad: &IndexedSlices,
        _slots: &mut [Tensor],
        _lr: &Tensor,
        _step: &Tensor,
    ) -> Option<Result<Tensor>> {
        None
    }

    /// Whether sparse gradients of f32 variables take [`UpdateRule::update_rows`]: a step
    /// that reads and writes only the gradient's rows of the variable and its slots, in
    /// place (lazy modes). Such a rule's slots must start at values that do not depend on
    /// the variable's ([`UpdateRule::init_slot`] the same for every row): the optimiser
    /// stores slot rows only for the rows a step has reached.
    fn updates_rows_in_place(&self) -> bool {
        false
    }

    /// The step on the rows of `u` (unique, checked).
    fn update_rows(&self, _u: RowUpdate<'_>, _lr: &Tensor, _step: &Tensor) -> Result<()> {
        Err(Error::invalid(self.name(), "has no in-place row update"))
    }
}

/// The f32 buffers of one in-place sparse step: gradient row `k` (of `width` values in
/// `g`) updates row `rows[k]` of the variable `w` and row `slot_rows[k]` of each slot.
/// Made only by the optimiser, with distinct rows in bounds: that is what lets
/// [`RowUpdate::for_each_row`] hand rows to several threads at once.
pub struct RowUpdate<'a> {
    w: &'a mut [f32],
    rows: &'a [usize],
    slots: &'a mut [Vec<f32>],
    slot_rows: &'a [usize],
    g: &'a [f32],
    width: usize,
}

/// Gradient values from which a sparse step shares its rows between threads: rows of a
/// large table are reached at random, and two cores overlap twice as many misses.
const ROWS_PAR_MIN: usize = 1 << 15;

impl<'a> RowUpdate<'a> {
    /// The step of `g` (`rows.len()` rows of `width` values) on rows `rows` of `w` and rows
    /// `slot_rows` of each slot; an error unless every row lies inside its buffer.
    ///
    /// # Safety
    /// The entries of `rows` are distinct, and so are those of `slot_rows`: threads write
    /// the rows of different gradient rows at the same time.
    pub(crate) unsafe fn new(
        w: &'a mut [f32],
        rows: &'a [usize],
        slots: &'a mut [Vec<f32>],
        slot_rows: &'a [usize],
        g: &'a [f32],
        width: usize,
    ) -> Result<Self> {
        let fits = |buf: usize, rows: &[usize]| {
            rows.iter().all(|&r| {
                r.checked_add(1)
                    .and_then(|e| e.checked_mul(width))
                    .is_some_and(|e| e <= buf)
            })
        };
        if rows.len() != slot_rows.len()
            || Some(g.len()) != rows.len().checked_mul(width)
            || !fits(w.len(), rows)
            || !slots.iter().all(|s| fits(s.len(), slot_rows))
        {
            return Err(Error::invalid(
                "apply_gradients",
                format!(
                    "sparse step of {} rows of width {width} does not fit a variable of {} \
                     values",
                    rows.len(),
                    w.len()
                ),
            ));
        }
        Ok(RowUpdate {
            w,
            rows,
            slots,
            slot_rows,
            g,
            width,
        })
    }

    /// Calls `f(variable row, [slot rows; N], gradient row)` for every gradient row, the
    /// rows shared between threads when there are many (in any order: each call touches
    /// rows of its own). An error naming `rule` unless the rule has `N` slots.
    ///
    /// `f` runs compiled for the best instruction set ([`ferroflow_core::with_best_isa`]):
    /// mark it `#[inline(always)]`.
    pub fn for_each_row<const N: usize>(
        self,
        rule: &'static str,
        f: impl Fn(&mut [f32], [&mut [f32]; N], &[f32]) + Sync,
    ) -> Result<()> {
        use ferroflow_core::prefetch::{prefetch_row, ROWS_AHEAD};
        use ferroflow_core::SharedMut;
        if self.slots.len() != N {
            return Err(Error::invalid(
                rule,
                format!("a row step needs {N} slots, not {}", self.slots.len()),
            ));
        }
        let (width, rows, slot_rows, g) = (self.width, self.rows, self.slot_rows, self.g);
        let w = SharedMut(self.w.as_mut_ptr());
        let slots: [SharedMut<f32>; N] =
            std::array::from_fn(|i| SharedMut(self.slots[i].as_mut_ptr()));
        let run = |part: std::ops::Range<usize>| {
            ferroflow_core::with_best_isa(
                #[inline(always)]
                || {
                    for k in part.clone() {
                        // Rows of a large variable are reached at random: each is asked
                        // for a few rows before its turn (a hint, never dereferenced).
                        if let (Some(&ahead), Some(&slot_ahead)) =
                            (rows.get(k + ROWS_AHEAD), slot_rows.get(k + ROWS_AHEAD))
                        {
                            prefetch_row(w.ptr(), ahead, width);
                            for s in &slots {
                                prefetch_row(s.ptr(), slot_ahead, width);
                            }
                        }
                        let (r, s) = (rows[k] * width, slot_rows[k] * width);
                        // SAFETY: `new` checked that every row lies inside its buffer,
                        // which outlives this call (borrowed by `self`), and its caller
                        // that rows (and slot rows) are distinct, so no other call, on
                        // this thread or another, touches these rows meanwhile.
                        let (wr, sr) = unsafe {
                            (
                                w.slice(&(r..r + width)),
                                std::array::from_fn(|i| slots[i].slice(&(s..s + width))),
                            )
                        };
                        f(wr, sr, &g[k * width..(k + 1) * width]);
                    }
                },
            )
        };
        ferroflow_core::for_each_row_block(rows.len(), width, ROWS_PAR_MIN, |elems| {
            run(elems.start / width.max(1)..elems.end / width.max(1))
        });
        Ok(())
    }
}

/// A Keras-style optimiser: options, an update rule, slots and the iteration count.
pub struct Optimizer {
    rule: Box<dyn UpdateRule>,
    options: OptimizerOptions,
    /// The current learning rate (callbacks change it; compiled steps read it per call).
    lr: Arc<RwLock<LearningRate>>,
    /// `optimizer.iterations`: an int64 variable, so compiled steps count too.
    iterations: Variable,
    slots: HashMap<VariableId, Vec<Variable>>,
    /// The slots of variables updated row by row in place, kept for reached rows only
    /// (until a dense update or a restore needs them whole, in `slots`).
    row_slots: HashMap<VariableId, RowSlots>,
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
            lr: Arc::new(RwLock::new(options.learning_rate.clone())),
            options,
            iterations: Variable::with_options(Tensor::scalar(0i64), "iteration", false),
            slots: HashMap::new(),
            row_slots: HashMap::new(),
        })
    }

    /// Replaces the learning rate (or schedule) with a constant (what Keras callbacks do
    /// when they assign `optimizer.learning_rate`).
    pub fn set_learning_rate(&mut self, lr: f64) {
        *self.lr.write().unwrap_or_else(|e| e.into_inner()) = LearningRate::Constant(lr);
    }

    /// Whether the learning rate follows a schedule (Keras then keeps no
    /// `learning_rate` variable).
    pub fn has_schedule(&self) -> bool {
        matches!(
            *self.lr.read().unwrap_or_else(|e| e.into_inner()),
            LearningRate::Schedule(_)
        )
    }

    /// Sets the iteration count (restoring a saved optimiser).
    pub fn set_iterations(&mut self, n: u64) {
        // Same dtype and shape by construction.
        let _ = self.iterations.assign(&Tensor::scalar(n as i64));
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
        let vars = slots
            .into_iter()
            .zip(names)
            .map(|(t, n)| Variable::with_options(t, &format!("{}/{n}", v.name()), false))
            .collect();
        self.row_slots.remove(&v.id());
        self.slots.insert(v.id(), vars);
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
        let lr = match &*self.lr.read().unwrap_or_else(|e| e.into_inner()) {
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
                        lazy: false,
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
            "ftrl" => {
                let r = super::Ftrl {
                    learning_rate_power: f("learning_rate_power", -0.5),
                    initial_accumulator_value: f("initial_accumulator_value", 0.1),
                    l1: f("l1_regularization_strength", 0.0),
                    l2: f("l2_regularization_strength", 0.0),
                    l2_shrinkage: f("l2_shrinkage_regularization_strength", 0.0),
                    beta: f("beta", 0.0),
                };
                r.validate()?;
                Optimizer::new(r, o)
            }
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
        read_step(&self.iterations)
    }

    /// The learning rate the next update will use.
    pub fn learning_rate(&self) -> f64 {
        self.lr
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .at(self.iterations())
    }

    /// The options in use.
    pub fn options(&self) -> &OptimizerOptions {
        &self.options
    }

    /// The slot tensors kept for `v` (empty before its first update).
    pub fn slots_of(&self, v: &Variable) -> Vec<(&'static str, Tensor)> {
        let names = self.rule.slot_names();
        (0..names.len())
            .map_while(|i| Some((names[i], self.slot(v, i)?)))
            .collect()
    }

    /// Slot `i` (in [`Optimizer::slot_names`] order) of `v`, whole; `None` before its first
    /// update.
    pub fn slot(&self, v: &Variable, i: usize) -> Option<Tensor> {
        if let Some(rows) = self.row_slots.get(&v.id()) {
            return rows.dense(i, v.shape()).ok();
        }
        self.slots
            .get(&v.id())?
            .get(i)
            .map(Variable::read_untracked)
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
        let dtype = pairs[0].1.dtype();
        if let Some(wd) = self.options.weight_decay {
            let decay = self.host_scalar(dtype, move |lr, _| wd * lr)?;
            for (_, v) in &pairs {
                let value = v.read_untracked();
                v.assign(&value.sub(&value.mul(&decay.cast(v.dtype())?)?)?)?;
            }
        }
        let lr_t = self.host_scalar(dtype, |lr, _| lr)?;
        let step_t = self.host_scalar(dtype, |_, step| step as f64)?;
        // A compiled step has fixed shapes: sparse gradients (whose row count depends on the
        // data) are applied densely there.
        let sparse_ok = !ferroflow_core::trace::is_tracing();
        for (g, (_, v)) in grads.into_iter().zip(&pairs) {
            if let Gradient::Sparse(s) = &g {
                if sparse_ok && v.dtype() == DType::F32 && self.rule.updates_rows_in_place() {
                    self.update_rows(v, s, &lr_t, &step_t)?;
                    continue;
                }
            }
            let value = v.read_untracked();
            self.ensure_slots(v, &value)?;
            let slot_vars = &self.slots[&v.id()];
            let mut slots: Vec<Tensor> = slot_vars.iter().map(Variable::read_untracked).collect();
            let (lr, step) = (lr_t.cast(v.dtype())?, step_t.cast(v.dtype())?);
            let new = match &g {
                Gradient::Dense(d) => self.rule.update(&value, d, &mut slots, &lr, &step)?,
                Gradient::Sparse(s) if sparse_ok => {
                    let s = dedupe(s)?;
                    match self.rule.update_sparse(&value, &s, &mut slots, &lr, &step) {
                        Some(r) => r?,
                        None => self
                            .rule
                            .update(&value, &s.to_dense()?, &mut slots, &lr, &step)?,
                    }
                }
                Gradient::Sparse(s) => {
                    self.rule
                        .update(&value, &s.to_dense()?, &mut slots, &lr, &step)?
                }
            };
            for (var, t) in slot_vars.iter().zip(&slots) {
                var.assign(t)?;
            }
            v.assign(&new)?;
        }
        self.iterations.assign_add(&Tensor::scalar(1i64))?;
        Ok(())
    }

    /// Creates `v`'s slots (from its current `value`) on its first update, or makes its
    /// row-by-row slots whole; returns whether it created them.
    fn ensure_slots(&mut self, v: &Variable, value: &Tensor) -> Result<bool> {
        if self.slots.contains_key(&v.id()) {
            return Ok(false);
        }
        let names = self.rule.slot_names();
        let rows = self.row_slots.remove(&v.id());
        let init = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let t = match &rows {
                    Some(rows) => rows.dense(i, value.shape())?,
                    None => self.rule.init_slot(i, value)?,
                };
                Ok(Variable::with_options(
                    t,
                    &format!("{}/{n}", v.name()),
                    false,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        self.slots.insert(v.id(), init);
        Ok(rows.is_none())
    }

    /// A sparse step that touches only the gradient's rows, over the variable's buffer in
    /// place (copied first only when something else holds it) and the slots of the rows
    /// reached ([`RowSlots`]), or the whole slots when a dense update or a restore made them.
    fn update_rows(
        &mut self,
        v: &Variable,
        s: &IndexedSlices,
        lr: &Tensor,
        step: &Tensor,
    ) -> Result<()> {
        let s = dedupe(s)?;
        let shape = v.shape().to_vec();
        let n_rows = shape.first().copied().unwrap_or(1);
        let width = shape.iter().skip(1).product::<usize>();
        let rows = s
            .indices
            .cast(DType::I64)?
            .to_vec::<i64>()?
            .into_iter()
            .map(|i| {
                usize::try_from(i)
                    .ok()
                    .filter(|&r| r < n_rows)
                    .ok_or_else(|| {
                        Error::invalid(
                            "apply_gradients",
                            format!(
                                "sparse gradient row {i} outside variable '{}' of shape {shape:?}",
                                v.name()
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<usize>>>()?;
        let g = s.values.cast(DType::F32)?;
        let g = g.data::<f32>()?;
        let (lr, step) = (lr.cast(DType::F32)?, step.cast(DType::F32)?);
        if !self.slots.contains_key(&v.id()) && !self.row_slots.contains_key(&v.id()) {
            let one_row = Tensor::zeros(&[1, width], DType::F32)?;
            let initial = (0..self.rule.slot_names().len())
                .map(|i| self.rule.init_slot(i, &one_row)?.to_vec::<f32>())
                .collect::<Result<Vec<_>>>()?;
            match RowSlots::new(n_rows, width, initial) {
                Some(r) => {
                    self.row_slots.insert(v.id(), r);
                }
                None => {
                    self.ensure_slots(v, &v.read_untracked())?;
                }
            }
        }
        let take = |var: &Variable| -> Result<Vec<f32>> {
            match var.release_for_update().try_into_vec::<f32>() {
                Ok(buf) => Ok(buf),
                Err(shared) => shared.to_vec::<f32>(),
            }
        };
        let mut w = take(v)?;
        let done = if let Some(reached) = self.row_slots.get_mut(&v.id()) {
            let slot_rows = reached.positions(&rows);
            // SAFETY: `dedupe` made the rows distinct, and distinct rows have distinct
            // slot positions.
            let u =
                unsafe { RowUpdate::new(&mut w, &rows, reached.buffers(), &slot_rows, &g, width) };
            u.and_then(|u| self.rule.update_rows(u, &lr, &step))
        } else {
            let slot_vars = &self.slots[&v.id()];
            let mut slots = slot_vars.iter().map(take).collect::<Result<Vec<_>>>()?;
            // SAFETY: `dedupe` made the rows distinct; dense slots have the variable's rows.
            let u = unsafe { RowUpdate::new(&mut w, &rows, &mut slots, &rows, &g, width) };
            let done = u.and_then(|u| self.rule.update_rows(u, &lr, &step));
            for (var, buf) in slot_vars.iter().zip(slots) {
                var.assign(&Tensor::from_vec(buf, &shape)?)?;
            }
            done
        };
        // The buffers go back whatever happened, so a failed step loses nothing.
        v.assign(&Tensor::from_vec(w, &shape)?)?;
        done
    }

    /// A scalar of `dtype` computed from (learning rate, step counting from 1) at every
    /// call, also inside a compiled step.
    fn host_scalar(
        &self,
        dtype: ferroflow_core::DType,
        f: impl Fn(f64, u64) -> f64 + Send + Sync + 'static,
    ) -> Result<Tensor> {
        let (lr, it) = (self.lr.clone(), self.iterations.clone());
        ferroflow_core::trace::host_value(move || {
            let step = read_step(&it) + 1;
            let rate = lr.read().unwrap_or_else(|e| e.into_inner()).at(step - 1);
            Tensor::full(&[], f(rate, step), dtype)
        })
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

/// The count held by an iterations variable.
fn read_step(it: &Variable) -> u64 {
    it.read_untracked().to_scalar::<i64>().unwrap_or(0).max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_steps_keep_slot_values_for_the_reached_rows_only() {
        let table = Variable::new(Tensor::full(&[100_000, 8], 0.5, DType::F32).unwrap());
        let mut opt = Optimizer::lazy_adam(0.01);
        for ids in [vec![7i64, 99_999, 7], vec![3, 7]] {
            let n = ids.len();
            let grad = Gradient::Sparse(IndexedSlices {
                indices: Tensor::from_vec(ids, &[n]).unwrap(),
                values: Tensor::full(&[n, 8], 1.0, DType::F32).unwrap(),
                dense_shape: vec![100_000, 8],
            });
            opt.apply_gradients(&[Some(grad)], &[&table]).unwrap();
        }
        assert_eq!(opt.row_slots[&table.id()].reached(), 3);
        assert!(!opt.slots.contains_key(&table.id()));
    }

    /// Three sparse steps of `make()` on a 20,000 x 64 table (4,096 rows a step, enough to
    /// share between threads), on the calling thread alone or on the pool.
    fn three_steps(make: fn() -> Optimizer, one_thread: bool) -> Vec<f32> {
        let table = Variable::new(
            ferroflow_core::random::uniform(&[20_000, 64], -1.0, 1.0, DType::F32, Some(3)).unwrap(),
        );
        let mut opt = make();
        for step in 0..3i64 {
            let ids: Vec<i64> = (0..4096).map(|i| (i * 7 + step * 1_111) % 20_000).collect();
            let values =
                ferroflow_core::random::uniform(&[4096, 64], -1.0, 1.0, DType::F32, Some(9))
                    .unwrap();
            let grad = Gradient::Sparse(IndexedSlices {
                indices: Tensor::from_vec(ids, &[4096]).unwrap(),
                values,
                dense_shape: vec![20_000, 64],
            });
            let apply = || opt.apply_gradients(&[Some(grad)], &[&table]).unwrap();
            if one_thread {
                ferroflow_core::on_calling_thread(apply);
            } else {
                apply();
            }
        }
        table.read_untracked().to_vec::<f32>().unwrap()
    }

    #[test]
    fn row_steps_shared_between_threads_equal_one_thread_steps() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        for make in [|| Optimizer::lazy_adam(0.01), || Optimizer::adagrad(0.1)] {
            let alone = three_steps(make, true);
            let shared = pool.install(|| three_steps(make, false));
            assert_eq!(alone, shared);
        }
    }

    #[test]
    fn row_updates_refuse_rows_outside_their_buffers_and_wrong_slot_counts() {
        let (mut w, mut slots, g) = (vec![0.0f32; 8], vec![vec![0.0f32; 8]], vec![1.0f32; 4]);
        // SAFETY (of each `new`): the rows are distinct.
        let outside = unsafe { RowUpdate::new(&mut w, &[0, 4], &mut slots, &[0, 1], &g, 2) };
        assert!(outside.is_err());
        let slot_outside = unsafe { RowUpdate::new(&mut w, &[0, 1], &mut slots, &[0, 4], &g, 2) };
        assert!(slot_outside.is_err());
        let short_g = unsafe { RowUpdate::new(&mut w, &[0, 1, 2], &mut slots, &[0, 1, 2], &g, 2) };
        assert!(short_g.is_err());
        let u = unsafe { RowUpdate::new(&mut w, &[3, 1], &mut slots, &[0, 2], &g, 2) }.unwrap();
        let err = u.for_each_row::<2>("Test", |_, _, _| {}).unwrap_err();
        assert!(err.to_string().contains("needs 2 slots, not 1"), "{err}");
        let u = unsafe { RowUpdate::new(&mut w, &[3, 1], &mut slots, &[0, 2], &g, 2) }.unwrap();
        u.for_each_row("Test", |w, [s], g| {
            for ((w, s), g) in w.iter_mut().zip(s.iter_mut()).zip(g) {
                *w += g;
                *s -= g;
            }
        })
        .unwrap();
        assert_eq!(w, [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        assert_eq!(slots[0], [-1.0, -1.0, 0.0, 0.0, -1.0, -1.0, 0.0, 0.0]);
    }
}
