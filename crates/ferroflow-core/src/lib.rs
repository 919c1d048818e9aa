//! ferroflow-core: tensors, dtypes, devices, ops and fast CPU kernels.
//!
//! The [`Tensor`] is an immutable, reference-counted n-dimensional array; every op is a
//! method returning [`Result`], with errors that name the op and the offending shapes.
#![warn(missing_docs)]

pub mod alloc;
pub mod atomic_file;
pub mod autodiff;
mod creation;
pub mod device;
mod dispatch;
pub mod dtype;
mod elementwise;
pub mod error;
pub mod layout;
mod le_bytes;
pub mod math;
pub mod npy;
pub mod ops;
mod parallel;
pub mod prefetch;
pub mod random;
pub mod row_chunks;
pub mod shape;
pub mod storage;
pub mod strings;
pub mod tensor;
pub mod trace;
mod transpose_copy;

pub use autodiff::{
    custom_gradient, Gradient, GradientTape, IndexedSlices, UnconnectedGradients, Variable,
};
pub use device::Device;
pub use dtype::{DType, Element, Float, Numeric, Stored, TfString};
pub use error::{Error, Result, ResultExt};
pub use layout::Layout;
pub use ops::binary::BinaryOp;
pub use ops::compare::{CmpOp, LogicOp};
pub use ops::conv_packed::PackedConvFilter;
pub use ops::reduce::{Axes, ReduceOp};
pub use ops::unary::UnaryOp;
pub use parallel::{
    for_each_row_block, num_threads, on_calling_thread, on_pool_spinning, with_best_isa,
    with_workers_spinning, SharedMut,
};
pub use tensor::{Tensor, TensorId};
