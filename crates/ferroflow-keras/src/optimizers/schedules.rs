//! Learning-rate schedules (`keras.optimizers.schedules`), evaluated at the optimiser's
//! iteration count before each update.

/// A learning rate as a function of the step (the optimiser's `iterations`).
pub trait LearningRateSchedule: Send + Sync {
    /// The learning rate at `step`.
    fn at(&self, step: u64) -> f64;
}

/// `initial · rate^(step / decay_steps)`, the exponent floored when `staircase`.
#[derive(Clone, Debug)]
pub struct ExponentialDecay {
    /// Learning rate at step 0.
    pub initial_learning_rate: f64,
    /// Steps per decay period.
    pub decay_steps: f64,
    /// Factor per period.
    pub decay_rate: f64,
    /// Decay in whole periods.
    pub staircase: bool,
}

impl LearningRateSchedule for ExponentialDecay {
    fn at(&self, step: u64) -> f64 {
        let mut p = step as f64 / self.decay_steps;
        if self.staircase {
            p = p.floor();
        }
        self.initial_learning_rate * self.decay_rate.powf(p)
    }
}

/// `initial / (1 + rate · step / decay_steps)` (floored periods when `staircase`).
#[derive(Clone, Debug)]
pub struct InverseTimeDecay {
    /// Learning rate at step 0.
    pub initial_learning_rate: f64,
    /// Steps per decay period.
    pub decay_steps: f64,
    /// Decay per period.
    pub decay_rate: f64,
    /// Decay in whole periods.
    pub staircase: bool,
}

impl LearningRateSchedule for InverseTimeDecay {
    fn at(&self, step: u64) -> f64 {
        let mut p = step as f64 / self.decay_steps;
        if self.staircase {
            p = p.floor();
        }
        self.initial_learning_rate / (1.0 + self.decay_rate * p)
    }
}

/// Cosine decay from the initial rate (or, after a linear warmup, from `warmup_target`)
/// down to `alpha ·` that rate over `decay_steps` (Keras's `CosineDecay`).
#[derive(Clone, Debug)]
pub struct CosineDecay {
    /// Learning rate at step 0.
    pub initial_learning_rate: f64,
    /// Steps of the cosine part.
    pub decay_steps: f64,
    /// Final rate as a fraction of the starting one.
    pub alpha: f64,
    /// Rate reached at the end of the warmup (`None`: no warmup).
    pub warmup_target: Option<f64>,
    /// Steps of linear warmup.
    pub warmup_steps: f64,
}

impl CosineDecay {
    /// Keras's defaults: no warmup, `alpha = 0`.
    pub fn new(initial_learning_rate: f64, decay_steps: f64) -> Self {
        CosineDecay {
            initial_learning_rate,
            decay_steps,
            alpha: 0.0,
            warmup_target: None,
            warmup_steps: 0.0,
        }
    }

    fn decay(&self, step: f64, from: f64) -> f64 {
        let done = step / self.decay_steps;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * done).cos());
        from * ((1.0 - self.alpha) * cosine + self.alpha)
    }
}

impl LearningRateSchedule for CosineDecay {
    fn at(&self, step: u64) -> f64 {
        let s = step as f64;
        match self.warmup_target {
            None => self.decay(s.min(self.decay_steps), self.initial_learning_rate),
            Some(target) => {
                let s = s.min(self.decay_steps + self.warmup_steps);
                if s < self.warmup_steps {
                    let frac = s / self.warmup_steps;
                    (target - self.initial_learning_rate) * frac + self.initial_learning_rate
                } else {
                    self.decay(s - self.warmup_steps, target)
                }
            }
        }
    }
}

/// Constant pieces: `values[0]` up to and including `boundaries[0]`, `values[1]` up to
/// `boundaries[1]`, ..., the last value after the last boundary.
#[derive(Clone, Debug)]
pub struct PiecewiseConstantDecay {
    /// Step boundaries, increasing.
    pub boundaries: Vec<u64>,
    /// One more value than boundaries.
    pub values: Vec<f64>,
}

impl PiecewiseConstantDecay {
    /// Checks that there is one more value than boundaries.
    pub fn new(boundaries: Vec<u64>, values: Vec<f64>) -> ferroflow_core::Result<Self> {
        if values.len() != boundaries.len() + 1 {
            return Err(ferroflow_core::Error::invalid(
                "PiecewiseConstantDecay",
                format!(
                    "needs one more value than boundaries, got {} boundaries and {} values",
                    boundaries.len(),
                    values.len()
                ),
            ));
        }
        Ok(PiecewiseConstantDecay { boundaries, values })
    }
}

impl LearningRateSchedule for PiecewiseConstantDecay {
    fn at(&self, step: u64) -> f64 {
        let i = self.boundaries.iter().take_while(|&&b| step > b).count();
        self.values[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_keras_formulas() {
        let e = ExponentialDecay {
            initial_learning_rate: 0.1,
            decay_steps: 10.0,
            decay_rate: 0.5,
            staircase: true,
        };
        assert_eq!(e.at(9), 0.1);
        assert_eq!(e.at(10), 0.05);
        let c = CosineDecay::new(1.0, 10.0);
        assert!((c.at(5) - 0.5).abs() < 1e-12 && c.at(20) == 0.0);
        let w = CosineDecay {
            warmup_target: Some(1.0),
            warmup_steps: 4.0,
            initial_learning_rate: 0.0,
            ..CosineDecay::new(0.0, 10.0)
        };
        assert_eq!(w.at(2), 0.5);
        assert_eq!(w.at(4), 1.0);
        let p = PiecewiseConstantDecay::new(vec![3, 6], vec![1.0, 0.5, 0.1]).unwrap();
        assert_eq!([p.at(3), p.at(4), p.at(7)], [1.0, 0.5, 0.1]);
        assert!(PiecewiseConstantDecay::new(vec![3], vec![1.0]).is_err());
    }
}
