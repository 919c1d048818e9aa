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
    /// Inputs that do not fit a model, said in the model's terms:
    /// `model 'digits': input 'pixels' expects shape (None, 64), got (3, 7)`.
    #[error("model '{model}': {msg}")]
    ModelInput {
        /// The model's name.
        model: String,
        /// What is wrong, naming the input, what it expects and what it got.
        msg: String,
    },
    /// An error with what ferroflow was doing when it happened. It displays the cause
    /// first and then, a line each, what it happened during, innermost first:
    ///
    /// ```text
    /// model 'digits': input 'pixels' expects shape (None, 64), got (3, 7)
    ///   while tracing 'predict_function'
    /// ```
    #[error("{inner}\n  while {context}")]
    Context {
        /// What was being done ("tracing 'predict_function'").
        context: String,
        /// The error it met.
        inner: Box<Error>,
    },
}

/// Result alias used throughout ferroflow.
pub type Result<T> = std::result::Result<T, Error>;

/// [`Error::context`] on results: `load(path).context("loading the model")?`.
pub trait ResultExt<T> {
    /// Adds `what` as the context of an error.
    fn context(self, what: impl Into<String>) -> Result<T>;
    /// Adds the context `what()` makes, only when there is an error.
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.context(what))
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.context(what()))
    }
}

impl Error {
    /// Builds an [`Error::InvalidArgument`].
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }

    /// This error as the cause of a failure while doing `what` (see [`Error::Context`]).
    pub fn context(self, what: impl Into<String>) -> Self {
        Error::Context {
            context: what.into(),
            inner: Box::new(self),
        }
    }

    /// The error at the bottom of the context chain: what actually went wrong.
    pub fn cause(&self) -> &Error {
        match self {
            Error::Context { inner, .. } => inner.cause(),
            other => other,
        }
    }

    /// The contexts the cause happened in, innermost first.
    pub fn contexts(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut e = self;
        while let Error::Context { context, inner } = e {
            out.push(context.as_str());
            e = inner;
        }
        out.reverse();
        out
    }

    /// The message on one line (for logs and request errors): the cause, then
    /// `(while ...; while ...)`.
    pub fn one_line(&self) -> String {
        let contexts = self.contexts();
        let cause = self.cause().to_string();
        if contexts.is_empty() {
            return cause;
        }
        let chain: Vec<String> = contexts.iter().map(|c| format!("while {c}")).collect();
        format!("{cause} ({})", chain.join("; "))
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

#[cfg(test)]
mod context_tests {
    use super::*;

    #[test]
    fn the_cause_comes_first_and_contexts_follow_innermost_first() {
        let e = Error::invalid("matmul", "inner dimensions differ")
            .context("calling layer 'dense'")
            .context("tracing 'predict_function'");
        assert_eq!(
            e.to_string(),
            "matmul: inner dimensions differ\n  while calling layer 'dense'\n  while tracing 'predict_function'"
        );
        assert_eq!(e.cause().to_string(), "matmul: inner dimensions differ");
        assert_eq!(
            e.one_line(),
            "matmul: inner dimensions differ (while calling layer 'dense'; while tracing 'predict_function')"
        );
        let r: Result<()> = Err(Error::invalid("x", "y"));
        assert_eq!(r.context("z").unwrap_err().contexts(), ["z"]);
    }
}
