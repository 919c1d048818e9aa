//! Activation functions by their Keras names (`"relu"`, `"softmax"`...).

use ferroflow_core::{Error, Result, Tensor, TensorId};
use std::cell::RefCell;

/// Which activation produced a cached output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Squash {
    Softmax,
    Sigmoid,
}

thread_local! {
    /// The inputs (logits) of the last few softmax/sigmoid activations on this thread,
    /// keyed by the output's id: losses use them as Keras does with `_keras_logits`, so
    /// cross-entropy on a softmax/sigmoid output is computed stably from the logits.
    static LOGITS: RefCell<Vec<(TensorId, Squash, Tensor)>> = const { RefCell::new(Vec::new()) };
}

const LOGITS_KEPT: usize = 4;

fn remember(out: &Tensor, kind: Squash, logits: &Tensor) {
    LOGITS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() == LOGITS_KEPT {
            c.remove(0);
        }
        c.push((out.id(), kind, logits.clone()));
    });
}

/// The logits behind `output` if it is the output of a softmax/sigmoid activation
/// applied recently on this thread.
pub(crate) fn logits_of(output: &Tensor, kind: Squash) -> Option<Tensor> {
    LOGITS.with(|c| {
        c.borrow()
            .iter()
            .rev()
            .find(|(id, k, _)| *id == output.id() && *k == kind)
            .map(|(_, _, t)| t.clone())
    })
}

/// A Keras activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Identity (`"linear"`, Keras's default).
    Linear,
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
    /// Log-softmax over the last axis.
    LogSoftmax,
    /// ELU with alpha 1.
    Elu,
    /// SELU.
    Selu,
    /// Exact GELU (Keras's default `approximate=False`).
    Gelu,
    /// x·sigmoid(x).
    Silu,
    /// ln(1 + eˣ).
    Softplus,
    /// x / (1 + |x|).
    Softsign,
    /// relu6(x + 3) / 6 (Keras 3's definition).
    HardSigmoid,
    /// x · hard_sigmoid(x).
    HardSilu,
    /// eˣ.
    Exponential,
    /// Leaky ReLU with slope 0.2 (Keras's default).
    LeakyRelu,
    /// x · tanh(softplus(x)).
    Mish,
}

const NAMES: [(&str, Activation); 18] = [
    ("linear", Activation::Linear),
    ("relu", Activation::Relu),
    ("relu6", Activation::Relu6),
    ("sigmoid", Activation::Sigmoid),
    ("tanh", Activation::Tanh),
    ("softmax", Activation::Softmax),
    ("log_softmax", Activation::LogSoftmax),
    ("elu", Activation::Elu),
    ("selu", Activation::Selu),
    ("gelu", Activation::Gelu),
    ("silu", Activation::Silu),
    ("softplus", Activation::Softplus),
    ("softsign", Activation::Softsign),
    ("hard_sigmoid", Activation::HardSigmoid),
    ("hard_silu", Activation::HardSilu),
    ("exponential", Activation::Exponential),
    ("leaky_relu", Activation::LeakyRelu),
    ("mish", Activation::Mish),
];

impl Activation {
    /// The activation for a Keras name (`None` and `"linear"` are the identity; `"swish"`
    /// is `"silu"`, `"hard_swish"` is `"hard_silu"`).
    pub fn from_name(name: &str) -> Result<Self> {
        let name = match name {
            "swish" => "silu",
            "hard_swish" => "hard_silu",
            "" | "None" => "linear",
            n => n,
        };
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                let known: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
                Error::invalid(
                    "activations",
                    format!("unknown activation '{name}' (known: {})", known.join(", ")),
                )
            })
    }

    /// The Keras name written to configs.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, a)| *a == self)
            .map(|(n, _)| *n)
            .unwrap_or("linear")
    }

    /// Applies the activation.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Linear => Ok(x.clone()),
            Activation::Relu => x.relu(),
            Activation::Relu6 => x.relu6(),
            Activation::Sigmoid => {
                let y = x.sigmoid()?;
                remember(&y, Squash::Sigmoid, x);
                Ok(y)
            }
            Activation::Tanh => x.tanh(),
            Activation::Softmax => {
                let y = x.softmax(-1)?;
                remember(&y, Squash::Softmax, x);
                Ok(y)
            }
            Activation::LogSoftmax => x.log_softmax(-1),
            Activation::Elu => x.elu(1.0),
            Activation::Selu => x.selu(),
            Activation::Gelu => x.gelu(),
            Activation::Silu => x.silu(),
            Activation::Softplus => x.softplus(),
            Activation::Softsign => x.div(&x.abs()?.add_scalar(1.0)?),
            Activation::HardSigmoid => x.add_scalar(3.0)?.relu6()?.mul_scalar(1.0 / 6.0),
            Activation::HardSilu => x.mul(&Activation::HardSigmoid.apply(x)?),
            Activation::Exponential => x.exp(),
            Activation::LeakyRelu => x.leaky_relu(0.2),
            Activation::Mish => x.mul(&x.softplus()?.tanh()?),
        }
    }
}
