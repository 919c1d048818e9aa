//! Callbacks run by `fit`: early stopping, checkpoints, learning-rate control, CSV logs,
//! TensorBoard event files, and custom ones via the [`Callback`] trait.

mod backup_and_restore;
mod csv_logger;
mod early_stopping;
mod lr;
mod model_checkpoint;
mod tensorboard;

pub use backup_and_restore::BackupAndRestore;
pub use csv_logger::CSVLogger;
pub use early_stopping::EarlyStopping;
pub use lr::{LearningRateScheduler, ReduceLROnPlateau};
pub use model_checkpoint::ModelCheckpoint;
pub use tensorboard::TensorBoard;

use crate::models::Model;
use crate::training::Logs;
use ferroflow_core::Result;

/// Hooks into `fit`. Every method has an empty default; implement the ones you need.
/// A callback stops training by setting `model.stop_training = true`.
pub trait Callback {
    /// Before the first epoch.
    fn on_train_begin(&mut self, _model: &mut Model) -> Result<()> {
        Ok(())
    }
    /// At the start of each epoch (0-based).
    fn on_epoch_begin(&mut self, _epoch: usize, _model: &mut Model) -> Result<()> {
        Ok(())
    }
    /// After each training batch, with the running logs.
    fn on_train_batch_end(
        &mut self,
        _batch: usize,
        _logs: &Logs,
        _model: &mut Model,
    ) -> Result<()> {
        Ok(())
    }
    /// After each epoch, with the epoch's logs (validation included).
    fn on_epoch_end(&mut self, _epoch: usize, _logs: &Logs, _model: &mut Model) -> Result<()> {
        Ok(())
    }
    /// After the last epoch.
    fn on_train_end(&mut self, _model: &mut Model) -> Result<()> {
        Ok(())
    }
    /// Whether only the chief runs this callback under a multi-worker strategy (callbacks
    /// that write files or print).
    fn chief_only(&self) -> bool {
        false
    }
    /// The epoch `fit` should continue from, asked after `on_train_begin` (a callback that
    /// restored a backup says where it stopped).
    fn resume_epoch(&self) -> Option<usize> {
        None
    }
}

/// Whether larger values of `monitor` are better: Keras's `mode="auto"` rule.
pub(crate) fn higher_is_better(monitor: &str, mode: &str) -> bool {
    match mode {
        "max" => true,
        "min" => false,
        _ => {
            let m = monitor.trim_start_matches("val_");
            m.contains("acc")
                || m.starts_with("auc")
                || m.starts_with("fmeasure")
                || m == "precision"
                || m == "recall"
        }
    }
}

/// Reads the monitored value, with a clear error when the logs lack it.
pub(crate) fn monitored(logs: &Logs, monitor: &str, who: &'static str) -> Result<f64> {
    logs.get(monitor).copied().ok_or_else(|| {
        ferroflow_core::Error::invalid(
            who,
            format!(
                "monitor '{monitor}' is not in the logs (available: {})",
                logs.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}
