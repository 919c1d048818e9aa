//! Server-side batching: concurrent requests to one model version are merged along the
//! batch dimension into one model call, and each gets its own rows of the outputs back.
//!
//! A batch opens with the first queued request and takes more until it holds
//! `max_batch_size` rows or `batch_timeout` has passed (with a zero timeout, only what
//! is already queued). Only requests whose inputs agree beyond the batch dimension are
//! merged. `num_batch_threads` batches run at once.

use crate::config::BatchingParameters;
use crate::error::{Code, ServeError, ServeResult};
use crate::metrics::Metrics;
use crate::servable::{first_rows, pad_rows, Servable};
use ferroflow_core::Tensor;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// One request waiting for its rows.
struct Task {
    inputs: Vec<Tensor>,
    rows: usize,
    reply: oneshot::Sender<ServeResult<Vec<Tensor>>>,
}

impl Task {
    /// What must agree for two tasks to share a batch: dtypes and non-batch dims.
    fn key(&self) -> Vec<(ferroflow_core::DType, Vec<usize>)> {
        self.inputs
            .iter()
            .map(|t| (t.dtype(), t.shape().get(1..).unwrap_or(&[]).to_vec()))
            .collect()
    }
}

/// The batching queue of one model version; dropping it lets its threads finish the
/// queued tasks and exit.
pub struct Batcher {
    queue: SyncSender<Task>,
}

impl Batcher {
    /// Starts `params.num_batch_threads` threads running batches on `servable`.
    pub fn start(
        servable: Arc<dyn Servable>,
        params: &BatchingParameters,
        model: &str,
        metrics: Arc<Metrics>,
    ) -> Batcher {
        let capacity = params.max_enqueued_batches * params.max_batch_size;
        let (tx, rx) = mpsc::sync_channel(capacity);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..params.num_batch_threads {
            let (servable, rx, params) = (servable.clone(), rx.clone(), params.clone());
            let (name, metrics) = (model.to_string(), metrics.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("batch-{model}-{i}"))
                .spawn(move || batch_loop(&*servable, &rx, &params, &name, &metrics));
            if let Err(e) = spawned {
                eprintln!("ferroflow serve: cannot start batch thread {i} for '{model}': {e}");
            }
        }
        Batcher { queue: tx }
    }

    /// Queues validated inputs of `rows` rows and waits for this request's outputs.
    pub async fn run(&self, inputs: Vec<Tensor>, rows: usize) -> ServeResult<Vec<Tensor>> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Task {
            inputs,
            rows,
            reply,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ServeError::new(
                    Code::Unavailable,
                    "The batch scheduling queue to which this task was submitted is full",
                ))
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ServeError::new(
                    Code::Unavailable,
                    "the model version is unloading",
                ))
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ServeError::internal("the batch thread stopped")))
    }
}

/// Forms and runs batches until the queue is closed and drained.
fn batch_loop(
    servable: &dyn Servable,
    rx: &Mutex<Receiver<Task>>,
    params: &BatchingParameters,
    model: &str,
    metrics: &Metrics,
) {
    let mut carry: Option<Task> = None;
    loop {
        let batch = {
            let Ok(rx) = rx.lock() else { return };
            let first = match carry.take() {
                Some(t) => t,
                None => match rx.recv() {
                    Ok(t) => t,
                    Err(_) => return,
                },
            };
            collect(first, &rx, params, &mut carry)
        };
        run_batch(servable, batch, params, model, metrics);
    }
}

/// Takes tasks after `first` while they fit and match it; the first that fits in size
/// but belongs to a later batch is kept in `carry`.
fn collect(
    first: Task,
    rx: &Receiver<Task>,
    params: &BatchingParameters,
    carry: &mut Option<Task>,
) -> Vec<Task> {
    let deadline = Instant::now() + params.batch_timeout;
    let key = first.key();
    let mut rows = first.rows;
    let mut batch = vec![first];
    while rows < params.max_batch_size {
        let next = if params.batch_timeout.is_zero() {
            match rx.try_recv() {
                Ok(t) => t,
                Err(_) => break,
            }
        } else {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(t) => t,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        };
        if rows + next.rows > params.max_batch_size || next.key() != key {
            *carry = Some(next);
            break;
        }
        rows += next.rows;
        batch.push(next);
    }
    batch
}

/// The padded size of a batch of `rows` rows: the next allowed size, if any are set.
fn padded_rows(rows: usize, allowed: &[usize]) -> usize {
    allowed.iter().copied().find(|&s| s >= rows).unwrap_or(rows)
}

/// Concatenates the tasks' inputs, runs the model once, and answers each task with its
/// rows; a failure is every task's failure.
fn run_batch(
    servable: &dyn Servable,
    batch: Vec<Task>,
    params: &BatchingParameters,
    model: &str,
    metrics: &Metrics,
) {
    let rows: Vec<usize> = batch.iter().map(|t| t.rows).collect();
    let total: usize = rows.iter().sum();
    let result = merged_run(servable, &batch, total, params);
    metrics.record_batch(model, total, batch.len());
    match result {
        Ok(outputs) => {
            let mut per_task: Vec<Vec<Tensor>> =
                vec![Vec::with_capacity(outputs.len()); batch.len()];
            for out in &outputs {
                let sizes: Vec<isize> = rows.iter().map(|&r| r as isize).collect();
                match out.split(&sizes, 0) {
                    Ok(parts) => per_task.iter_mut().zip(parts).for_each(|(p, x)| p.push(x)),
                    Err(e) => {
                        let err = ServeError::internal(format!("splitting a batch's outputs: {e}"));
                        for t in batch {
                            let _ = t.reply.send(Err(err.clone()));
                        }
                        return;
                    }
                }
            }
            for (t, outs) in batch.into_iter().zip(per_task) {
                let _ = t.reply.send(Ok(outs));
            }
        }
        Err(e) => {
            for t in batch {
                let _ = t.reply.send(Err(e.clone()));
            }
        }
    }
}

fn merged_run(
    servable: &dyn Servable,
    batch: &[Task],
    total: usize,
    params: &BatchingParameters,
) -> ServeResult<Vec<Tensor>> {
    let target = padded_rows(total, &params.allowed_batch_sizes);
    if let ([one], true) = (batch, target == total) {
        return first_rows(servable.run(&one.inputs)?, total, total);
    }
    let merged = (0..batch[0].inputs.len())
        .map(|i| {
            let parts: Vec<Tensor> = batch.iter().map(|t| t.inputs[i].clone()).collect();
            Tensor::concat(&parts, 0)
        })
        .collect::<ferroflow_core::Result<Vec<_>>>()?;
    first_rows(servable.run(&pad_rows(&merged, target)?)?, target, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_pad_to_the_next_allowed_size() {
        assert_eq!(padded_rows(3, &[]), 3);
        assert_eq!(padded_rows(3, &[2, 4, 8]), 4);
        assert_eq!(padded_rows(8, &[2, 4, 8]), 8);
    }
}
