//! Where a request's work runs. A model known to answer quickly runs on the async worker
//! that received the request: no hop to a blocking thread and back, no wake-up of another
//! thread, no more runnable threads than cores (on a loaded machine each extra one is a
//! chance to wait out another thread's time slice, which is where the latency tail came
//! from). A slow model, or one not measured yet, runs on a blocking thread so that the
//! workers keep accepting and answering other requests.

use crate::error::{ServeError, ServeResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Runs shorter than this (on average) stay on the async worker.
pub const INLINE_LIMIT: Duration = Duration::from_micros(500);

/// A moving average of one model version's run time.
#[derive(Debug, Default)]
pub struct RunCost {
    /// Nanoseconds, 0 until the first run is measured.
    average_ns: AtomicU64,
}

impl RunCost {
    /// Whether the runs measured so far were quick enough to stay on the async worker.
    pub fn is_quick(&self) -> bool {
        let ns = self.average_ns.load(Ordering::Relaxed);
        ns != 0 && ns < INLINE_LIMIT.as_nanos() as u64
    }

    /// Adds one run's duration (weight 1/8; a lost update under a race only delays the
    /// average a little).
    pub fn record(&self, took: Duration) {
        let ns = (took.as_nanos() as u64).max(1);
        let old = self.average_ns.load(Ordering::Relaxed);
        let new = if old == 0 { ns } else { (old * 7 + ns) / 8 };
        self.average_ns.store(new.max(1), Ordering::Relaxed);
    }

    /// Runs `f` here when the model is quick, else on a blocking thread; `f` returns the
    /// result and the time its model run took, which is recorded.
    pub async fn run<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        inline_ok: bool,
        f: impl FnOnce() -> ServeResult<(T, Duration)> + Send + 'static,
    ) -> ServeResult<T> {
        let (out, took) = if inline_ok && self.is_quick() {
            f()?
        } else {
            blocking(f).await?
        };
        self.record(took);
        Ok(out)
    }
}

/// Runs `f` on one of the runtime's blocking threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ServeResult<T> + Send + 'static,
) -> ServeResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ServeError::internal(format!("the request failed: {e}"))))
}

/// Runs `f`, returning its result and how long it took.
pub fn timed<T>(f: impl FnOnce() -> ServeResult<T>) -> ServeResult<(T, Duration)> {
    let t0 = Instant::now();
    let out = f()?;
    Ok((out, t0.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmeasured_and_slow_models_are_not_quick() {
        let c = RunCost::default();
        assert!(!c.is_quick());
        c.record(Duration::from_micros(40));
        assert!(c.is_quick());
        for _ in 0..40 {
            c.record(Duration::from_millis(5));
        }
        assert!(!c.is_quick());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_inline_only_when_quick_and_allowed() {
        let c = std::sync::Arc::new(RunCost::default());
        let here = std::thread::current().id();
        let ran_on = |c: std::sync::Arc<RunCost>, ok: bool| async move {
            c.run(ok, move || {
                Ok((std::thread::current().id(), Duration::from_micros(10)))
            })
            .await
            .unwrap()
        };
        assert_ne!(
            ran_on(c.clone(), true).await,
            here,
            "first run is measured off-worker"
        );
        assert_eq!(ran_on(c.clone(), true).await, here);
        assert_ne!(ran_on(c.clone(), false).await, here);
    }
}
