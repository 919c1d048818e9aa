//! `BackupAndRestore`: resume an interrupted `fit` where it stopped.

use super::Callback;
use crate::models::Model;
use crate::training::Logs;
use ferroflow_core::random::{self, RngSnapshot};
use ferroflow_core::{Error, Result};
use std::path::{Path, PathBuf};

/// The file beside the weights that says where training stood.
const STATE: &str = "training_state.json";

/// Backs up the training state at the end of every epoch and, when `fit` starts again
/// after the job died, restores it and continues with the next epoch
/// (`keras.callbacks.BackupAndRestore`): weights, optimiser state, the epoch counter and
/// the random state, so that the resumed run ends with the weights an uninterrupted one
/// would have. Under a multi-worker strategy only the chief writes; every worker restores.
/// The backup is deleted when training completes (unless told otherwise).
pub struct BackupAndRestore {
    dir: PathBuf,
    delete_checkpoint: bool,
    resume_at: Option<usize>,
}

impl BackupAndRestore {
    /// Backs up into `backup_dir` (created when needed).
    pub fn new(backup_dir: impl AsRef<Path>) -> Self {
        BackupAndRestore {
            dir: backup_dir.as_ref().to_path_buf(),
            delete_checkpoint: true,
            resume_at: None,
        }
    }

    /// Keeps the backup after training completes (`delete_checkpoint=False`).
    pub fn delete_checkpoint(mut self, on: bool) -> Self {
        self.delete_checkpoint = on;
        self
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(STATE)
    }
}

fn bad(path: &Path, what: &str) -> Error {
    Error::invalid("BackupAndRestore", format!("{}: {what}", path.display()))
}

impl Callback for BackupAndRestore {
    fn on_train_begin(&mut self, model: &mut Model) -> Result<()> {
        self.resume_at = None;
        let path = self.state_path();
        if !path.is_file() {
            return Ok(());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        let state: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(&path, &e.to_string()))?;
        let field = |k: &str| state.get(k).and_then(serde_json::Value::as_u64);
        let epoch = field("epoch").ok_or_else(|| bad(&path, "no epoch"))?;
        let counter = field("rng_counter").ok_or_else(|| bad(&path, "no rng_counter"))?;
        model.restore_checkpoint(&self.dir)?;
        random::restore(RngSnapshot::from_parts(field("rng_seed"), counter));
        self.resume_at = Some(epoch as usize + 1);
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, _logs: &Logs, model: &mut Model) -> Result<()> {
        if !model.is_chief() {
            return Ok(());
        }
        let (seed, counter) = random::snapshot().parts();
        let state = serde_json::json!({
            "epoch": epoch,
            "rng_seed": seed,
            "rng_counter": counter,
        });
        model.save_checkpoint(&self.dir, &[(STATE, state.to_string().into_bytes())])
    }

    fn on_train_end(&mut self, model: &mut Model) -> Result<()> {
        if self.delete_checkpoint && model.is_chief() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        Ok(())
    }

    fn resume_epoch(&self) -> Option<usize> {
        self.resume_at
    }
}
