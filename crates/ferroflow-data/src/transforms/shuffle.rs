//! `shuffle(buffer_size, seed, reshuffle_each_iteration)`: TF's buffered shuffle.

use crate::source::{Cardinality, ElementIter, Source};
use crate::{Dataset, Element};
use ferroflow_core::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) struct Shuffle {
    pub(crate) input: Dataset,
    pub(crate) buffer_size: usize,
    pub(crate) seed: u64,
    pub(crate) reshuffle_each_iteration: bool,
    pub(crate) epoch: AtomicU64,
}

impl Source for Shuffle {
    fn input(&self) -> Option<&Dataset> {
        Some(&self.input)
    }

    fn with_input(&self, input: Dataset) -> Option<Dataset> {
        Some(Dataset::from_source(Shuffle {
            input,
            buffer_size: self.buffer_size,
            seed: self.seed,
            reshuffle_each_iteration: self.reshuffle_each_iteration,
            epoch: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    fn open(&self) -> Result<ElementIter> {
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed);
        let key = if self.reshuffle_each_iteration {
            self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        } else {
            self.seed
        };
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        let mut upstream = self.input.source().open()?;
        let size = self.buffer_size.max(1);
        let mut buffer: Vec<Element> = Vec::with_capacity(size.min(1 << 16));
        let mut pending_error = None;
        let mut exhausted = false;
        Ok(Box::new(std::iter::from_fn(move || {
            if let Some(e) = pending_error.take() {
                return Some(Err(e));
            }
            while !exhausted && buffer.len() < size {
                match upstream.next() {
                    Some(Ok(e)) => buffer.push(e),
                    Some(Err(e)) => {
                        if buffer.is_empty() {
                            return Some(Err(e));
                        }
                        pending_error = Some(e);
                        break;
                    }
                    None => exhausted = true,
                }
            }
            if buffer.is_empty() {
                return None;
            }
            let i = rng.random_range(0..buffer.len());
            Some(Ok(buffer.swap_remove(i)))
        })))
    }

    fn cardinality(&self) -> Cardinality {
        self.input.cardinality()
    }
}
