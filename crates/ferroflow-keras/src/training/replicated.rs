//! Train, test and predict steps under a distribution strategy: each global batch is split
//! across the replicas (local threads and workers), each replica differentiates its share
//! of the loss scaled by its share of the batch, the gradients are summed (replicas in
//! order, then workers) and one update is applied; the outputs are gathered so that every
//! worker updates its metrics on the whole global batch and logs the same numbers.

use super::data::{num_samples, slice_rows};
use super::overlap::Overlap;
use super::step::{run_step, split_args, step_args, EpochState};
use crate::distribution::{share, Replicas, ReplicasExt};
use crate::layer::CallContext;
use crate::models::model::{GradientLayout, GradientSlot, StepKind};
use crate::models::Model;
use crate::state_updates;
use ferroflow_core::autodiff::UnconnectedGradients;
use ferroflow_core::autodiff::{Gradient, IndexedSlices};
use ferroflow_core::{Error, GradientTape, Result, Tensor, Variable};
use std::sync::Arc;

/// What one replica's gradient step gives back.
struct ReplicaGrads {
    /// The replica's loss (unscaled) and per-output losses.
    total: f64,
    parts: Vec<f64>,
    outs: Vec<Tensor>,
    grads: Vec<Option<Gradient>>,
    /// Whether the dense f32 gradients were already summed over the workers.
    overlapped: bool,
    /// The layer-state updates of the replica's forward pass, not yet applied.
    state: state_updates::Collected,
}

/// A replica's loss, per-output losses, outputs and gradients, as traced.
type Differentiated = (Tensor, Vec<Tensor>, Vec<Tensor>, Vec<Option<Gradient>>);

/// What one replica's test step gives back.
struct ReplicaTest {
    total: f64,
    parts: Vec<f64>,
    outs: Vec<Tensor>,
}

/// One replica's share of a batch: rows `lo..hi` of every array.
fn shard(
    x: &[Tensor],
    y: &[Tensor],
    sw: Option<&Tensor>,
    lo: usize,
    hi: usize,
) -> Result<(Vec<Tensor>, Vec<Tensor>, Option<Tensor>)> {
    let sw = match sw {
        Some(w) => Some(slice_rows(std::slice::from_ref(w), lo, hi)?.remove(0)),
        None => None,
    };
    Ok((slice_rows(x, lo, hi)?, slice_rows(y, lo, hi)?, sw))
}

fn scalar(t: &Tensor) -> f64 {
    t.to_f64_vec().first().copied().unwrap_or(0.0)
}

/// Adds `g` to the running sum `acc` (replicas are summed in replica order).
fn accumulate(acc: &mut Option<Gradient>, g: Option<Gradient>) -> Result<()> {
    if let Some(g) = g {
        *acc = Some(match acc.take() {
            None => g,
            Some(a) => a.add(&g)?,
        });
    }
    Ok(())
}

/// Concatenates each output over the replicas' results, in replica order.
fn concat_outputs(per_replica: &[&[Tensor]]) -> Result<Vec<Tensor>> {
    let Some(first) = per_replica.first() else {
        return Ok(Vec::new());
    };
    (0..first.len())
        .map(|o| {
            let parts: Vec<Tensor> = per_replica.iter().map(|r| r[o].clone()).collect();
            if parts.len() == 1 {
                Ok(parts[0].clone())
            } else {
                Tensor::concat(&parts, 0)
            }
        })
        .collect()
}

/// The batch's total loss and per-output losses from the replicas' share-weighted ones.
fn loss_sums<'a>(outputs: usize, replicas: impl Iterator<Item = (f64, &'a [f64])>) -> Vec<f64> {
    let mut sums = vec![0.0; 1 + outputs];
    for (total, parts) in replicas {
        sums[0] += total;
        for (s, p) in sums[1..].iter_mut().zip(parts) {
            *s += p;
        }
    }
    sums
}

/// Runs `f(lo, hi)` on every local replica, rows `lo..hi` of a global batch of `n` rows
/// being its share; `None` for a replica whose share is empty.
fn on_shares<T: Send + 'static>(
    r: &Arc<dyn Replicas>,
    n: usize,
    f: impl Fn(usize, usize) -> Result<T> + Sync,
) -> Result<Vec<Option<T>>> {
    let (rank, local, replicas) = (
        r.worker_rank(),
        r.local_replicas(),
        r.num_replicas_in_sync(),
    );
    r.run_each(|i| {
        let (lo, hi) = share(n, rank * local + i, replicas);
        if lo == hi {
            return Ok(None);
        }
        f(lo, hi).map(Some)
    })
}

/// Sums over the workers the gradients the backward pass did not already sum (all of
/// them unless `overlapped`).
fn all_reduce_rest(
    r: &Arc<dyn Replicas>,
    grads: &mut [Option<Gradient>],
    vars: &[Variable],
    overlapped: bool,
) -> Result<()> {
    if !overlapped {
        return r.all_reduce_gradients(grads, vars);
    }
    let rest: Vec<usize> = (0..grads.len())
        .filter(|&i| !grads[i].as_ref().is_some_and(Overlap::takes))
        .collect();
    if rest.is_empty() {
        return Ok(());
    }
    let mut sub: Vec<Option<Gradient>> = rest.iter().map(|&i| grads[i].take()).collect();
    let sub_vars: Vec<Variable> = rest.iter().map(|&i| vars[i].clone()).collect();
    r.all_reduce_gradients(&mut sub, &sub_vars)?;
    for (i, g) in rest.into_iter().zip(sub) {
        grads[i] = g;
    }
    Ok(())
}

impl Model {
    /// The strategy the model was compiled under, if any.
    pub fn distribution(&self) -> Option<&Arc<dyn Replicas>> {
        self.compiled.as_ref().and_then(|c| c.replicas.as_ref())
    }

    /// Whether this process is the chief (always, without a multi-worker strategy): only
    /// the chief writes checkpoints, logs and saved models, and prints progress.
    pub fn is_chief(&self) -> bool {
        self.distribution().is_none_or(|r| r.is_chief())
    }

    /// Sets or clears the strategy of a compiled model (what compiling inside
    /// `strategy.scope()` does).
    pub fn set_distribution(&mut self, replicas: Option<Arc<dyn Replicas>>) -> Result<()> {
        let name = self.name().to_string();
        let c = self.compiled.as_mut().ok_or_else(|| {
            Error::invalid(
                "Model",
                format!("model '{name}' must be compiled before it is distributed"),
            )
        })?;
        c.replicas = replicas;
        Ok(())
    }

    /// Averages the non-trainable float variables (BatchNormalization's moving statistics)
    /// over the workers, which each updated from their own shares of the batches: TF keeps
    /// them per replica and reads their mean (`SyncOnRead`, `MEAN`). Called at the end of
    /// each epoch, before validation and the callbacks that save.
    pub(crate) fn average_local_state(&self, r: &Arc<dyn Replicas>) -> Result<()> {
        if r.num_workers() < 2 {
            return Ok(());
        }
        let vars: Vec<Variable> = self
            .non_trainable_variables()
            .into_iter()
            .filter(|v| v.dtype().is_float())
            .collect();
        if vars.is_empty() {
            return Ok(());
        }
        let mut values = Vec::new();
        for v in &vars {
            values.extend(v.read_untracked().to_f64_vec());
        }
        r.all_reduce_f64(&mut values)?;
        let workers = r.num_workers() as f64;
        let mut at = 0;
        for v in &vars {
            let n: usize = v.shape().iter().product();
            let mean: Vec<f64> = values[at..at + n].iter().map(|s| s / workers).collect();
            v.assign(&Tensor::from_vec(mean, v.shape())?.cast(v.dtype())?)?;
            at += n;
        }
        Ok(())
    }

    /// The strategy when it has more than one replica (one replica trains as usual).
    pub(crate) fn replicated(&self) -> Option<Arc<dyn Replicas>> {
        self.distribution()
            .filter(|r| r.num_replicas_in_sync() > 1)
            .cloned()
    }

    /// Forward, loss and the gradients of the loss times `scale` (the replica's share of
    /// the global batch).
    fn gradient_core(
        &self,
        x: &[Tensor],
        y: &[Tensor],
        sw: Option<&Tensor>,
        vars: &[Variable],
        scale: &Tensor,
        overlap: Option<Overlap>,
    ) -> Result<Differentiated> {
        let tape = GradientTape::with_options(false, false);
        for v in vars {
            tape.watch_variable(v);
        }
        let outs = self.net.call(x, CallContext { training: true })?;
        let (total, parts) = self.losses(y, &outs, sw)?;
        let scaled = total.mul(&scale.cast(total.dtype())?)?;
        let grads = match overlap {
            None => tape.gradient(&scaled, vars)?,
            Some(mut buckets) => {
                let mut grads = tape.gradient_streamed(
                    &scaled,
                    vars,
                    None,
                    UnconnectedGradients::None,
                    &mut |i, g| buckets.ready(i, g),
                )?;
                buckets.finish(&mut grads)?;
                grads
            }
        };
        Ok((total, parts, outs, grads))
    }

    /// The background buckets for this step: with several workers of one replica each,
    /// when every replica has rows (so that all of them start the same sums), and when the
    /// f32 gradients of `vars` fill more than one bucket. A single bucket could only start
    /// when the backward pass ends, so it is summed right after the pass instead, without
    /// the hand-offs to and from the communication thread.
    fn overlap_for(&self, rows: usize, vars: &[Variable]) -> Option<(Arc<dyn Replicas>, usize)> {
        let r = self.replicated()?;
        let cap = r.overlap_bucket_bytes()?;
        let bytes: usize = vars
            .iter()
            .filter(|v| v.dtype() == ferroflow_core::DType::F32)
            .map(|v| v.shape().iter().product::<usize>() * 4)
            .sum();
        (r.num_workers() > 1
            && r.local_replicas() == 1
            && rows >= r.num_replicas_in_sync()
            && bytes > cap)
            .then_some((r, cap))
    }

    /// [`Model::gradient_core`] as a compiled step, its gradients flattened into results.
    fn gradient_step(
        &self,
        x: &[Tensor],
        y: &[Tensor],
        sw: Option<&Tensor>,
        vars: &[Variable],
        scale: f64,
        global_rows: usize,
    ) -> Result<ReplicaGrads> {
        let compiled = self.compiled_ref()?;
        let scale = Tensor::scalar(scale as f32);
        let overlap = self.overlap_for(global_rows, vars);
        let overlapped = overlap.is_some();
        let buckets = || overlap.clone().map(|(r, cap)| Overlap::new(r, cap));
        if compiled.run_eagerly {
            let ((total, parts, outs, grads), state) =
                state_updates::collect(|| self.gradient_core(x, y, sw, vars, &scale, buckets()))?;
            return Ok(ReplicaGrads {
                total: scalar(&total),
                parts: parts.iter().map(scalar).collect(),
                outs,
                grads,
                overlapped,
                state,
            });
        }
        let cache = compiled.step_functions.clone();
        let layouts = compiled.gradient_layouts.clone();
        let kind = if overlapped {
            StepKind::GradientsOverlapped
        } else {
            StepKind::Gradients
        };
        let (mut args, mut key) = step_args(kind, x, y, sw, vars);
        args.push(scale.clone());
        key.args.push((Vec::new(), scale.dtype()));
        let (nx, ny) = (x.len(), y.len());
        let mut traced_layout = None;
        let flat = run_step(&cache, "gradient_function", key.clone(), &args, |a| {
            let (xa, rest) = a.split_at(nx + ny + usize::from(sw.is_some()));
            let (xa, ya, swa) = split_args(xa, nx, ny);
            let ((total, parts, outs, grads), state) = state_updates::collect(|| {
                self.gradient_core(xa, ya, swa, vars, &rest[0], buckets())
            })?;
            let mut flat = [vec![total], parts, outs].concat();
            let mut layout = GradientLayout::default();
            for g in grads {
                layout.grads.push(match g {
                    None => GradientSlot::Missing,
                    Some(Gradient::Dense(t)) => {
                        flat.push(t);
                        GradientSlot::Dense
                    }
                    Some(Gradient::Sparse(s)) => {
                        flat.push(s.indices);
                        flat.push(s.values);
                        GradientSlot::Sparse(s.dense_shape)
                    }
                });
            }
            for (var, value) in state {
                layout.state.push(var);
                flat.push(value);
            }
            // Stored before the traced step is cached: another replica that finds the
            // step must find its layout too.
            layouts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), layout.clone());
            traced_layout = Some(layout);
            Ok(flat)
        })?;
        let lock = || layouts.lock().unwrap_or_else(|e| e.into_inner());
        let layout = match traced_layout {
            Some(l) => l,
            None => lock()
                .get(&key)
                .cloned()
                .ok_or_else(|| Error::invalid("fit", "a compiled gradient step lost its layout"))?,
        };
        let mut it = flat.into_iter();
        let mut next = || {
            it.next().ok_or_else(|| {
                Error::invalid("fit", "a compiled gradient step returned too few values")
            })
        };
        let total = scalar(&next()?);
        let parts = (0..ny)
            .map(|_| next().map(|t| scalar(&t)))
            .collect::<Result<_>>()?;
        let outs = (0..ny).map(|_| next()).collect::<Result<_>>()?;
        let grads = layout
            .grads
            .into_iter()
            .map(|slot| {
                Ok(match slot {
                    GradientSlot::Missing => None,
                    GradientSlot::Dense => Some(Gradient::Dense(next()?)),
                    GradientSlot::Sparse(dense_shape) => Some(Gradient::Sparse(IndexedSlices {
                        indices: next()?,
                        values: next()?,
                        dense_shape,
                    })),
                })
            })
            .collect::<Result<_>>()?;
        let state = layout
            .state
            .into_iter()
            .map(|v| Ok((v, next()?)))
            .collect::<Result<_>>()?;
        Ok(ReplicaGrads {
            total,
            parts,
            outs,
            grads,
            overlapped,
            state,
        })
    }

    /// One distributed training step on a global batch; updates `state` with the whole
    /// batch, identically on every worker.
    pub(crate) fn train_step_replicated(
        &mut self,
        r: &Arc<dyn Replicas>,
        x: &[Tensor],
        y: &[Tensor],
        sw: Option<&Tensor>,
        vars: &[Variable],
        epoch: &mut EpochState,
    ) -> Result<()> {
        let n = num_samples(x)?;
        let this: &Model = self;
        let results = on_shares(r, n, |lo, hi| {
            let (xs, ys, sws) = shard(x, y, sw, lo, hi)?;
            let scale = (hi - lo) as f64 / n as f64;
            let mut res = this.gradient_step(&xs, &ys, sws.as_ref(), vars, scale, n)?;
            // The losses weighted by the share, so that their sum is the batch's.
            res.total *= scale;
            res.parts.iter_mut().for_each(|p| *p *= scale);
            Ok(res)
        })?;
        let mut grads: Vec<Option<Gradient>> = vec![None; vars.len()];
        let mut sums = loss_sums(
            y.len(),
            results.iter().flatten().map(|r| (r.total, &r.parts[..])),
        );
        let outs: Vec<&[Tensor]> = results.iter().flatten().map(|r| &r.outs[..]).collect();
        let mut outs = concat_outputs(&outs)?;
        let mut overlapped = false;
        let mut state = Vec::new();
        for res in results.into_iter().flatten() {
            overlapped |= res.overlapped;
            state.push(res.state);
            for (acc, g) in grads.iter_mut().zip(res.grads) {
                accumulate(acc, g)?;
            }
        }
        if r.num_workers() > 1 {
            all_reduce_rest(r, &mut grads, vars, overlapped)?;
            r.all_reduce_f64(&mut sums)?;
            outs = r.all_gather_rows(&outs)?;
        }
        state_updates::assign_means(&state)?;
        self.apply_update_compiled(&grads, vars)?;
        Self::update_state_with(epoch, y, &outs, sums[0], &sums[1..], sw)
    }

    /// [`Model::apply_update`] as a compiled step (Keras's update inside its
    /// `train_function`), when every gradient is dense; eagerly otherwise.
    fn apply_update_compiled(
        &mut self,
        grads: &[Option<Gradient>],
        vars: &[Variable],
    ) -> Result<()> {
        let compiled = self.compiled_ref()?;
        let dense: Option<Vec<Tensor>> = grads
            .iter()
            .flatten()
            .map(|g| match g {
                Gradient::Dense(t) => Some(t.clone()),
                Gradient::Sparse(_) => None,
            })
            .collect();
        let Some(args) = dense.filter(|_| !compiled.run_eagerly) else {
            return self.apply_update(grads, vars);
        };
        let cache = compiled.step_functions.clone();
        let present: Vec<bool> = grads.iter().map(Option::is_some).collect();
        let (_, mut key) = step_args(StepKind::Apply, &args, &[], None, vars);
        key.split = (present.iter().filter(|p| **p).count(), present.len(), false);
        run_step(&cache, "apply_function", key, &args, |a| {
            let mut it = a.iter();
            let rebuilt: Vec<Option<Gradient>> = present
                .iter()
                .map(|&p| {
                    p.then(|| it.next().map(|t| Gradient::Dense(t.clone())))
                        .flatten()
                })
                .collect();
            self.apply_update(&rebuilt, vars)?;
            Ok(Vec::new())
        })?;
        Ok(())
    }

    /// One distributed evaluation step on a global batch; updates `state` with the whole
    /// batch, identically on every worker.
    pub(crate) fn test_step_replicated(
        &self,
        r: &Arc<dyn Replicas>,
        x: &[Tensor],
        y: &[Tensor],
        sw: Option<&Tensor>,
        state: &mut EpochState,
    ) -> Result<()> {
        let n = num_samples(x)?;
        let results = on_shares(r, n, |lo, hi| {
            let (xs, ys, sws) = shard(x, y, sw, lo, hi)?;
            let (total, parts, outs) = if self.compiled_ref()?.run_eagerly {
                self.test_core(&xs, &ys, sws.as_ref())?
            } else {
                self.test_compiled(&xs, &ys, sws.as_ref())?
            };
            let share = (hi - lo) as f64 / n as f64;
            Ok(ReplicaTest {
                total: scalar(&total) * share,
                parts: parts.iter().map(|p| scalar(p) * share).collect(),
                outs,
            })
        })?;
        let mut sums = loss_sums(
            y.len(),
            results.iter().flatten().map(|r| (r.total, &r.parts[..])),
        );
        let outs: Vec<&[Tensor]> = results.iter().flatten().map(|r| &r.outs[..]).collect();
        let mut outs = concat_outputs(&outs)?;
        if r.num_workers() > 1 {
            r.all_reduce_f64(&mut sums)?;
            outs = r.all_gather_rows(&outs)?;
        }
        Self::update_state_with(state, y, &outs, sums[0], &sums[1..], sw)
    }

    /// Predictions for one batch computed by the replicas, each on its share, gathered in
    /// order on every worker.
    pub(crate) fn predict_step_replicated(
        &self,
        r: &Arc<dyn Replicas>,
        x: &[Tensor],
    ) -> Result<Vec<Tensor>> {
        let n = num_samples(x)?;
        let results = on_shares(r, n, |lo, hi| self.predict_step(&slice_rows(x, lo, hi)?))?;
        let outs: Vec<&[Tensor]> = results.iter().flatten().map(|r| &r[..]).collect();
        let outs = concat_outputs(&outs)?;
        if r.num_workers() > 1 {
            r.all_gather_rows(&outs)
        } else {
            Ok(outs)
        }
    }
}
