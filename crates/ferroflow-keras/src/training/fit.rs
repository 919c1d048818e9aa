//! `fit` and `evaluate` over in-memory arrays.

use super::data::{num_samples, sample_weights, split_tail, Arrays};
use super::epochs::{input_part, tensors_of, ArrayBatches, DatasetBatches, Validation};
use super::history::{History, Logs};
use super::progress::Verbosity;
use crate::callbacks::Callback;
use crate::models::Model;
use ferroflow_core::{Error, Result, Tensor};
use ferroflow_data::{Cardinality, Dataset};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
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
    /// Batches per epoch when fitting a dataset (required for an infinite one).
    pub steps_per_epoch: Option<usize>,
    /// Validation batches as a dataset (for `fit_dataset`, or instead of arrays).
    pub validation_dataset: Option<Dataset>,
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
            steps_per_epoch: None,
            validation_dataset: None,
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

    /// Sets `steps_per_epoch` (needed for an infinite dataset).
    pub fn steps_per_epoch(mut self, n: usize) -> Self {
        self.steps_per_epoch = Some(n);
        self
    }

    /// Validates on a dataset of `(x, y)` batches after each epoch.
    pub fn validation_dataset(mut self, data: Dataset) -> Self {
        self.validation_dataset = Some(data);
        self
    }

    /// Sets `verbose`.
    pub fn verbose(mut self, v: Verbosity) -> Self {
        self.verbose = v;
        self
    }
}

impl Model {
    /// `rng` on a single worker; the chief's generator on every worker of a multi-worker
    /// strategy, so that all of them shuffle the same way and split the same global batches.
    fn chiefs_rng(&self, rng: ChaCha8Rng) -> Result<ChaCha8Rng> {
        let Some(r) = self.replicated().filter(|r| r.num_workers() > 1) else {
            return Ok(rng);
        };
        let mut state = rng.get_seed().to_vec();
        state.extend(rng.get_stream().to_le_bytes());
        state.extend(rng.get_word_pos().to_le_bytes());
        let state = r.broadcast_bytes(state)?;
        if state.len() != 32 + 8 + 16 {
            return Err(Error::invalid(
                "fit",
                "the chief sent a malformed shuffle state",
            ));
        }
        let seed: [u8; 32] = state[..32].try_into().expect("length checked");
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(u64::from_le_bytes(
            state[32..40].try_into().expect("length checked"),
        ));
        rng.set_word_pos(u128::from_le_bytes(
            state[40..].try_into().expect("length checked"),
        ));
        Ok(rng)
    }

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
        let validation = match (x_val, y_val, opts.validation_dataset.take()) {
            (Some(x), Some(y), _) => Some(Validation::Arrays { x, y }),
            (_, _, Some(d)) => Some(Validation::Data(d)),
            _ => None,
        };
        let mut source = ArrayBatches {
            x: x_train,
            y: y_train,
            sw: sw_train,
            batch_size: opts.batch_size,
            // Drawn even without shuffling, so the global random stream does not depend on it.
            shuffle: Some(self.chiefs_rng(ferroflow_core::random::op_rng(None))?)
                .filter(|_| opts.shuffle),
        };
        self.run_fit(&mut source, validation, opts)
    }

    pub(crate) fn evaluate_logs(
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
        let mut source = ArrayBatches {
            x: x.to_vec(),
            y: y.to_vec(),
            sw: None,
            batch_size: batch_size.max(1),
            shuffle: None,
        };
        self.evaluate_source(&mut source, prefix)
    }

    /// Trains on a dataset of `(x, y)` or `(x, y, sample_weight)` batches (`model.fit(dataset)`):
    /// `x` and `y` are a tensor, a tuple of tensors, or a map keyed by input/output names.
    /// Each epoch is one pass, or `steps_per_epoch` batches (required when the dataset
    /// repeats forever). `batch_size`, `shuffle`, `validation_split` and the weights options
    /// belong to the dataset and are ignored here, as in Keras.
    pub fn fit_dataset(&mut self, data: &Dataset, mut opts: FitOptions) -> Result<History> {
        self.compiled_ref()?;
        if data.cardinality() == Cardinality::Infinite && opts.steps_per_epoch.is_none() {
            return Err(Error::invalid(
                "fit",
                "the dataset repeats forever; set steps_per_epoch",
            ));
        }
        let validation = match (opts.validation_dataset.take(), opts.validation_data.take()) {
            (Some(d), _) => Some(Validation::Data(d)),
            (None, Some((x, y))) => Some(Validation::Arrays { x: x.0, y: y.0 }),
            (None, None) => None,
        };
        let mut source = DatasetBatches {
            data: data.clone(),
            inputs: self.network().input_names(),
            outputs: self.output_names(),
            steps_per_epoch: opts.steps_per_epoch,
            live: None,
        };
        self.run_fit(&mut source, validation, opts)
    }

    /// Loss and metrics over a dataset of `(x, y)` batches (`model.evaluate(dataset)`).
    pub fn evaluate_dataset(&self, data: &Dataset) -> Result<Logs> {
        self.evaluate_batches(data, "")
    }

    /// Predictions for a dataset of input batches (`x`, or `(x, ...)` whose first part is
    /// taken), concatenated (`model.predict(dataset)`).
    pub fn predict_dataset(&self, data: &Dataset) -> Result<Vec<Tensor>> {
        if data.cardinality() == Cardinality::Infinite {
            return Err(Error::invalid(
                "predict",
                "the dataset is infinite; take() a finite part",
            ));
        }
        let inputs = self.network().input_names();
        let batches = data
            .iter()?
            .map(|e| tensors_of(input_part(&e?), &inputs, "input"));
        Ok(self.predict_batches(batches)?.unwrap_or_default())
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
