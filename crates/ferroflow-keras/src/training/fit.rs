//! `fit` and `evaluate` over in-memory arrays.

use super::data::{
    gather_rows, index_tensor, num_samples, sample_weights, slice_rows, split_tail, Arrays,
};
use super::history::{History, Logs};
use super::progress::{Progress, Verbosity};
use super::step::EpochState;
use crate::callbacks::Callback;
use crate::models::Model;
use ferroflow_core::{Error, Result, Tensor};
use rand::seq::SliceRandom;
use std::collections::HashMap;

/// Keras's `verbose`: `"auto"` (= 1), 0, 1 or 2.
pub type Verbose = Verbosity;

/// The options of `fit` (Keras's keyword arguments), with Keras's defaults.
pub struct FitOptions {
    /// Number of epochs (default 1).
    pub epochs: usize,
    /// Samples per step (default 32).
    pub batch_size: usize,
    /// Fraction of the samples (the last ones, before shuffling) held out for validation.
    pub validation_split: f64,
    /// Explicit validation inputs and targets (takes precedence over the split).
    pub validation_data: Option<(Arrays, Arrays)>,
    /// Shuffle the training samples before each epoch (default true).
    pub shuffle: bool,
    /// Loss weight per class id.
    pub class_weight: Option<HashMap<usize, f64>>,
    /// Loss weight per sample.
    pub sample_weight: Option<Tensor>,
    /// The epoch to start at (for resumed training).
    pub initial_epoch: usize,
    /// Callbacks, called in order.
    pub callbacks: Vec<Box<dyn Callback>>,
    /// What to print.
    pub verbose: Verbosity,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            batch_size: 32,
            validation_split: 0.0,
            validation_data: None,
            shuffle: true,
            class_weight: None,
            sample_weight: None,
            initial_epoch: 0,
            callbacks: Vec::new(),
            verbose: Verbosity::Bar,
        }
    }
}

impl FitOptions {
    /// Keras's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `epochs`.
    pub fn epochs(mut self, n: usize) -> Self {
        self.epochs = n;
        self
    }

    /// Sets `batch_size`.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Sets `validation_split`.
    pub fn validation_split(mut self, f: f64) -> Self {
        self.validation_split = f;
        self
    }

    /// Sets `validation_data`.
    pub fn validation_data(mut self, x: impl Into<Arrays>, y: impl Into<Arrays>) -> Self {
        self.validation_data = Some((x.into(), y.into()));
        self
    }

    /// Sets `shuffle`.
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// Sets `class_weight`.
    pub fn class_weight(mut self, w: HashMap<usize, f64>) -> Self {
        self.class_weight = Some(w);
        self
    }

    /// Sets `sample_weight`.
    pub fn sample_weight(mut self, w: Tensor) -> Self {
        self.sample_weight = Some(w);
        self
    }

    /// Sets `initial_epoch`.
    pub fn initial_epoch(mut self, e: usize) -> Self {
        self.initial_epoch = e;
        self
    }

    /// Adds a callback.
    pub fn callback(mut self, c: impl Callback + 'static) -> Self {
        self.callbacks.push(Box::new(c));
        self
    }

    /// Sets `verbose`.
    pub fn verbose(mut self, v: Verbosity) -> Self {
        self.verbose = v;
        self
    }
}

impl Model {
    /// Trains the model (`model.fit(x, y, ...)`): one tensor per input in `x`, one per
    /// output in `y`. Returns the per-epoch logs.
    pub fn fit(
        &mut self,
        x: impl Into<Arrays>,
        y: impl Into<Arrays>,
        mut opts: FitOptions,
    ) -> Result<History> {
        let (x, y) = (&x.into().0[..], &y.into().0[..]);
        self.compiled_ref()?;
        let n_all = num_samples(x)?;
        if num_samples(y)? != n_all {
            return Err(Error::invalid(
                "fit",
                format!("x has {n_all} samples but y has {}", num_samples(y)?),
            ));
        }
        if opts.batch_size == 0 {
            return Err(Error::invalid("fit", "batch_size must be positive"));
        }
        let sw_all = sample_weights(
            &y[0],
            opts.class_weight.as_ref(),
            opts.sample_weight.as_ref(),
        )?;
        let (x_train, x_val, y_train, y_val, sw_train) =
            if opts.validation_data.is_none() && opts.validation_split > 0.0 {
                let (xt, xv) = split_tail(x, opts.validation_split)?;
                let (yt, yv) = split_tail(y, opts.validation_split)?;
                let swt = match &sw_all {
                    Some(w) => Some(
                        split_tail(std::slice::from_ref(w), opts.validation_split)?
                            .0
                            .remove(0),
                    ),
                    None => None,
                };
                (xt, Some(xv), yt, Some(yv), swt)
            } else {
                let (xv, yv) = match opts.validation_data.take() {
                    Some((a, b)) => (Some(a.0), Some(b.0)),
                    None => (None, None),
                };
                (x.to_vec(), xv, y.to_vec(), yv, sw_all)
            };
        let n = num_samples(&x_train)?;
        let steps = n.div_ceil(opts.batch_size);
        let names = self.output_names();
        let vars = self.trainable_variables_for(&x_train)?;
        let mut state = EpochState::new(self.compiled_ref()?, &names, "")?;
        let mut history = History::default();
        let mut callbacks = std::mem::take(&mut opts.callbacks);
        self.stop_training = false;
        for cb in callbacks.iter_mut() {
            cb.on_train_begin(self)?;
        }
        let mut rng = ferroflow_core::random::op_rng(None);
        let mut order: Vec<usize> = (0..n).collect();
        for epoch in opts.initial_epoch..opts.epochs {
            for cb in callbacks.iter_mut() {
                cb.on_epoch_begin(epoch, self)?;
            }
            Progress::epoch_header(epoch, opts.epochs, opts.verbose);
            let progress = Progress::new(steps, opts.verbose);
            state.reset();
            if opts.shuffle {
                order.shuffle(&mut rng);
            }
            for step in 0..steps {
                let lo = step * opts.batch_size;
                let hi = (lo + opts.batch_size).min(n);
                let (xb, yb, swb) = if opts.shuffle {
                    let idx = index_tensor(&order[lo..hi])?;
                    let sw = sw_train.as_ref().map(|w| w.gather(&idx, 0)).transpose()?;
                    (
                        gather_rows(&x_train, &idx)?,
                        gather_rows(&y_train, &idx)?,
                        sw,
                    )
                } else {
                    let sw = match &sw_train {
                        Some(w) => Some(slice_rows(std::slice::from_ref(w), lo, hi)?.remove(0)),
                        None => None,
                    };
                    (
                        slice_rows(&x_train, lo, hi)?,
                        slice_rows(&y_train, lo, hi)?,
                        sw,
                    )
                };
                self.train_step(&xb, &yb, swb.as_ref(), &vars, &mut state)?;
                let logs = state.logs(&names);
                progress.update(step + 1, &logs);
                for cb in callbacks.iter_mut() {
                    cb.on_train_batch_end(step, &logs, self)?;
                }
            }
            let mut logs = state.logs(&names);
            if let (Some(xv), Some(yv)) = (&x_val, &y_val) {
                let val = self.evaluate_logs(xv, yv, opts.batch_size, "val_")?;
                logs.extend(val);
            }
            progress.finish(&logs);
            for cb in callbacks.iter_mut() {
                cb.on_epoch_end(epoch, &logs, self)?;
            }
            history.push(epoch, &logs);
            if self.stop_training {
                break;
            }
        }
        for cb in callbacks.iter_mut() {
            cb.on_train_end(self)?;
        }
        Ok(history)
    }

    fn evaluate_logs(
        &self,
        x: &[Tensor],
        y: &[Tensor],
        batch_size: usize,
        prefix: &'static str,
    ) -> Result<Logs> {
        let n = num_samples(x)?;
        if num_samples(y)? != n {
            return Err(Error::invalid(
                "evaluate",
                format!("x has {n} samples but y has {}", num_samples(y)?),
            ));
        }
        let names = self.output_names();
        let mut state = EpochState::new(self.compiled_ref()?, &names, prefix)?;
        let bs = batch_size.max(1);
        let mut lo = 0;
        while lo < n {
            let hi = (lo + bs).min(n);
            self.test_step(
                &slice_rows(x, lo, hi)?,
                &slice_rows(y, lo, hi)?,
                None,
                &mut state,
            )?;
            lo = hi;
        }
        Ok(state.logs(&names))
    }

    /// Loss and metrics over `x`, `y` in batches (`model.evaluate`).
    pub fn evaluate(
        &self,
        x: impl Into<Arrays>,
        y: impl Into<Arrays>,
        batch_size: usize,
    ) -> Result<Logs> {
        self.evaluate_logs(&x.into().0, &y.into().0, batch_size, "")
    }
}
