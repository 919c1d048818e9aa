//! ferroflow: a TensorFlow-class deep-learning framework in Rust.
//!
//! Import it as `use ferroflow as ff;`. Everything of the tensor core is re-exported here.
#![warn(missing_docs)]

pub use ferroflow_core::*;
