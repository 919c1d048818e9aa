//! One training or test step: forward, loss (with regularisation), gradients, update,
//! constraints, metric updates.

use super::history::Logs;
use crate::layer::{CallContext, LayerExt};
use crate::metrics::{self, Mean, Metric};
use crate::models::model::{Compiled, StepCache, StepKey, StepKind};
use crate::models::Model;
use ferroflow_core::autodiff::pause_recording;
use ferroflow_core::autodiff::Gradient;
use ferroflow_core::{Error, GradientTape, Result, Tensor, Variable};
use ferroflow_graph::{ConcreteFunction, OptLevel};
use std::sync::Arc;

/// The running loss and metrics of an epoch.
pub struct EpochState {
    loss: Mean,
    output_losses: Vec<Mean>,
    metrics: Vec<(usize, Box<dyn Metric>)>,
    prefix: &'static str,
}

impl EpochState {
    /// Fresh trackers for a compiled model with `outputs` outputs; `prefix` is `""` or `"val_"`.
    pub fn new(compiled: &Compiled, output_names: &[String], prefix: &'static str) -> Result<Self> {
        let outputs = output_names.len().max(1);
        let mut ms = Vec::new();
        for o in 0..outputs {
            for name in &compiled.metrics {
                ms.push((o, metrics::get(name)?));
            }
        }
        Ok(EpochState {
            loss: Mean::new("loss"),
            output_losses: (0..if outputs > 1 { outputs } else { 0 })
                .map(|_| Mean::new(""))
                .collect(),
            metrics: ms,
            prefix,
        })
    }

    /// Clears every tracker.
    pub fn reset(&mut self) {
        self.loss.reset_state();
        self.output_losses.iter_mut().for_each(|m| m.reset_state());
        self.metrics.iter_mut().for_each(|(_, m)| m.reset_state());
    }

    /// The logs so far.
    pub fn logs(&self, output_names: &[String]) -> Logs {
        let mut logs = Logs::new();
        logs.insert(format!("{}loss", self.prefix), self.loss.result());
        for (i, m) in self.output_losses.iter().enumerate() {
            logs.insert(
                format!("{}{}_loss", self.prefix, output_names[i]),
                m.result(),
            );
        }
        let multi = output_names.len() > 1;
        for (o, m) in &self.metrics {
            let key = if multi {
                format!("{}{}_{}", self.prefix, output_names[*o], m.name())
            } else {
                format!("{}{}", self.prefix, m.name())
            };
            logs.insert(key, m.result());
        }
        logs
    }
}

fn weights_vec(sw: Option<&Tensor>) -> Option<Vec<f64>> {
    sw.map(Tensor::to_f64_vec)
}

impl Model {
    pub(crate) fn compiled_ref(&self) -> Result<&Compiled> {
        self.compiled.as_ref().ok_or_else(|| {
            Error::invalid(
                "Model",
                format!(
                    "model '{}' must be compiled before training or evaluation",
                    self.name()
                ),
            )
        })
    }

    /// The total loss and the per-output losses (before weighting).
    pub(crate) fn losses(
        &self,
        y: &[Tensor],
        outs: &[Tensor],
        sw: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let c = self.compiled_ref()?;
        if y.len() != outs.len() {
            return Err(Error::invalid(
                "fit",
                format!(
                    "model '{}' has {} output(s) but {} target array(s) were given",
                    self.name(),
                    outs.len(),
                    y.len()
                ),
            ));
        }
        if c.losses.len() != 1 && c.losses.len() != outs.len() {
            return Err(Error::invalid(
                "compile",
                format!("{} losses for {} outputs", c.losses.len(), outs.len()),
            ));
        }
        let mut total: Option<Tensor> = None;
        let mut parts = Vec::new();
        for (i, (yt, yp)) in y.iter().zip(outs).enumerate() {
            let loss = &c.losses[if c.losses.len() == 1 { 0 } else { i }];
            let l = loss.compute(yt, yp, sw)?;
            let weighted = match c.loss_weights.as_ref().and_then(|w| w.get(i)) {
                Some(&w) => l.mul_scalar(w)?,
                None => l.clone(),
            };
            total = Some(match total {
                Some(t) => t.add(&weighted)?,
                None => weighted,
            });
            parts.push(l);
        }
        let mut total = total.ok_or_else(|| Error::invalid("fit", "model has no outputs"))?;
        if let Some(r) = self.net.regularization_loss()? {
            total = total.add(&r)?;
        }
        Ok((total, parts))
    }

    pub(crate) fn update_state(
        state: &mut EpochState,
        y: &[Tensor],
        outs: &[Tensor],
        total: &Tensor,
        parts: &[Tensor],
        sw: Option<&Tensor>,
    ) -> Result<()> {
        let parts: Vec<f64> = parts.iter().map(|p| p.to_f64_vec()[0]).collect();
        Self::update_state_with(state, y, outs, total.to_f64_vec()[0], &parts, sw)
    }

    /// [`Model::update_state`] with the batch's losses as numbers.
    pub(crate) fn update_state_with(
        state: &mut EpochState,
        y: &[Tensor],
        outs: &[Tensor],
        total: f64,
        parts: &[f64],
        sw: Option<&Tensor>,
    ) -> Result<()> {
        let n = outs
            .first()
            .and_then(|o| o.shape().first().copied())
            .unwrap_or(1) as f64;
        state.loss.add(total, n);
        for (m, p) in state.output_losses.iter_mut().zip(parts) {
            m.add(*p, n);
        }
        let w = weights_vec(sw);
        for (o, m) in state.metrics.iter_mut() {
            m.update_state(&y[*o], &outs[*o], w.as_deref())?;
        }
        Ok(())
    }

    /// One optimisation step on a batch; updates `state`. Runs the compiled train step
    /// unless the model was set to run eagerly.
    pub(crate) fn train_step(
        &mut self,
        x: &[Tensor],
        y: &[Tensor],
        sw: Option<&Tensor>,
        vars: &[Variable],
        state: &mut EpochState,
    ) -> Result<()> {
        let (total, parts, outs) = if self.compiled_ref()?.run_eagerly {
            self.train_core(x, y, sw, vars)?
        } else {
            self.train_compiled(x, y, sw, vars)?
        };
        Self::update_state(state, y, &outs, &total, &parts, sw)
    }

    /// Forward, loss, gradients, update and constraints: (total loss, per-output losses,
    /// outputs).
    fn train_core(
        &mut self,
        x: &[Tensor],
        y: &[Tensor],
        sw: Option<&Tensor>,
        vars: &[Variable],
    ) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
        let tape = GradientTape::with_options(false, false);
        for v in vars {
            tape.watch_variable(v);
        }
        let outs = self.net.call(x, CallContext { training: true })?;
        let (total, parts) = self.losses(y, &outs, sw)?;
        let grads = tape.gradient(&total, vars)?;
        drop(tape);
        self.apply_update(&grads, vars)?;
        Ok((total, parts, outs))
    }

    /// Applies `grads` with the optimiser, then the weights' constraints.
    pub(crate) fn apply_update(
        &mut self,
        grads: &[Option<Gradient>],
        vars: &[Variable],
    ) -> Result<()> {
        let compiled = self
            .compiled
            .as_mut()
            .ok_or_else(|| Error::invalid("fit", "the model is not compiled"))?;
        compiled.optimizer.apply_gradients(grads, vars)?;
        let _pause = pause_recording();
        for w in self.net.weights() {
            if let Some(c) = &w.constraint {
                let v = w.variable.read_untracked();
                w.variable.assign(&c.apply(&v)?)?;
            }
        }
        Ok(())
    }

    /// [`Model::train_core`] traced once per signature into an optimised graph
    /// (`tf.function(jit_compile=True)`), then replayed.
    fn train_compiled(
        &mut self,
        x: &[Tensor],
        y: &[Tensor],
        sw: Option<&Tensor>,
        vars: &[Variable],
    ) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
        let cache = self.compiled_ref()?.step_functions.clone();
        let (args, key) = step_args(StepKind::Train, x, y, sw, vars);
        let (nx, ny) = (x.len(), y.len());
        let flat = run_step(&cache, "train_function", key, &args, |a| {
            let (xa, ya, swa) = split_args(a, nx, ny);
            let (total, parts, outs) = self.train_core(xa, ya, swa, vars)?;
            Ok([vec![total], parts, outs].concat())
        })?;
        unflatten(flat, ny)
    }

    /// Forward in inference mode and the losses: (total, per-output losses, outputs).
    pub(crate) fn test_core(
        &self,
        x: &[Tensor],
        y: &[Tensor],
        sw: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
        let _pause = pause_recording();
        let outs = self.net.call(x, CallContext { training: false })?;
        let (total, parts) = self.losses(y, &outs, sw)?;
        Ok((total, parts, outs))
    }

    /// [`Model::test_core`] compiled once per signature (Keras's `test_function`).
    pub(crate) fn test_compiled(
        &self,
        x: &[Tensor],
        y: &[Tensor],
        sw: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
        let cache = self.compiled_ref()?.step_functions.clone();
        let (args, key) = step_args(StepKind::Test, x, y, sw, &[]);
        let (nx, ny) = (x.len(), y.len());
        let flat = run_step(&cache, "test_function", key, &args, |a| {
            let (xa, ya, swa) = split_args(a, nx, ny);
            let (total, parts, outs) = self.test_core(xa, ya, swa)?;
            Ok([vec![total], parts, outs].concat())
        })?;
        unflatten(flat, ny)
    }

    /// One evaluation step on a batch; updates `state`.
    pub(crate) fn test_step(
        &self,
        x: &[Tensor],
        y: &[Tensor],
        sw: Option<&Tensor>,
        state: &mut EpochState,
    ) -> Result<()> {
        let (total, parts, outs) = if self.compiled_ref()?.run_eagerly {
            self.test_core(x, y, sw)?
        } else {
            self.test_compiled(x, y, sw)?
        };
        Self::update_state(state, y, &outs, &total, &parts, sw)
    }

    /// One training step on one batch (`train_on_batch`); returns the batch's logs.
    pub fn train_on_batch(
        &mut self,
        x: impl Into<super::data::Arrays>,
        y: impl Into<super::data::Arrays>,
    ) -> Result<Logs> {
        let (x, y) = (&x.into().0[..], &y.into().0[..]);
        let names = self.output_names();
        let mut state = EpochState::new(self.compiled_ref()?, &names, "")?;
        let vars = self.trainable_variables_for(x)?;
        self.train_step(x, y, None, &vars, &mut state)?;
        Ok(state.logs(&names))
    }

    /// Loss and metrics on one batch without training (`test_on_batch`).
    pub fn test_on_batch(
        &self,
        x: impl Into<super::data::Arrays>,
        y: impl Into<super::data::Arrays>,
    ) -> Result<Logs> {
        let (x, y) = (&x.into().0[..], &y.into().0[..]);
        let names = self.output_names();
        let mut state = EpochState::new(self.compiled_ref()?, &names, "")?;
        self.test_step(x, y, None, &mut state)?;
        Ok(state.logs(&names))
    }

    /// The trainable variables, building the model on `x` first if needed.
    pub(crate) fn trainable_variables_for(&self, x: &[Tensor]) -> Result<Vec<Variable>> {
        if self.net.base().built_specs().is_none() {
            let _pause = pause_recording();
            let probe = super::data::slice_rows(x, 0, 1.min(super::data::num_samples(x)?))?;
            self.net.forward(&probe, false)?;
        }
        Ok(self.net.trainable_variables())
    }
}

/// The flat arguments of a compiled step and what it is specialised on.
pub(crate) fn step_args(
    kind: StepKind,
    x: &[Tensor],
    y: &[Tensor],
    sw: Option<&Tensor>,
    vars: &[Variable],
) -> (Vec<Tensor>, StepKey) {
    let mut args: Vec<Tensor> = x.iter().chain(y).cloned().collect();
    args.extend(sw.cloned());
    let key = StepKey {
        kind,
        args: args
            .iter()
            .map(|a| (a.shape().to_vec(), a.dtype()))
            .collect(),
        split: (x.len(), y.len(), sw.is_some()),
        vars: vars.iter().map(Variable::id).collect(),
    };
    (args, key)
}

/// Splits flat step arguments back into (x, y, sample weights).
pub(crate) fn split_args(
    a: &[Tensor],
    nx: usize,
    ny: usize,
) -> (&[Tensor], &[Tensor], Option<&Tensor>) {
    let (xa, rest) = a.split_at(nx);
    let (ya, swa) = rest.split_at(ny);
    (xa, ya, swa.first())
}

/// (total, per-output losses, outputs) from a compiled step's flat results.
fn unflatten(flat: Vec<Tensor>, n: usize) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
    if flat.len() != 1 + 2 * n {
        return Err(Error::invalid(
            "fit",
            "compiled step returned an unexpected number of values",
        ));
    }
    Ok((
        flat[0].clone(),
        flat[1..1 + n].to_vec(),
        flat[1 + n..].to_vec(),
    ))
}

/// Runs the cached compiled step for `key`, tracing `f` into one first.
pub(crate) fn run_step(
    cache: &StepCache,
    name: &str,
    key: StepKey,
    args: &[Tensor],
    f: impl FnOnce(&[Tensor]) -> Result<Vec<Tensor>>,
) -> Result<Vec<Tensor>> {
    let lock = || cache.lock().unwrap_or_else(|e| e.into_inner());
    let cached = lock().get(&key).cloned();
    if let Some(cf) = cached {
        return cf.call(args);
    }
    let (cf, flat) = ConcreteFunction::trace(name, f, args, OptLevel::Full)?;
    lock().insert(key, Arc::new(cf));
    Ok(flat)
}
