//! Layer state that training updates (BatchNormalization's moving statistics).
//!
//! Outside a distribution strategy an update is assigned at once. Inside a replica's
//! step it is collected instead, and the strategy assigns each variable the mean of its
//! replicas' values once the step is done: TensorFlow's `ON_READ` variables with `MEAN`
//! aggregation, whose per-replica copies are read as their mean. Replicas that are
//! threads of one process share each variable, so assigning at once would let them race
//! (the last writer wins, and which one that is changes from run to run).
//!
//! A moving average is linear in the batch statistics, so the mean of the replicas' new
//! values is the moving average of the mean of their batch statistics.

use ferroflow_core::autodiff::pause_recording;
use ferroflow_core::{Error, Result, Tensor, Variable};
use std::cell::RefCell;

/// Updates collected on one thread: (variable, new value) in the order they were made.
pub(crate) type Collected = Vec<(Variable, Tensor)>;

thread_local! {
    static COLLECTING: RefCell<Option<Collected>> = const { RefCell::new(None) };
}

/// Gives layer-state variable `v` its new `value`: at once, or to the innermost
/// [`collect`] running on this thread.
pub(crate) fn assign(v: &Variable, value: Tensor) -> Result<()> {
    let now = COLLECTING.with(|c| match c.borrow_mut().as_mut() {
        Some(list) => {
            list.push((v.clone(), value));
            None
        }
        None => Some(value),
    });
    match now {
        Some(value) => v.assign(&value),
        None => Ok(()),
    }
}

/// Runs `f` and returns, beside its result, the state updates it made on this thread,
/// which are not applied.
pub(crate) fn collect<R>(f: impl FnOnce() -> Result<R>) -> Result<(R, Collected)> {
    /// Puts the enclosing collection back, also when `f` fails or panics.
    struct Restore(Option<Collected>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            COLLECTING.with(|c| *c.borrow_mut() = outer);
        }
    }
    let outer = COLLECTING.with(|c| c.replace(Some(Vec::new())));
    let restore = Restore(outer);
    let result = f();
    let mine = COLLECTING.with(|c| c.replace(None)).unwrap_or_default();
    drop(restore);
    Ok((result?, mine))
}

/// Assigns each variable the mean of the values the replicas collected for it. Every
/// replica that ran makes the same updates in the same order (they run one model).
pub(crate) fn assign_means(per_replica: &[Collected]) -> Result<()> {
    let Some(first) = per_replica.first() else {
        return Ok(());
    };
    let mismatch = || {
        Error::invalid(
            "distribution",
            "replicas updated different layer state in one step",
        )
    };
    if per_replica.iter().any(|r| r.len() != first.len()) {
        return Err(mismatch());
    }
    let _pause = pause_recording();
    let n = per_replica.len() as f64;
    for (j, (var, value)) in first.iter().enumerate() {
        let mut sum = value.clone();
        for r in &per_replica[1..] {
            let (v, x) = &r[j];
            if v.id() != var.id() {
                return Err(mismatch());
            }
            sum = sum.add(x)?;
        }
        let mean = if per_replica.len() > 1 {
            sum.mul_scalar(1.0 / n)?
        } else {
            sum
        };
        var.assign(&mean.cast(var.dtype())?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collected_updates_are_not_applied_and_means_are() -> Result<()> {
        let v = Variable::new(Tensor::from_vec(vec![0.0f32, 0.0], &[2])?);
        let run = |x: f32| {
            collect(|| assign(&v, Tensor::from_vec(vec![x, 2.0 * x], &[2])?)).map(|(_, c)| c)
        };
        let (a, b) = (run(1.0)?, run(3.0)?);
        assert_eq!(v.read_untracked().to_vec::<f32>()?, vec![0.0, 0.0]);
        assign_means(&[a, b])?;
        assert_eq!(v.read_untracked().to_vec::<f32>()?, vec![2.0, 4.0]);
        assign(&v, Tensor::from_vec(vec![5.0f32, 5.0], &[2])?)?;
        assert_eq!(v.read_untracked().to_vec::<f32>()?, vec![5.0, 5.0]);
        Ok(())
    }
}
