//! The op set. Each file defines one family: attributes, shape checks and CPU kernels.
//!
//! Ops are methods on [`Tensor`](crate::Tensor) (and a few free functions for ops without a
//! natural receiver). The list below is the registry of families.

pub mod binary;
mod binary_grad;
pub mod cast;
pub mod compare;
pub mod conv;
mod conv_bands;
pub mod conv_epilogue;
mod conv_grad;
pub mod conv_packed;
#[cfg(target_arch = "x86_64")]
mod conv_packed_avx2;
#[cfg(target_arch = "x86_64")]
mod conv_packed_avx512;
pub mod conv_transpose;
mod depthwise;
#[cfg(target_arch = "x86_64")]
mod depthwise_avx2;
#[cfg(target_arch = "x86_64")]
mod depthwise_avx512;
pub mod dropout;
pub mod einsum;
pub mod gather;
pub mod join;
pub mod matmul;
pub mod norm;
pub mod pool;
mod pool_grad;
pub mod reduce;
mod reduce_grad;
pub mod remap;
pub mod reshape;
pub mod slice;
pub mod softmax;
pub mod sort;
pub mod take_along;
pub mod unary;
mod unary_grad;
