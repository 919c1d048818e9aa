//! ferroflow-keras: the Keras-style API of ferroflow.
//!
//! Optimisers with Keras 3 semantics and defaults ([`optimizers`]) and learning-rate
//! schedules ([`optimizers::schedules`]); they update any [`ferroflow_core::Variable`]s, with
//! or without Keras models.
#![warn(missing_docs)]

pub mod optimizers;
