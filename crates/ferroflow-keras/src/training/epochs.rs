//! The epoch loop `fit` runs for any source of batches (in-memory arrays or a Dataset):
//! callbacks, progress, training steps, validation, history.

use super::data::{gather_rows, index_tensor, num_samples, slice_rows};
use super::fit::FitOptions;
use super::history::{History, Logs};
use super::progress::Progress;
use super::step::EpochState;
use crate::layer::LayerExt;
use crate::models::Model;
use ferroflow_core::{Error, Result, Tensor};
use ferroflow_data::{Cardinality, Dataset, Element};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// One training or evaluation batch.
pub(crate) struct Batch {
    pub(crate) x: Vec<Tensor>,
    pub(crate) y: Vec<Tensor>,
    pub(crate) sw: Option<Tensor>,
}

/// Batches for one epoch.
pub(crate) type Batches<'a> = Box<dyn Iterator<Item = Result<Batch>> + 'a>;

/// Where an epoch's batches come from.
pub(crate) trait BatchSource {
    /// Steps per epoch, when known.
    fn steps(&self) -> Option<usize>;
    /// The batches of the next epoch.
    fn epoch(&mut self) -> Result<Batches<'_>>;
}

/// Validation data: arrays (evaluated in batches of the fit's batch size) or a Dataset.
pub(crate) enum Validation {
    Arrays { x: Vec<Tensor>, y: Vec<Tensor> },
    Data(Dataset),
}

/// In-memory arrays, shuffled per epoch with `shuffle`'s generator when there is one.
pub(crate) struct ArrayBatches {
    pub(crate) x: Vec<Tensor>,
    pub(crate) y: Vec<Tensor>,
    pub(crate) sw: Option<Tensor>,
    pub(crate) batch_size: usize,
    pub(crate) shuffle: Option<ChaCha8Rng>,
}

impl BatchSource for ArrayBatches {
    fn steps(&self) -> Option<usize> {
        num_samples(&self.x)
            .ok()
            .map(|n| n.div_ceil(self.batch_size))
    }

    fn epoch(&mut self) -> Result<Batches<'_>> {
        let n = num_samples(&self.x)?;
        let mut order: Vec<usize> = (0..n).collect();
        if let Some(rng) = self.shuffle.as_mut() {
            order.shuffle(rng);
        }
        let (bs, shuffle) = (self.batch_size, self.shuffle.is_some());
        let this = &*self;
        Ok(Box::new((0..n.div_ceil(bs)).map(move |step| {
            let (lo, hi) = (step * bs, ((step + 1) * bs).min(n));
            if shuffle {
                let idx = index_tensor(&order[lo..hi])?;
                Ok(Batch {
                    x: gather_rows(&this.x, &idx)?,
                    y: gather_rows(&this.y, &idx)?,
                    sw: this.sw.as_ref().map(|w| w.gather(&idx, 0)).transpose()?,
                })
            } else {
                Ok(Batch {
                    x: slice_rows(&this.x, lo, hi)?,
                    y: slice_rows(&this.y, lo, hi)?,
                    sw: match &this.sw {
                        Some(w) => Some(slice_rows(std::slice::from_ref(w), lo, hi)?.remove(0)),
                        None => None,
                    },
                })
            }
        })))
    }
}

/// The input part of a `predict` element: `x` of `(x, y[, sample_weight])` or of `(x,)`,
/// else the whole element.
pub(crate) fn input_part(e: &Element) -> &Element {
    match e {
        Element::Tuple(v) if matches!(v.len(), 2 | 3) => &v[0],
        Element::Tuple(v) if v.len() == 1 && !matches!(v[0], Element::Tensor(_)) => &v[0],
        other => other,
    }
}

/// The tensors of an element part: a tensor, a tuple of tensors, or a map read in the
/// order of `names` (the model's input or output names).
pub(crate) fn tensors_of(part: &Element, names: &[String], what: &str) -> Result<Vec<Tensor>> {
    match part {
        Element::Tensor(t) => Ok(vec![t.clone()]),
        Element::Tuple(v) => v.iter().map(|e| e.tensor().cloned()).collect(),
        Element::Map(m) => names
            .iter()
            .map(|n| {
                m.get(n)
                    .ok_or_else(|| {
                        Error::invalid(
                            "fit",
                            format!(
                                "the dataset's {what} map has no entry '{n}' (has {:?})",
                                m.keys().collect::<Vec<_>>()
                            ),
                        )
                    })?
                    .tensor()
                    .cloned()
            })
            .collect(),
    }
}

/// A dataset element `(x, y)` or `(x, y, sample_weight)` as a batch.
pub(crate) fn element_batch(e: &Element, inputs: &[String], outputs: &[String]) -> Result<Batch> {
    let parts = match e {
        Element::Tuple(v) if v.len() == 2 || v.len() == 3 => v,
        other => {
            return Err(Error::invalid(
                "fit",
                format!(
                    "dataset elements must be (x, y) or (x, y, sample_weight), got {}",
                    other.structure()
                ),
            ))
        }
    };
    Ok(Batch {
        x: tensors_of(&parts[0], inputs, "input")?,
        y: tensors_of(&parts[1], outputs, "target")?,
        sw: parts.get(2).map(|w| w.tensor().cloned()).transpose()?,
    })
}

/// Batches from a dataset whose elements are already batched.
pub(crate) struct DatasetBatches {
    pub(crate) data: Dataset,
    pub(crate) inputs: Vec<String>,
    pub(crate) outputs: Vec<String>,
    pub(crate) steps_per_epoch: Option<usize>,
    /// The running iterator when `steps_per_epoch` cuts epochs short (Keras continues
    /// the same pass in the next epoch).
    pub(crate) live: Option<ferroflow_data::ElementIter>,
}

impl BatchSource for DatasetBatches {
    fn steps(&self) -> Option<usize> {
        self.steps_per_epoch
            .or_else(|| match self.data.cardinality() {
                Cardinality::Known(n) => Some(n as usize),
                _ => None,
            })
    }

    fn epoch(&mut self) -> Result<Batches<'_>> {
        let limit = self.steps_per_epoch;
        if limit.is_none() || self.live.is_none() {
            self.live = Some(self.data.iter()?);
        }
        let (inputs, outputs) = (self.inputs.clone(), self.outputs.clone());
        let mut taken = 0usize;
        let live = &mut self.live;
        Ok(Box::new(std::iter::from_fn(move || {
            if limit.is_some_and(|l| taken >= l) {
                return None;
            }
            let next = live.as_mut()?.next();
            match next {
                None => {
                    // A finite dataset ran out; the next epoch starts a new pass.
                    *live = None;
                    None
                }
                Some(e) => {
                    taken += 1;
                    Some(e.and_then(|e| element_batch(&e, &inputs, &outputs)))
                }
            }
        })))
    }
}

impl Model {
    /// Loss and metrics over one pass of `source`, logged with `prefix` (`""` or `"val_"`).
    pub(crate) fn evaluate_source(
        &self,
        source: &mut dyn BatchSource,
        prefix: &'static str,
    ) -> Result<Logs> {
        let names = self.output_names();
        let mut state = EpochState::new(self.compiled_ref()?, &names, prefix)?;
        let replicas = self.replicated();
        for b in source.epoch()? {
            let b = b?;
            match &replicas {
                Some(r) => self.test_step_replicated(r, &b.x, &b.y, b.sw.as_ref(), &mut state)?,
                None => self.test_step(&b.x, &b.y, b.sw.as_ref(), &mut state)?,
            }
        }
        Ok(state.logs(&names))
    }

    /// Loss and metrics over a dataset of `(x, y[, sample_weight])` batches.
    pub(crate) fn evaluate_batches(&self, data: &Dataset, prefix: &'static str) -> Result<Logs> {
        if data.cardinality() == Cardinality::Infinite {
            return Err(Error::invalid(
                "evaluate",
                "the dataset is infinite; take() a finite part",
            ));
        }
        let mut source = DatasetBatches {
            data: data.clone(),
            inputs: self.network().input_names(),
            outputs: self.output_names(),
            steps_per_epoch: None,
            live: None,
        };
        self.evaluate_source(&mut source, prefix)
    }

    /// The epoch loop shared by `fit` on arrays and on datasets.
    pub(crate) fn run_fit(
        &mut self,
        source: &mut dyn BatchSource,
        validation: Option<Validation>,
        mut opts: FitOptions,
    ) -> Result<History> {
        let names = self.output_names();
        let mut state = EpochState::new(self.compiled_ref()?, &names, "")?;
        let mut history = History::default();
        let replicas = self.replicated();
        let mut callbacks = std::mem::take(&mut opts.callbacks);
        if !self.is_chief() {
            // Workers other than the chief print nothing and write no files.
            opts.verbose = super::progress::Verbosity::Silent;
            callbacks.retain(|c| !c.chief_only());
        }
        let mut vars = None;
        self.stop_training = false;
        for cb in callbacks.iter_mut() {
            cb.on_train_begin(self)?;
        }
        let start = callbacks
            .iter()
            .filter_map(|c| c.resume_epoch())
            .fold(opts.initial_epoch, usize::max);
        // The epochs a restored backup already trained still advance the source (its
        // shuffling), so the next epochs see the batches an uninterrupted run would.
        for _ in opts.initial_epoch..start.min(opts.epochs) {
            drop(source.epoch()?);
        }
        for epoch in start..opts.epochs {
            for cb in callbacks.iter_mut() {
                cb.on_epoch_begin(epoch, self)?;
            }
            Progress::epoch_header(epoch, opts.epochs, opts.verbose);
            let progress = Progress::new(source.steps(), opts.verbose);
            state.reset();
            let mut step = 0;
            for batch in source.epoch()? {
                let b = batch?;
                if vars.is_none() {
                    let trainable = self.trainable_variables_for(&b.x)?;
                    if let Some(r) = &replicas {
                        // Every worker starts from the chief's weights.
                        let all: Vec<_> =
                            self.net.weights().into_iter().map(|w| w.variable).collect();
                        r.sync_variables(&all)?;
                    }
                    vars = Some(trainable);
                }
                let vs = vars.as_deref().unwrap_or(&[]);
                match &replicas {
                    Some(r) => {
                        self.train_step_replicated(r, &b.x, &b.y, b.sw.as_ref(), vs, &mut state)?
                    }
                    None => self.train_step(&b.x, &b.y, b.sw.as_ref(), vs, &mut state)?,
                }
                step += 1;
                let logs = state.logs(&names);
                progress.update(step, &logs);
                for cb in callbacks.iter_mut() {
                    cb.on_train_batch_end(step - 1, &logs, self)?;
                }
            }
            if step == 0 {
                return Err(Error::invalid(
                    "fit",
                    "the training data yielded no batches",
                ));
            }
            if let Some(r) = &replicas {
                self.average_local_state(r)?;
            }
            let mut logs = state.logs(&names);
            match &validation {
                Some(Validation::Arrays { x, y }) => {
                    logs.extend(self.evaluate_logs(x, y, opts.batch_size, "val_")?)
                }
                Some(Validation::Data(d)) => logs.extend(self.evaluate_batches(d, "val_")?),
                None => {}
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
}
