//! The op set. Each file defines one family: attributes, shape checks and CPU kernels.
//!
//! Ops are methods on [`Tensor`](crate::Tensor) (and a few free functions for ops without a
//! natural receiver). The list below is the registry of families.

pub mod binary;
pub mod cast;
pub mod compare;
pub mod reduce;
pub mod reshape;
pub mod unary;
