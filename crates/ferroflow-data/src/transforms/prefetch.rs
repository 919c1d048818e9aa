//! `prefetch(n | AUTOTUNE)`: a producer thread keeps up to `n` elements ready.
//!
//! With AUTOTUNE the buffer starts at 1 and grows each time the consumer finds it empty
//! (the producer is the bottleneck), up to 64 elements and a memory budget.

use crate::source::{Cardinality, ElementIter, Source};
use crate::{Dataset, Element};
use ferroflow_core::Result;
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};

/// Largest AUTOTUNE buffer.
const MAX_AUTOTUNE: usize = 64;

pub(crate) struct Prefetch {
    pub(crate) input: Dataset,
    /// `None` for AUTOTUNE.
    pub(crate) buffer: Option<usize>,
    pub(crate) memory_budget: usize,
}

struct Flow {
    queued: usize,
    target: usize,
    stop: bool,
}

struct PrefetchIter {
    rx: Receiver<Result<Element>>,
    flow: Arc<(Mutex<Flow>, Condvar)>,
    autotune: bool,
    max: usize,
    budget: usize,
}

impl Iterator for PrefetchIter {
    type Item = Result<Element>;

    fn next(&mut self) -> Option<Result<Element>> {
        let item = match self.rx.try_recv() {
            Ok(x) => x,
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {
                if self.autotune {
                    let mut f = self.flow.0.lock().unwrap_or_else(|e| e.into_inner());
                    if f.target < self.max {
                        f.target += 1;
                        self.flow.1.notify_all();
                    }
                }
                self.rx.recv().ok()?
            }
        };
        let mut f = self.flow.0.lock().unwrap_or_else(|e| e.into_inner());
        f.queued = f.queued.saturating_sub(1);
        if self.autotune {
            if let Ok(e) = &item {
                // Keep the buffer within the memory budget.
                let per = e.nbytes().max(1);
                f.target = f.target.min((self.budget / per).max(1));
            }
        }
        self.flow.1.notify_all();
        Some(item)
    }
}

impl Drop for PrefetchIter {
    fn drop(&mut self) {
        let mut f = self.flow.0.lock().unwrap_or_else(|e| e.into_inner());
        f.stop = true;
        self.flow.1.notify_all();
    }
}

impl Source for Prefetch {
    fn input(&self) -> Option<&Dataset> {
        Some(&self.input)
    }

    fn with_input(&self, input: Dataset) -> Option<Dataset> {
        Some(Dataset::from_source(Prefetch {
            input,
            buffer: self.buffer,
            memory_budget: self.memory_budget,
        }))
    }

    fn open(&self) -> Result<ElementIter> {
        let mut upstream = self.input.source().open()?;
        let (autotune, max) = match self.buffer {
            None => (true, MAX_AUTOTUNE),
            Some(n) => (false, n.max(1)),
        };
        let flow = Arc::new((
            Mutex::new(Flow {
                queued: 0,
                target: if autotune { 1 } else { max },
                stop: false,
            }),
            Condvar::new(),
        ));
        let (tx, rx) = sync_channel(max);
        let producer_flow = flow.clone();
        std::thread::spawn(move || loop {
            {
                let (lock, cv) = &*producer_flow;
                let mut f = lock.lock().unwrap_or_else(|e| e.into_inner());
                while f.queued >= f.target && !f.stop {
                    f = cv.wait(f).unwrap_or_else(|e| e.into_inner());
                }
                if f.stop {
                    return;
                }
                f.queued += 1;
            }
            let Some(item) = upstream.next() else { return };
            if tx.send(item).is_err() {
                return;
            }
        });
        Ok(Box::new(PrefetchIter {
            rx,
            flow,
            autotune,
            max,
            budget: self.memory_budget,
        }))
    }

    fn cardinality(&self) -> Cardinality {
        self.input.cardinality()
    }
}
