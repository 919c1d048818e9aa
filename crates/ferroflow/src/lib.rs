//! ferroflow: a TensorFlow-class deep-learning framework in Rust.
//!
//! Import it as `use ferroflow as ff;`. Everything of the tensor core is re-exported here.
#![warn(missing_docs)]

pub use ferroflow_core::*;

/// Keras-style API: layers, models, training, losses, metrics, callbacks, optimisers, saving.
pub mod keras {
    pub use ferroflow_keras::*;
}
