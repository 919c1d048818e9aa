//! Learning-rate callbacks: `LearningRateScheduler` and `ReduceLROnPlateau`.

use super::{higher_is_better, monitored, Callback};
use crate::models::Model;
use crate::training::Logs;
use ferroflow_core::{Error, Result};

fn optimizer_of<'a>(
    model: &'a mut Model,
    who: &'static str,
) -> Result<&'a mut crate::optimizers::Optimizer> {
    model
        .optimizer_mut()
        .ok_or_else(|| Error::invalid(who, "the model is not compiled"))
}

/// Sets the learning rate at the start of each epoch from `schedule(epoch, lr)`
/// (`keras.callbacks.LearningRateScheduler`).
pub struct LearningRateScheduler {
    schedule: Box<dyn FnMut(usize, f64) -> f64>,
}

impl LearningRateScheduler {
    /// A scheduler calling `schedule(epoch, current_lr)`.
    pub fn new(schedule: impl FnMut(usize, f64) -> f64 + 'static) -> Self {
        LearningRateScheduler {
            schedule: Box::new(schedule),
        }
    }
}

impl Callback for LearningRateScheduler {
    fn on_epoch_begin(&mut self, epoch: usize, model: &mut Model) -> Result<()> {
        let opt = optimizer_of(model, "LearningRateScheduler")?;
        let lr = (self.schedule)(epoch, opt.learning_rate());
        if !lr.is_finite() {
            return Err(Error::invalid(
                "LearningRateScheduler",
                format!("schedule returned {lr}"),
            ));
        }
        opt.set_learning_rate(lr);
        Ok(())
    }

    fn on_epoch_end(&mut self, _epoch: usize, _logs: &Logs, _model: &mut Model) -> Result<()> {
        Ok(())
    }
}

/// Multiplies the learning rate by `factor` after `patience` epochs without improvement
/// (`keras.callbacks.ReduceLROnPlateau`).
pub struct ReduceLROnPlateau {
    /// Watched value (default `val_loss`).
    pub monitor: String,
    /// Multiplier of the rate (default 0.1).
    pub factor: f64,
    /// Epochs without improvement before reducing (default 10).
    pub patience: usize,
    /// Smallest change that counts (default 1e-4).
    pub min_delta: f64,
    /// Epochs to wait after a reduction (default 0).
    pub cooldown: usize,
    /// Lower bound on the rate (default 0).
    pub min_lr: f64,
    /// `"auto"`, `"min"` or `"max"`.
    pub mode: String,
    best: Option<f64>,
    wait: usize,
    cooldown_left: usize,
}

impl ReduceLROnPlateau {
    /// Keras's defaults for `monitor`.
    pub fn new(monitor: &str) -> Self {
        ReduceLROnPlateau {
            monitor: monitor.to_string(),
            factor: 0.1,
            patience: 10,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            mode: "auto".into(),
            best: None,
            wait: 0,
            cooldown_left: 0,
        }
    }

    /// Sets `factor` (must be below 1).
    pub fn factor(mut self, f: f64) -> Self {
        self.factor = f;
        self
    }

    /// Sets `patience`.
    pub fn patience(mut self, p: usize) -> Self {
        self.patience = p;
        self
    }

    /// Sets `min_lr`.
    pub fn min_lr(mut self, m: f64) -> Self {
        self.min_lr = m;
        self
    }
}

impl Callback for ReduceLROnPlateau {
    fn on_train_begin(&mut self, _model: &mut Model) -> Result<()> {
        if self.factor >= 1.0 {
            return Err(Error::invalid(
                "ReduceLROnPlateau",
                format!("factor must be < 1, got {}", self.factor),
            ));
        }
        self.best = None;
        self.wait = 0;
        self.cooldown_left = 0;
        Ok(())
    }

    fn on_epoch_end(&mut self, _epoch: usize, logs: &Logs, model: &mut Model) -> Result<()> {
        let current = monitored(logs, &self.monitor, "ReduceLROnPlateau")?;
        let up = higher_is_better(&self.monitor, &self.mode);
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.wait = 0;
        }
        let improved = match self.best {
            None => true,
            Some(b) => {
                if up {
                    current > b + self.min_delta
                } else {
                    current < b - self.min_delta
                }
            }
        };
        if improved {
            self.best = Some(current);
            self.wait = 0;
        } else if self.cooldown_left == 0 {
            self.wait += 1;
            if self.wait >= self.patience {
                let opt = optimizer_of(model, "ReduceLROnPlateau")?;
                let old = opt.learning_rate();
                if old > self.min_lr {
                    opt.set_learning_rate((old * self.factor).max(self.min_lr));
                    self.cooldown_left = self.cooldown;
                    self.wait = 0;
                }
            }
        }
        Ok(())
    }
}
