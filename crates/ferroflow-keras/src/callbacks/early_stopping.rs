//! `EarlyStopping`: stop when a monitored value stops improving.

use super::{higher_is_better, monitored, Callback};
use crate::models::Model;
use crate::training::Logs;
use ferroflow_core::{Result, Tensor};

/// Stops training after `patience` epochs without improvement of `monitor`
/// (`keras.callbacks.EarlyStopping`), optionally restoring the best weights.
pub struct EarlyStopping {
    /// The logged value to watch (default `val_loss`).
    pub monitor: String,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// `"auto"`, `"min"` or `"max"`.
    pub mode: String,
    /// Restore the weights of the best epoch when stopping.
    pub restore_best_weights: bool,
    /// Epochs to wait before monitoring starts.
    pub start_from_epoch: usize,
    best: Option<f64>,
    wait: usize,
    best_weights: Option<Vec<Tensor>>,
    /// The epoch at which training stopped, if it did.
    pub stopped_epoch: Option<usize>,
}

impl EarlyStopping {
    /// Watches `monitor` with the given patience; Keras's other defaults.
    pub fn new(monitor: &str, patience: usize) -> Self {
        EarlyStopping {
            monitor: monitor.to_string(),
            min_delta: 0.0,
            patience,
            mode: "auto".into(),
            restore_best_weights: false,
            start_from_epoch: 0,
            best: None,
            wait: 0,
            best_weights: None,
            stopped_epoch: None,
        }
    }

    /// Restores the best weights at the end.
    pub fn restore_best_weights(mut self, on: bool) -> Self {
        self.restore_best_weights = on;
        self
    }

    /// Sets `min_delta`.
    pub fn min_delta(mut self, d: f64) -> Self {
        self.min_delta = d.abs();
        self
    }
}

impl Callback for EarlyStopping {
    fn on_train_begin(&mut self, _model: &mut Model) -> Result<()> {
        self.best = None;
        self.wait = 0;
        self.best_weights = None;
        self.stopped_epoch = None;
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut Model) -> Result<()> {
        if epoch < self.start_from_epoch {
            return Ok(());
        }
        let current = monitored(logs, &self.monitor, "EarlyStopping")?;
        let up = higher_is_better(&self.monitor, &self.mode);
        let improved = match self.best {
            None => true,
            Some(b) => {
                if up {
                    current - self.min_delta > b
                } else {
                    current + self.min_delta < b
                }
            }
        };
        self.wait += 1;
        if improved {
            self.best = Some(current);
            self.wait = 0;
            if self.restore_best_weights {
                self.best_weights = Some(model.get_weights());
            }
            return Ok(());
        }
        if self.wait >= self.patience && epoch > 0 {
            self.stopped_epoch = Some(epoch);
            model.stop_training = true;
            if let Some(w) = &self.best_weights {
                model.set_weights(w)?;
            }
        }
        Ok(())
    }
}
