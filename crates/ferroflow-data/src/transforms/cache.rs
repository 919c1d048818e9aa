//! `cache()` in memory: the first complete pass is kept and replayed afterwards.

use crate::source::{Cardinality, ElementIter, Source};
use crate::{Dataset, Element};
use ferroflow_core::Result;
use std::sync::{Arc, Mutex};

pub(crate) struct MemoryCache {
    pub(crate) input: Dataset,
    pub(crate) stored: Arc<Mutex<Option<Arc<Vec<Element>>>>>,
}

impl Source for MemoryCache {
    fn open(&self) -> Result<ElementIter> {
        if let Some(all) = self
            .stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(Box::new((0..all.len()).map(move |i| Ok(all[i].clone()))));
        }
        let mut upstream = self.input.source().open()?;
        let stored = self.stored.clone();
        let mut seen: Option<Vec<Element>> = Some(Vec::new());
        Ok(Box::new(std::iter::from_fn(move || {
            match upstream.next() {
                Some(Ok(e)) => {
                    if let Some(s) = seen.as_mut() {
                        s.push(e.clone());
                    }
                    Some(Ok(e))
                }
                Some(Err(e)) => {
                    // A pass with errors is not cached.
                    seen = None;
                    Some(Err(e))
                }
                None => {
                    if let Some(s) = seen.take() {
                        *stored.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(s));
                    }
                    None
                }
            }
        })))
    }

    fn cardinality(&self) -> Cardinality {
        self.input.cardinality()
    }
}
