//! One communication thread per worker that runs the all-reduces started during the
//! backward pass, in the order they were started (the same order on every worker, as
//! collectives require), while the compute thread carries on.

use crate::collective::Collective;
use ferroflow_core::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Reply = Result<Vec<f32>>;

/// A queued sum: the values and where to send the result.
type Job = (Vec<f32>, Sender<Reply>);

/// The thread and the sums in flight.
pub(crate) struct Background {
    collective: Arc<dyn Collective>,
    worker: Mutex<Option<(Sender<Job>, JoinHandle<()>)>>,
    next: AtomicU64,
    in_flight: Mutex<HashMap<u64, Receiver<Reply>>>,
    /// Buffers of finished sums, reused for the next ones.
    spare: Mutex<Vec<Vec<f32>>>,
}

impl Background {
    pub(crate) fn new(collective: Arc<dyn Collective>) -> Self {
        Background {
            collective,
            worker: Mutex::new(None),
            next: AtomicU64::new(0),
            in_flight: Mutex::new(HashMap::new()),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// An empty buffer, reused when one was handed back.
    pub(crate) fn buffer(&self) -> Vec<f32> {
        let mut b = self
            .spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        b.clear();
        b
    }

    /// Keeps `buffer` for a later sum (a few at most).
    pub(crate) fn recycle(&self, buffer: Vec<f32>) {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < 8 {
            spare.push(buffer);
        }
    }

    /// Queues a sum of `values` over the workers; returns its ticket.
    pub(crate) fn start(&self, values: Vec<f32>) -> Result<u64> {
        let mut worker = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if worker.is_none() {
            let (tx, rx) = channel::<Job>();
            let c = self.collective.clone();
            let handle = std::thread::Builder::new()
                .name("ferroflow-allreduce".into())
                .spawn(move || {
                    for (mut values, reply) in rx {
                        let _ = reply.send(c.all_reduce_sum_f32(&mut values).map(|()| values));
                    }
                })
                .map_err(|e| {
                    Error::invalid(
                        "all_reduce",
                        format!("cannot start the communication thread: {e}"),
                    )
                })?;
            *worker = Some((tx, handle));
        }
        let (reply, answer) = channel();
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ticket, answer);
        worker
            .as_ref()
            .expect("started above")
            .0
            .send((values, reply))
            .map_err(|_| Error::invalid("all_reduce", "the communication thread has stopped"))?;
        Ok(ticket)
    }

    /// Waits for the sum behind `ticket`.
    pub(crate) fn finish(&self, ticket: u64) -> Result<Vec<f32>> {
        let answer = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ticket)
            .ok_or_else(|| {
                Error::invalid(
                    "all_reduce",
                    format!("no sum in flight with ticket {ticket}"),
                )
            })?;
        answer.recv().map_err(|_| {
            Error::invalid(
                "all_reduce",
                "the communication thread stopped before answering",
            )
        })?
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let worker = self
            .worker
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((tx, handle)) = worker {
            drop(tx);
            let _ = handle.join();
        }
    }
}
