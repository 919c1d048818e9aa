//! ferroflow-graph: `function` (tf.function) for ferroflow.
//!
//! A closure is traced into a [`Graph`] by running it eagerly once while every primitive
//! op, variable read/assignment and host value reports itself (see
//! [`ferroflow_core::trace`]). The graph is optimised — constant folding, algebraic
//! simplification, common-subexpression and dead-code elimination, elementwise fusion
//! (with reductions and matmul/conv prologues) — and run by an executor that releases
//! each buffer after its last use and writes fused results over dying inputs.
#![warn(missing_docs)]

mod bands;
pub mod dump;
mod epilogue_form;
mod executor;
pub mod export;
mod function;
pub mod fused;
pub mod graph;
pub mod passes;
mod row_split;
mod signature;
mod tracer;

pub use executor::Plan;
pub use function::{function, ConcreteFunction, Function};
pub use graph::{Graph, Node, NodeKind, Value, ValueInfo};
pub use passes::{optimize, OptLevel, PassStats};
pub use signature::TensorSpec;
