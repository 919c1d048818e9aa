//! Input signatures (`tf.TensorSpec`): what arguments a function accepts.

use ferroflow_core::{DType, Error, Result, Tensor};

/// The shape (with `None` for any size) and dtype an argument must have.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorSpec {
    /// Sizes; `None` accepts any size on that axis.
    pub shape: Vec<Option<usize>>,
    /// The dtype.
    pub dtype: DType,
}

impl TensorSpec {
    /// A spec; use `None` for dynamic axes (`tf.TensorSpec([None, 784], tf.float32)`).
    pub fn new(shape: &[Option<usize>], dtype: DType) -> TensorSpec {
        TensorSpec {
            shape: shape.to_vec(),
            dtype,
        }
    }

    /// The exact spec of a tensor.
    pub fn of(t: &Tensor) -> TensorSpec {
        TensorSpec {
            shape: t.shape().iter().map(|&d| Some(d)).collect(),
            dtype: t.dtype(),
        }
    }

    /// Whether `t` fits.
    pub fn accepts(&self, t: &Tensor) -> bool {
        t.dtype() == self.dtype
            && t.rank() == self.shape.len()
            && self
                .shape
                .iter()
                .zip(t.shape())
                .all(|(s, &d)| s.is_none_or(|s| s == d))
    }
}

impl std::fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| d.map_or("None".to_string(), |d| d.to_string()))
            .collect();
        write!(
            f,
            "TensorSpec(shape=[{}], dtype={})",
            dims.join(", "),
            self.dtype
        )
    }
}

/// Checks `args` against `specs` the way `tf.function` binds inputs.
pub fn check(name: &str, specs: &[TensorSpec], args: &[Tensor]) -> Result<()> {
    if specs.len() != args.len() {
        return Err(Error::invalid(
            "function",
            format!(
                "'{name}' takes {} argument(s) by its input_signature, got {}",
                specs.len(),
                args.len()
            ),
        ));
    }
    for (i, (s, a)) in specs.iter().zip(args).enumerate() {
        if !s.accepts(a) {
            return Err(Error::invalid(
                "function",
                format!(
                    "'{name}': argument {i} of shape {:?} and dtype {} is not compatible with {s}",
                    a.shape(),
                    a.dtype()
                ),
            ));
        }
    }
    Ok(())
}
