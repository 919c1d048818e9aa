//! ferroflow-keras: the Keras-style API of ferroflow.
//!
//! - [`layers`]: Keras layers with Keras 3 configs (`get_config` / `from_config`);
//! - [`models`]: `Sequential`, functional `Input` -> `Model`, subclass-style models, and
//!   [`models::Model`] with `compile`, `fit`, `evaluate`, `predict`, `summary`, `save`;
//! - [`losses`], [`metrics`], [`callbacks`], [`optimizers`] (usable without models too);
//! - [`saving`]: ferroflow's native model directory (config JSON + safetensors);
//! - [`datasets`]: the small datasets shipped with ferroflow.
#![warn(missing_docs)]

pub mod activations;
pub mod applications;
pub mod callbacks;
pub mod config;
pub mod constraints;
pub mod datasets;
pub mod distribution;
pub mod initializers;
pub mod layer;
pub mod layers;
pub mod losses;
pub mod metrics;
pub mod models;
pub mod optimizers;
pub mod regularizers;
pub mod retrieval;
pub mod saving;
mod state_updates;
pub mod training;

pub use ferroflow_core::{Error, Result};
pub use layer::{
    clear_session, layer_ref, CallContext, Dims, Layer, LayerExt, LayerRef, TensorSpec,
};
pub use models::{Input, KerasTensor, Model, Sequential, SymbolicCall};
pub use saving::load_model;
pub use training::data::Arrays;
pub use training::{FitOptions, History, Logs, Verbose};
