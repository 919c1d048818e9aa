//! `ModelCheckpoint`: save the model (or its weights) after epochs, optionally only the best.

use super::{higher_is_better, monitored, Callback};
use crate::models::Model;
use crate::training::Logs;
use ferroflow_core::Result;
use std::path::PathBuf;

/// Saves after each epoch (`keras.callbacks.ModelCheckpoint`). The path may contain
/// `{epoch}` or `{epoch:02d}` (1-based epoch number).
pub struct ModelCheckpoint {
    filepath: String,
    /// Watched value for `save_best_only` (default `val_loss`).
    pub monitor: String,
    /// Save only when `monitor` improves.
    pub save_best_only: bool,
    /// Save weights (a `.safetensors` file) rather than the whole model directory.
    pub save_weights_only: bool,
    /// `"auto"`, `"min"` or `"max"`.
    pub mode: String,
    best: Option<f64>,
}

impl ModelCheckpoint {
    /// Checkpoints to `filepath`.
    pub fn new(filepath: &str) -> Self {
        ModelCheckpoint {
            filepath: filepath.to_string(),
            monitor: "val_loss".into(),
            save_best_only: false,
            save_weights_only: false,
            mode: "auto".into(),
            best: None,
        }
    }

    /// Saves only improvements of `monitor`.
    pub fn save_best_only(mut self, monitor: &str) -> Self {
        self.save_best_only = true;
        self.monitor = monitor.to_string();
        self
    }

    /// Saves only the weights.
    pub fn save_weights_only(mut self, on: bool) -> Self {
        self.save_weights_only = on;
        self
    }

    fn path(&self, epoch: usize) -> PathBuf {
        let e = epoch + 1;
        PathBuf::from(
            self.filepath
                .replace("{epoch:02d}", &format!("{e:02}"))
                .replace("{epoch:03d}", &format!("{e:03}"))
                .replace("{epoch}", &e.to_string()),
        )
    }
}

impl Callback for ModelCheckpoint {
    fn chief_only(&self) -> bool {
        true
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut Model) -> Result<()> {
        if self.save_best_only {
            let current = monitored(logs, &self.monitor, "ModelCheckpoint")?;
            let up = higher_is_better(&self.monitor, &self.mode);
            let better = self
                .best
                .is_none_or(|b| if up { current > b } else { current < b });
            if !better {
                return Ok(());
            }
            self.best = Some(current);
        }
        let path = self.path(epoch);
        if self.save_weights_only {
            model.save_weights(&path)
        } else {
            model.save(&path)
        }
    }
}
