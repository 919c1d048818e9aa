//! TF Serving's gRPC API: `tensorflow.serving.PredictionService` (Predict, Classify,
//! Regress, MultiInference, GetModelMetadata) and `ModelService` (GetModelStatus,
//! HandleReloadConfigRequest), over the same model manager, batching and metrics as the
//! REST API. Messages and services are generated from TF Serving's and TensorFlow's own
//! `.proto` files (`proto/`, `tools/gen_serving_protos.sh`).

pub mod codec;
mod corked;
mod services;
pub mod tensor_proto;

pub use services::{serve, GrpcOptions};

/// The generated messages and services, in TF's proto packages.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    /// `tensorflow.*`: tensors, shapes, dtypes, examples, signatures.
    pub mod tensorflow {
        include!("generated/tensorflow.rs");
        /// `tensorflow.error`: status codes.
        pub mod error {
            include!("generated/tensorflow.error.rs");
        }
        /// `tensorflow.serving`: the serving APIs.
        pub mod serving {
            include!("generated/tensorflow.serving.rs");
        }
    }
}
