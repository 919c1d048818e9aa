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
    fn input(&self) -> Option<&Dataset> {
        Some(&self.input)
    }

    fn with_input(&self, input: Dataset) -> Option<Dataset> {
        Some(Dataset::from_source(MemoryCache {
            input,
            stored: Default::default(),
        }))
    }

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

/// `cache(filename)`: the first complete pass is written to a file (TFRecord framing,
/// CRC-checked) and later passes, in this or another process, read it back.
pub(crate) struct FileCache {
    pub(crate) input: Dataset,
    pub(crate) path: std::path::PathBuf,
}

impl Source for FileCache {
    fn open(&self) -> Result<ElementIter> {
        use crate::tfrecord::{TFRecordReader, TFRecordWriter};
        if self.path.exists() {
            let mut reader = TFRecordReader::open(&self.path)?;
            return Ok(Box::new(std::iter::from_fn(move || {
                reader
                    .next_record()
                    .map(|r| r.and_then(|bytes| crate::codec::decode(&bytes)))
            })));
        }
        let mut upstream = self.input.source().open()?;
        // The cache file appears (whole) only when a pass completes; an abandoned or
        // failed pass leaves nothing behind.
        let mut writer = Some(PendingCache(Some(TFRecordWriter::create(&self.path)?)));
        Ok(Box::new(std::iter::from_fn(move || {
            match upstream.next() {
                Some(Ok(e)) => {
                    if let Some(w) = writer.as_mut() {
                        let mut buf = Vec::new();
                        if crate::codec::encode(&e, &mut buf)
                            .and_then(|_| w.write(&buf))
                            .is_err()
                        {
                            writer = None;
                        }
                    }
                    Some(Ok(e))
                }
                Some(Err(e)) => {
                    // An incomplete pass is never published as the cache.
                    writer = None;
                    Some(Err(e))
                }
                None => {
                    if let Some(w) = writer.take() {
                        let _ = w.publish();
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

/// A cache file being written: published by a complete pass, discarded otherwise
/// (an error, or the iterator dropped part-way).
struct PendingCache(Option<crate::tfrecord::TFRecordWriter>);

impl PendingCache {
    fn write(&mut self, record: &[u8]) -> Result<()> {
        match self.0.as_mut() {
            Some(w) => w.write(record),
            None => Ok(()),
        }
    }

    fn publish(mut self) -> Result<()> {
        self.0.take().map_or(Ok(()), |w| w.close())
    }
}

impl Drop for PendingCache {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.discard();
        }
    }
}
