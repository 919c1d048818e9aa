//! ferroflow-lite: TFLite flatbuffer export and a TFLite interpreter.
//!
//! Models are written in the official TFLite schema (version 3, bindings generated from
//! TensorFlow's `schema.fbs` by `tools/gen_tflite_schema.sh`), so LiteRT runs them, and
//! `.tflite` files from TensorFlow's converter run in [`Interpreter`].
#![warn(missing_docs)]

mod bands;
pub mod convert;
pub mod custom;
mod hybrid;
pub mod inspect;
mod int8;
mod interpreter;
pub mod ir;
mod kernels;
mod pad_fold;
pub mod profile;
pub mod quantize;
pub mod read;
mod row_split;
mod sparse;
mod swish;
pub mod write;

#[allow(
    missing_docs,
    unused_imports,
    dead_code,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    mismatched_lifetime_syntaxes,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic
)]
#[rustfmt::skip]
mod schema_generated;

pub use interpreter::{core_dtype, format_lite_dims, Interpreter, InterpreterBuilder};
pub use profile::OpProfile;
pub use schema_generated::tflite as schema;
