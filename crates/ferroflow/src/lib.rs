//! ferroflow: a TensorFlow-class deep-learning framework in Rust.
//!
//! Import it as `use ferroflow as ff;`. Everything of the tensor core is re-exported here.
#![warn(missing_docs)]

pub use ferroflow_core::*;

/// Input pipelines (`tf.data`): `Dataset`, parallel map, shuffle, batch, prefetch, TFRecord.
pub mod data {
    pub use ferroflow_data::*;
}

/// Keras-style API: layers, models, training, losses, metrics, callbacks, optimisers, saving.
pub mod keras {
    pub use ferroflow_keras::*;
}
