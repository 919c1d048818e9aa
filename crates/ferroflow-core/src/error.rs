//! The error type every fallible ferroflow operation returns.

use crate::DType;

/// Errors raised by tensor operations, constructors and file readers.
///
/// Each variant names the operation (or file) and carries the offending shapes or values,
/// so a message reads like `matmul: inner dimensions differ: [64, 784] x [785, 128]`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two operands whose shapes cannot be combined (broadcast, contracted, concatenated).
    #[error("{op}: {msg}: {lhs:?} x {rhs:?}")]
    ShapeMismatch {
        /// The operation that failed.
        op: &'static str,
        /// What is wrong with the shapes.
        msg: &'static str,
        /// Shape of the first operand.
        lhs: Vec<usize>,
        /// Shape of the second operand.
        rhs: Vec<usize>,
    },
    /// Operands whose dtypes differ where the op needs them equal.
    #[error("{op}: dtypes differ: {lhs} vs {rhs}")]
    DTypeMismatch {
        /// The operation that failed.
        op: &'static str,
        /// DType of the first operand.
        lhs: DType,
        /// DType of the second operand.
        rhs: DType,
    },
    /// A dtype the op has no kernel for.
    #[error("{op}: unsupported dtype {dtype}")]
    UnsupportedDType {
        /// The operation that failed.
        op: &'static str,
        /// The dtype it was given.
        dtype: DType,
    },
    /// An attribute or argument out of range (an axis, a size, a rate...).
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The operation that failed.
        op: &'static str,
        /// What is wrong, with the offending values.
        msg: String,
    },
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file path.
        path: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file whose contents do not follow its format.
    #[error("{path}: {msg}")]
    Format {
        /// The file (or a description of the buffer).
        path: String,
        /// What is wrong with it.
        msg: String,
    },
}

/// Result alias used throughout ferroflow.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Builds an [`Error::InvalidArgument`].
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }

    /// Builds an [`Error::ShapeMismatch`].
    pub fn shapes(op: &'static str, msg: &'static str, lhs: &[usize], rhs: &[usize]) -> Self {
        Error::ShapeMismatch {
            op,
            msg,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
        }
    }
}
