//! The hook through which a distribution strategy (`ferroflow-distribute`) runs Keras's
//! `fit`, `evaluate` and `predict` on several replicas.
//!
//! Keras knows only this trait: how many replicas there are, how to run a closure once per
//! local replica, and how to combine values across workers. A model compiled inside
//! [`with_replicas`] (what `strategy.scope()` does) keeps the strategy and splits every
//! global batch across its replicas: each replica computes the gradients of its share of
//! the loss, scaled by its share of the global batch (Keras's rule), the gradients are
//! summed across replicas in a fixed order, and one update is applied.

use ferroflow_core::autodiff::Gradient;
use ferroflow_core::{Result, Tensor, Variable};
use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

/// What one replica computed: a boxed value handed back to the caller of
/// [`Replicas::run_local`].
pub type ReplicaValue = Box<dyn Any + Send>;

/// A closure run once per local replica with the replica's index in this process.
pub type ReplicaFn<'a> = dyn Fn(usize) -> Result<ReplicaValue> + Sync + 'a;

/// A set of replicas training one model in sync (`tf.distribute.Strategy` as Keras sees it).
pub trait Replicas: Send + Sync {
    /// Replicas over all workers (`strategy.num_replicas_in_sync`).
    fn num_replicas_in_sync(&self) -> usize;
    /// Replicas in this process (threads).
    fn local_replicas(&self) -> usize;
    /// This worker's index among the workers (0 is the chief).
    fn worker_rank(&self) -> usize;
    /// The number of workers (processes).
    fn num_workers(&self) -> usize;
    /// Runs `f(i)` for every local replica `i`, each on its own thread with its share of
    /// the cores, and returns the results in replica order (the first error if any failed).
    fn run_local(&self, f: &ReplicaFn<'_>) -> Result<Vec<ReplicaValue>>;
    /// Sums gradients over the workers, in place: dense gradients by a bucketed
    /// all-reduce, sparse ones by gathering their indices and values. Every worker passes
    /// gradients for the same variables (`vars`, for the shapes of missing ones).
    fn all_reduce_gradients(&self, grads: &mut [Option<Gradient>], vars: &[Variable])
        -> Result<()>;
    /// Sums `values` over the workers, in place.
    fn all_reduce_f64(&self, values: &mut [f64]) -> Result<()>;
    /// Concatenates each tensor along axis 0 over the workers, in worker order.
    fn all_gather_rows(&self, tensors: &[Tensor]) -> Result<Vec<Tensor>>;
    /// Gives every worker the chief's bytes.
    fn broadcast_bytes(&self, bytes: Vec<u8>) -> Result<Vec<u8>>;
    /// Gives every worker the chief's values of `vars`, after checking that every worker
    /// holds the same variables (names, shapes and dtypes), in the same order.
    fn sync_variables(&self, vars: &[Variable]) -> Result<()>;
    /// Gradient bytes per all-reduce when gradients are reduced while the backward pass
    /// runs ([`Replicas::start_sum`]); `None` when this strategy reduces them afterwards.
    fn overlap_bucket_bytes(&self) -> Option<usize> {
        None
    }
    /// Starts summing `values` over the workers in the background and returns a ticket
    /// for [`Replicas::finish_sum`]. Every worker starts the same sums in the same order.
    fn start_sum(&self, _values: Vec<f32>) -> Result<u64> {
        Err(ferroflow_core::Error::invalid(
            "Strategy",
            "this strategy does not reduce in the background",
        ))
    }
    /// An empty buffer to pack a sum into (one that was used before, when there is one:
    /// large transfers run faster between pages already touched).
    fn sum_buffer(&self) -> Vec<f32> {
        Vec::new()
    }
    /// Hands back a buffer [`Replicas::finish_sum`] returned, for a later sum.
    fn recycle_sum_buffer(&self, _buffer: Vec<f32>) {}
    /// Waits for the sum a [`Replicas::start_sum`] started.
    fn finish_sum(&self, _ticket: u64) -> Result<Vec<f32>> {
        Err(ferroflow_core::Error::invalid(
            "Strategy",
            "this strategy does not reduce in the background",
        ))
    }
}

/// Helpers on [`Replicas`] that are generic (so not part of the object-safe trait).
pub trait ReplicasExt {
    /// Whether this worker is the chief (rank 0): the one that writes files and prints.
    fn is_chief(&self) -> bool;
    /// Runs `f` once per local replica and returns the typed results in replica order.
    fn run_each<T: Send + 'static>(&self, f: impl Fn(usize) -> Result<T> + Sync) -> Result<Vec<T>>;
}

impl<R: Replicas + ?Sized> ReplicasExt for R {
    fn is_chief(&self) -> bool {
        self.worker_rank() == 0
    }

    fn run_each<T: Send + 'static>(&self, f: impl Fn(usize) -> Result<T> + Sync) -> Result<Vec<T>> {
        let boxed = |i: usize| -> Result<ReplicaValue> { Ok(Box::new(f(i)?)) };
        self.run_local(&boxed)?
            .into_iter()
            .map(|v| {
                v.downcast::<T>().map(|b| *b).map_err(|_| {
                    ferroflow_core::Error::invalid(
                        "Strategy::run",
                        "a replica returned another type",
                    )
                })
            })
            .collect()
    }
}

thread_local! {
    static SCOPE: RefCell<Vec<Arc<dyn Replicas>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `replicas` as the current strategy (`with strategy.scope():`): models
/// compiled inside keep it and train on its replicas.
pub fn with_replicas<R>(replicas: Arc<dyn Replicas>, f: impl FnOnce() -> R) -> R {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            exit_replicas();
        }
    }
    enter_replicas(replicas);
    let _pop = Pop;
    f()
}

/// Makes `replicas` the current strategy until the matching [`exit_replicas`]: the two
/// halves of [`with_replicas`], for language bindings whose scopes are context managers.
pub fn enter_replicas(replicas: Arc<dyn Replicas>) {
    SCOPE.with(|s| s.borrow_mut().push(replicas));
}

/// Ends the innermost [`enter_replicas`] on this thread.
pub fn exit_replicas() {
    SCOPE.with(|s| s.borrow_mut().pop());
}

/// The strategy of the innermost [`with_replicas`] on this thread, if any.
pub fn current() -> Option<Arc<dyn Replicas>> {
    SCOPE.with(|s| s.borrow().last().cloned())
}

/// Rows `[n*i/parts, n*(i+1)/parts)` of `n`: replica `i`'s share of a global batch, as even
/// as the batch allows (TF's rule when the batch does not divide by the replica count).
pub fn share(n: usize, i: usize, parts: usize) -> (usize, usize) {
    (n * i / parts, n * (i + 1) / parts)
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_cover_the_batch_evenly() {
        for (n, parts) in [(64, 2), (64, 3), (1, 2), (10, 4), (0, 3)] {
            let mut next = 0;
            for i in 0..parts {
                let (lo, hi) = share(n, i, parts);
                assert_eq!(lo, next);
                assert!(hi - lo <= n.div_ceil(parts) && hi - lo + 1 >= n / parts);
                next = hi;
            }
            assert_eq!(next, n);
        }
    }
}
