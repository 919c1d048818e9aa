//! [`Variable`]: a named, mutable slot holding a tensor (`tf.Variable`).

use super::record::{notify_variable_read, pause_recording};
use crate::{DType, Error, Result, Tensor};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Identifies a variable (stable across assignments).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VariableId(u64);

struct VarInner {
    id: VariableId,
    name: String,
    trainable: AtomicBool,
    dtype: DType,
    shape: Vec<usize>,
    value: RwLock<Tensor>,
}

/// A mutable tensor slot with a fixed dtype and shape, shared by cloning the handle.
///
/// Reading it while a [`crate::GradientTape`] records (and the variable is trainable)
/// watches the value, so gradients with respect to the variable come out of the tape.
/// Assignments are never recorded.
#[derive(Clone)]
pub struct Variable(Arc<VarInner>);

impl std::fmt::Debug for Variable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<Variable '{}' shape={:?} dtype={}>",
            self.0.name, self.0.shape, self.0.dtype
        )
    }
}

impl Variable {
    /// A trainable variable named `Variable` holding `initial`.
    pub fn new(initial: Tensor) -> Variable {
        Variable::with_options(initial, "Variable", true)
    }

    /// A variable with a name and trainable flag.
    pub fn with_options(initial: Tensor, name: &str, trainable: bool) -> Variable {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Variable(Arc::new(VarInner {
            id: VariableId(NEXT.fetch_add(1, Ordering::Relaxed)),
            name: name.to_string(),
            trainable: AtomicBool::new(trainable),
            dtype: initial.dtype(),
            shape: initial.shape().to_vec(),
            value: RwLock::new(initial.detached()),
        }))
    }

    /// The identity of this variable.
    pub fn id(&self) -> VariableId {
        self.0.id
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Whether tapes watch this variable automatically and optimisers update it.
    pub fn trainable(&self) -> bool {
        self.0.trainable.load(Ordering::Relaxed)
    }

    /// Freezes or unfreezes the variable.
    pub fn set_trainable(&self, trainable: bool) {
        self.0.trainable.store(trainable, Ordering::Relaxed);
    }

    /// The fixed dtype.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// The fixed shape.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// Whether two handles refer to the same variable.
    pub fn same_as(&self, other: &Variable) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The current value; recorded by active tapes (`tf.Variable.value()` / `read_value`).
    pub fn value(&self) -> Tensor {
        let v = self.read_untracked();
        notify_variable_read(self, &v);
        v
    }

    /// The current value without telling any tape.
    pub fn read_untracked(&self) -> Tensor {
        let t = match self.0.value.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        crate::trace::variable_read(self, &t);
        t
    }

    fn check(&self, op: &'static str, t: &Tensor) -> Result<()> {
        if t.dtype() != self.0.dtype {
            return Err(Error::DTypeMismatch {
                op,
                lhs: self.0.dtype,
                rhs: t.dtype(),
            });
        }
        if t.shape() != self.0.shape.as_slice() {
            return Err(Error::invalid(
                op,
                format!(
                    "variable '{}' has shape {:?}, the value has shape {:?}",
                    self.0.name,
                    self.0.shape,
                    t.shape()
                ),
            ));
        }
        Ok(())
    }

    /// Stores `value` (a fresh handle on its buffer, so later reads are told apart from
    /// the value) and tells a tracer.
    fn store(&self, value: &Tensor) {
        let t = value.detached();
        crate::trace::variable_assigned(self, value, &t, || match self.0.value.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        });
        match self.0.value.write() {
            Ok(mut g) => *g = t,
            Err(p) => *p.into_inner() = t,
        }
    }

    /// Hands the current value over and leaves the variable empty (a zero-element tensor)
    /// until the next assignment: a compiled step uses it so that an update can write over
    /// the old buffer instead of allocating a new one. Reading the variable before it is
    /// assigned again gives the empty tensor.
    pub fn release_for_update(&self) -> Tensor {
        let empty = Tensor::zeros(&[0], self.0.dtype).unwrap_or_else(|_| Tensor::scalar(0.0f32));
        match self.0.value.write() {
            Ok(mut g) => std::mem::replace(&mut *g, empty),
            Err(p) => std::mem::replace(&mut *p.into_inner(), empty),
        }
    }

    /// Replaces the value; dtype and shape must match the variable's.
    pub fn assign(&self, value: &Tensor) -> Result<()> {
        self.check("Variable::assign", value)?;
        self.store(value);
        Ok(())
    }

    /// `self += delta` (shape must match exactly, as TF requires).
    pub fn assign_add(&self, delta: &Tensor) -> Result<()> {
        self.check("Variable::assign_add", delta)?;
        let _p = pause_recording();
        let v = self.read_untracked().add(delta)?;
        self.store(&v);
        Ok(())
    }

    /// `self -= delta` (shape must match exactly, as TF requires).
    pub fn assign_sub(&self, delta: &Tensor) -> Result<()> {
        self.check("Variable::assign_sub", delta)?;
        let _p = pause_recording();
        let v = self.read_untracked().sub(delta)?;
        self.store(&v);
        Ok(())
    }

    /// Adds `updates` to the rows `indices` along axis 0 (`scatter_add`); repeated rows add up.
    pub fn scatter_add(&self, indices: &Tensor, updates: &Tensor) -> Result<()> {
        let _p = pause_recording();
        let idx = indices.reshape(&[-1, 1])?;
        let v = self.read_untracked().tensor_scatter_nd_add(&idx, updates)?;
        self.store(&v);
        Ok(())
    }
}
