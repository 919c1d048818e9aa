//! Keras's optimiser names and defaults (`"sgd"`, `"adam"`, ... as accepted by `compile`).

use super::{Adagrad, Adam, Optimizer, OptimizerOptions, RMSprop, Sgd};
use ferroflow_core::{Error, Result};

impl Optimizer {
    /// SGD with Keras's defaults except the learning rate.
    pub fn sgd(learning_rate: f64) -> Optimizer {
        Self::plain(Sgd::default(), learning_rate)
    }

    /// Adam with Keras's defaults except the learning rate.
    pub fn adam(learning_rate: f64) -> Optimizer {
        Self::plain(Adam::default(), learning_rate)
    }

    /// LazyAdam (TF Addons): Adam whose sparse gradients (an `Embedding`'s) update only
    /// their rows of the table and its moments, in place.
    pub fn lazy_adam(learning_rate: f64) -> Optimizer {
        Self::plain(
            Adam {
                lazy: true,
                ..Adam::default()
            },
            learning_rate,
        )
    }

    /// AdamW: Adam with decoupled weight decay 0.004 (Keras's default).
    pub fn adamw(learning_rate: f64) -> Optimizer {
        let mut o = OptimizerOptions::new(learning_rate);
        o.weight_decay = Some(0.004);
        Optimizer::new(Adam::default(), o).expect("no clipping set")
    }

    /// RMSprop with Keras's defaults except the learning rate.
    pub fn rmsprop(learning_rate: f64) -> Optimizer {
        Self::plain(RMSprop::default(), learning_rate)
    }

    /// Adagrad with Keras's defaults except the learning rate.
    pub fn adagrad(learning_rate: f64) -> Optimizer {
        Self::plain(Adagrad::default(), learning_rate)
    }

    /// FTRL-Proximal with Keras's defaults (`keras.optimizers.Ftrl`).
    pub fn ftrl(learning_rate: f64) -> Optimizer {
        Self::plain(super::Ftrl::default(), learning_rate)
    }

    /// The optimiser Keras builds for a string identifier, with Keras's default learning
    /// rate (0.01 for SGD, 0.001 for the others).
    pub fn from_name(name: &str) -> Result<Optimizer> {
        match name.to_ascii_lowercase().as_str() {
            "sgd" => Ok(Self::sgd(0.01)),
            "adam" => Ok(Self::adam(0.001)),
            "adamw" => Ok(Self::adamw(0.001)),
            "rmsprop" => Ok(Self::rmsprop(0.001)),
            "adagrad" => Ok(Self::adagrad(0.001)),
            other => Err(Error::invalid(
                "optimizers::get",
                format!("unknown optimizer '{other}' (sgd, adam, adamw, rmsprop, adagrad)"),
            )),
        }
    }

    fn plain(rule: impl super::UpdateRule + 'static, learning_rate: f64) -> Optimizer {
        Optimizer::new(rule, OptimizerOptions::new(learning_rate)).expect("no clipping set")
    }
}
