//! Gradient values: dense tensors, or row slices of a large table (`tf.IndexedSlices`).

use crate::{Error, Result, Tensor};

/// Rows of a gradient for a tensor of shape `dense_shape`: row `indices[i]` (along axis 0)
/// receives `values[i]`. Repeated indices add up. Gather and embedding lookups produce
/// these so a large table's gradient is never materialised densely.
#[derive(Clone, Debug)]
pub struct IndexedSlices {
    /// Row indices, an i32/i64 tensor of shape `[k]`.
    pub indices: Tensor,
    /// Row values, shape `[k, dense_shape[1..]...]`.
    pub values: Tensor,
    /// The shape of the dense tensor these slices belong to.
    pub dense_shape: Vec<usize>,
}

impl IndexedSlices {
    /// The dense tensor these slices stand for (repeated rows summed).
    pub fn to_dense(&self) -> Result<Tensor> {
        let idx = self.indices.reshape(&[-1, 1])?;
        Tensor::scatter_nd(&idx, &self.values, &self.dense_shape)
    }

    /// Concatenates two sets of slices of the same dense tensor.
    pub fn concat(&self, other: &IndexedSlices) -> Result<IndexedSlices> {
        if self.dense_shape != other.dense_shape {
            return Err(Error::shapes(
                "IndexedSlices::concat",
                "dense shapes differ",
                &self.dense_shape,
                &other.dense_shape,
            ));
        }
        let (a, b) = (&self.indices, &other.indices);
        let b = if a.dtype() != b.dtype() {
            b.cast(a.dtype())?
        } else {
            b.clone()
        };
        Ok(IndexedSlices {
            indices: Tensor::concat(&[a.clone(), b], 0)?,
            values: Tensor::concat(&[self.values.clone(), other.values.clone()], 0)?,
            dense_shape: self.dense_shape.clone(),
        })
    }
}

/// A gradient returned by [`crate::GradientTape::gradient`].
#[derive(Clone, Debug)]
pub enum Gradient {
    /// A tensor with the source's shape.
    Dense(Tensor),
    /// Row slices of a tensor with the source's shape.
    Sparse(IndexedSlices),
}

impl Gradient {
    /// The gradient as a dense tensor (sparse slices are scattered into zeros).
    pub fn to_dense(&self) -> Result<Tensor> {
        match self {
            Gradient::Dense(t) => Ok(t.clone()),
            Gradient::Sparse(s) => s.to_dense(),
        }
    }

    /// The dense tensor, when the gradient is dense.
    pub fn as_dense(&self) -> Option<&Tensor> {
        match self {
            Gradient::Dense(t) => Some(t),
            Gradient::Sparse(_) => None,
        }
    }

    /// The shape of the tensor this gradient belongs to.
    pub fn shape(&self) -> &[usize] {
        match self {
            Gradient::Dense(t) => t.shape(),
            Gradient::Sparse(s) => &s.dense_shape,
        }
    }

    /// Sum of two gradients of the same tensor (sparse + sparse stays sparse).
    pub fn add(&self, other: &Gradient) -> Result<Gradient> {
        match (self, other) {
            (Gradient::Sparse(a), Gradient::Sparse(b)) => Ok(Gradient::Sparse(a.concat(b)?)),
            (Gradient::Dense(a), Gradient::Dense(b)) => Ok(Gradient::Dense(a.add(b)?)),
            (Gradient::Dense(d), Gradient::Sparse(s))
            | (Gradient::Sparse(s), Gradient::Dense(d)) => {
                let idx = s.indices.reshape(&[-1, 1])?;
                Ok(Gradient::Dense(d.tensor_scatter_nd_add(&idx, &s.values)?))
            }
        }
    }
}

impl From<Tensor> for Gradient {
    fn from(t: Tensor) -> Self {
        Gradient::Dense(t)
    }
}
