//! `map` (sequential or on worker threads, in order or not) and `filter`.
//!
//! The parallel map keeps at most `capacity` elements in flight: workers take a slot
//! before pulling an input and the consumer frees it when it hands the result on, so the
//! reorder buffer of a deterministic map stays bounded. Dropping the iterator stops the
//! workers after the element each is working on.

use crate::source::{Cardinality, ElementIter, Source};
use crate::{Dataset, Element};
use ferroflow_core::Result;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Condvar, Mutex};

/// The function a map applies.
pub type MapFn = Arc<dyn Fn(Element) -> Result<Element> + Send + Sync>;

/// `map` with `parallelism` workers (1 = on the consumer's thread).
pub(crate) struct Map {
    pub(crate) input: Dataset,
    pub(crate) f: MapFn,
    /// Workers (the most workers under AUTOTUNE).
    pub(crate) parallelism: usize,
    /// AUTOTUNE: start with one worker and add one whenever the consumer has to wait.
    pub(crate) autotune: bool,
    pub(crate) deterministic: bool,
}

struct Shared {
    input: Mutex<(ElementIter, u64, usize)>,
    slot_free: Condvar,
    stop: AtomicBool,
    /// Set by the worker that finds the input exhausted.
    exhausted: AtomicBool,
    capacity: usize,
}

type Spawner = Box<dyn Fn() + Send>;

struct ParallelIter {
    rx: Receiver<(u64, Result<Element>)>,
    shared: Arc<Shared>,
    pending: BTreeMap<u64, Result<Element>>,
    next: u64,
    deterministic: bool,
    /// Starts one more worker (AUTOTUNE); dropped once no more are wanted, which also
    /// drops its sender so the channel closes when the last worker ends.
    spawner: Option<Spawner>,
    workers: usize,
    max_workers: usize,
}

impl ParallelIter {
    fn release(&self) {
        let mut g = self.shared.input.lock().unwrap_or_else(|e| e.into_inner());
        g.2 -= 1;
        self.shared.slot_free.notify_one();
    }
}

impl Iterator for ParallelIter {
    type Item = Result<Element>;

    fn next(&mut self) -> Option<Result<Element>> {
        loop {
            if self.deterministic {
                if let Some(r) = self.pending.remove(&self.next) {
                    self.next += 1;
                    self.release();
                    return Some(r);
                }
            }
            let received = match self.rx.try_recv() {
                Ok(x) => Ok(x),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    // The consumer waits: under AUTOTUNE that is the signal for one more
                    // worker, up to the core count.
                    if self.workers < self.max_workers
                        && !self.shared.exhausted.load(Ordering::SeqCst)
                    {
                        if let Some(spawn) = &self.spawner {
                            spawn();
                            self.workers += 1;
                        }
                    }
                    if self.workers >= self.max_workers
                        || self.shared.exhausted.load(Ordering::SeqCst)
                    {
                        self.spawner = None;
                    }
                    loop {
                        match self.rx.recv_timeout(std::time::Duration::from_millis(20)) {
                            Ok(x) => break Ok(x),
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break Err(()),
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                                if self.shared.exhausted.load(Ordering::SeqCst) {
                                    self.spawner = None;
                                }
                            }
                        }
                    }
                }
            };
            match received {
                Ok((i, r)) => {
                    if !self.deterministic {
                        self.release();
                        return Some(r);
                    }
                    self.pending.insert(i, r);
                }
                // Every worker has finished and everything was handed on.
                Err(_) => return None,
            }
        }
    }
}

impl Drop for ParallelIter {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.slot_free.notify_all();
    }
}

impl Source for Map {
    fn input(&self) -> Option<&Dataset> {
        Some(&self.input)
    }

    fn with_input(&self, input: Dataset) -> Option<Dataset> {
        Some(Dataset::from_source(Map {
            input,
            f: self.f.clone(),
            parallelism: self.parallelism,
            autotune: self.autotune,
            deterministic: self.deterministic,
        }))
    }

    fn open(&self) -> Result<ElementIter> {
        let upstream = self.input.source().open()?;
        let f = self.f.clone();
        if self.parallelism <= 1 {
            return Ok(Box::new(upstream.map(move |e| e.and_then(|e| f(e)))));
        }
        let capacity = 2 * self.parallelism;
        let shared = Arc::new(Shared {
            input: Mutex::new((upstream, 0, 0)),
            slot_free: Condvar::new(),
            stop: AtomicBool::new(false),
            exhausted: AtomicBool::new(false),
            capacity,
        });
        let (tx, rx) = sync_channel(capacity);
        let worker_shared = shared.clone();
        let spawn: Spawner = Box::new(move || {
            let (shared, tx, f) = (worker_shared.clone(), tx.clone(), f.clone());
            std::thread::spawn(move || loop {
                let (idx, item) = {
                    let mut g = shared.input.lock().unwrap_or_else(|e| e.into_inner());
                    while g.2 >= shared.capacity && !shared.stop.load(Ordering::SeqCst) {
                        g = shared.slot_free.wait(g).unwrap_or_else(|e| e.into_inner());
                    }
                    if shared.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some(item) = g.0.next() else {
                        shared.exhausted.store(true, Ordering::SeqCst);
                        return;
                    };
                    let idx = g.1;
                    g.1 += 1;
                    g.2 += 1;
                    (idx, item)
                };
                let out = item.and_then(|e| f(e));
                if tx.send((idx, out)).is_err() {
                    return;
                }
            });
        });
        let start = if self.autotune { 1 } else { self.parallelism };
        for _ in 0..start {
            spawn();
        }
        let spawner = (self.autotune && start < self.parallelism).then_some(spawn);
        Ok(Box::new(ParallelIter {
            rx,
            shared,
            pending: BTreeMap::new(),
            next: 0,
            deterministic: self.deterministic,
            spawner,
            workers: start,
            max_workers: self.parallelism,
        }))
    }

    fn cardinality(&self) -> Cardinality {
        self.input.cardinality()
    }
}

/// The predicate `filter` keeps elements by.
pub type FilterFn = Arc<dyn Fn(&Element) -> Result<bool> + Send + Sync>;

/// `filter(predicate)`.
pub(crate) struct Filter {
    pub(crate) input: Dataset,
    pub(crate) f: FilterFn,
}

impl Source for Filter {
    fn input(&self) -> Option<&Dataset> {
        Some(&self.input)
    }

    fn with_input(&self, input: Dataset) -> Option<Dataset> {
        Some(Dataset::from_source(Filter {
            input,
            f: self.f.clone(),
        }))
    }

    fn open(&self) -> Result<ElementIter> {
        let f = self.f.clone();
        Ok(Box::new(self.input.source().open()?.filter_map(
            move |e| match e {
                Ok(e) => match f(&e) {
                    Ok(true) => Some(Ok(e)),
                    Ok(false) => None,
                    Err(err) => Some(Err(err)),
                },
                Err(err) => Some(Err(err)),
            },
        )))
    }

    fn cardinality(&self) -> Cardinality {
        match self.input.cardinality() {
            Cardinality::Infinite => Cardinality::Infinite,
            _ => Cardinality::Unknown,
        }
    }
}

/// `ignore_errors()`: drops elements whose production failed.
pub(crate) struct IgnoreErrors(pub(crate) Dataset);

impl Source for IgnoreErrors {
    fn open(&self) -> Result<ElementIter> {
        Ok(Box::new(self.0.source().open()?.filter(|e| e.is_ok())))
    }

    fn cardinality(&self) -> Cardinality {
        match self.0.cardinality() {
            Cardinality::Infinite => Cardinality::Infinite,
            _ => Cardinality::Unknown,
        }
    }
}
