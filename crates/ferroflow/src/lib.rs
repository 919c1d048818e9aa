//! ferroflow: a TensorFlow-class deep-learning framework in Rust.
//!
//! Import it as `use ferroflow as ff;`. Everything of the tensor core is re-exported here.
#![warn(missing_docs)]

pub use ferroflow_core::*;

/// `tf.function`: trace a closure into a graph, optimise it and run the compiled plan.
pub use ferroflow_graph::{function, ConcreteFunction, Function, OptLevel, TensorSpec};

/// The graph IR, passes, executor and dumps behind [`function`].
pub mod graph {
    pub use ferroflow_graph::*;
}

/// Input pipelines (`tf.data`): `Dataset`, parallel map, shuffle, batch, prefetch, TFRecord.
pub mod data {
    pub use ferroflow_data::*;
}

/// `tf.distribute`: MirroredStrategy (local replicas) and MultiWorkerMirroredStrategy
/// (MPI workers with the `mpi` feature).
pub mod distribute {
    pub use ferroflow_distribute::*;
}

/// Keras-style API: layers, models, training, losses, metrics, callbacks, optimisers, saving.
pub mod keras {
    pub use ferroflow_keras::*;
}

/// TFLite (`tf.lite`): export to `.tflite` flatbuffers and the interpreter.
pub mod lite {
    pub use ferroflow_lite::*;
}

/// ONNX export (`ferroflow-onnx`).
pub mod onnx {
    pub use ferroflow_onnx::*;
}

/// The TF-Serving compatible model server behind `ferroflow serve`.
pub mod serve {
    pub use ferroflow_serve::*;
}

#[doc(hidden)]
pub mod fuzzing;
#[doc(hidden)]
pub mod workloads;
