//! [`Dataset`]: a lazy, composable, re-iterable pipeline (`tf.data.Dataset`).

use crate::source::{Cardinality, ElementIter, Source};
use crate::sources::{Concat, Generator, Range, Single, Slices, Zip};
use crate::transforms::batch::{Batch, Unbatch};
use crate::transforms::cache::{FileCache, MemoryCache};
use crate::transforms::interleave::{Interleave, Window};
use crate::transforms::map::{Filter, IgnoreErrors, Map};
use crate::transforms::prefetch::Prefetch;
use crate::transforms::shuffle::Shuffle;
use crate::transforms::slicing::{Enumerate, Repeat, Shard, Skip, Take};
use crate::Element;
use ferroflow_core::{Error, Result};
use rand::RngCore;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Pass as `num_parallel_calls` or a prefetch buffer size to let ferroflow choose
/// (`tf.data.AUTOTUNE`).
pub const AUTOTUNE: usize = usize::MAX;

/// Memory a prefetch buffer may hold under AUTOTUNE (`FERROFLOW_DATA_BUDGET_MB`, default 256).
fn memory_budget() -> usize {
    std::env::var("FERROFLOW_DATA_BUDGET_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(256)
        << 20
}

/// Worker threads for AUTOTUNE: the machine's cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A dataset: cheap to clone, iterated with [`Dataset::iter`] as many times as needed.
#[derive(Clone)]
pub struct Dataset(Arc<dyn Source>);

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Dataset cardinality={:?}>", self.cardinality())
    }
}

impl Dataset {
    /// A dataset from any [`Source`] (custom readers).
    pub fn from_source(source: impl Source + 'static) -> Dataset {
        Dataset(Arc::new(source))
    }

    pub(crate) fn source(&self) -> &dyn Source {
        self.0.as_ref()
    }

    /// One element per row of the given tensors (`from_tensor_slices`): a tensor, a tuple
    /// `(x, y)` or a map; all components must share their first dimension.
    pub fn from_tensor_slices(data: impl Into<Element>) -> Result<Dataset> {
        Ok(Self::from_source(Slices::new(data.into())?))
    }

    /// A single element holding the whole structure (`from_tensors`).
    pub fn from_tensors(data: impl Into<Element>) -> Dataset {
        Self::from_source(Single(data.into()))
    }

    /// Int64 scalars `start, start + step, ...` below `stop` (`range`).
    pub fn range(start: i64, stop: i64, step: i64) -> Result<Dataset> {
        if step == 0 {
            return Err(Error::invalid("range", "step must not be 0"));
        }
        Ok(Self::from_source(Range { start, stop, step }))
    }

    /// Elements from a generator; `make` is called once per pass (`from_generator`).
    pub fn from_generator<I, F>(make: F) -> Dataset
    where
        F: Fn() -> I + Send + Sync + 'static,
        I: Iterator<Item = Element> + Send + 'static,
    {
        Self::from_source(Generator {
            make: Arc::new(move || Box::new(make().map(Ok)) as ElementIter),
        })
    }

    /// Tuples of the elements of several datasets, until the shortest ends (`zip`).
    pub fn zip(datasets: &[Dataset]) -> Result<Dataset> {
        if datasets.is_empty() {
            return Err(Error::invalid("zip", "needs at least one dataset"));
        }
        Ok(Self::from_source(Zip(datasets.to_vec())))
    }

    /// This dataset's elements, then `other`'s (`concatenate`).
    pub fn concatenate(&self, other: &Dataset) -> Dataset {
        Self::from_source(Concat(self.clone(), other.clone()))
    }

    /// Applies `f` to every element, on the consumer's thread (`map`).
    pub fn map(&self, f: impl Fn(Element) -> Result<Element> + Send + Sync + 'static) -> Dataset {
        self.map_parallel(f, 1, true)
    }

    /// Applies `f` on `num_parallel_calls` worker threads. With [`AUTOTUNE`] it starts with
    /// one worker and adds one each time the consumer finds no result ready, up to the
    /// number of cores.
    /// With `deterministic` the order is the input order; otherwise elements come as they
    /// finish.
    pub fn map_parallel(
        &self,
        f: impl Fn(Element) -> Result<Element> + Send + Sync + 'static,
        num_parallel_calls: usize,
        deterministic: bool,
    ) -> Dataset {
        let autotune = num_parallel_calls == AUTOTUNE;
        let parallelism = if autotune {
            cores()
        } else {
            num_parallel_calls.max(1)
        };
        Self::from_source(Map {
            input: self.clone(),
            f: Arc::new(f),
            parallelism,
            autotune: autotune && parallelism > 1,
            deterministic,
        })
    }

    /// Keeps the elements for which `predicate` is true (`filter`).
    pub fn filter(
        &self,
        predicate: impl Fn(&Element) -> Result<bool> + Send + Sync + 'static,
    ) -> Dataset {
        Self::from_source(Filter {
            input: self.clone(),
            f: Arc::new(predicate),
        })
    }

    /// Drops elements whose production failed (`ignore_errors`).
    pub fn ignore_errors(&self) -> Dataset {
        Self::from_source(IgnoreErrors(self.clone()))
    }

    /// Shuffles with a buffer of `buffer_size` elements (`shuffle`). With a seed the order
    /// is reproducible; without one it follows the global seed
    /// (`ferroflow::random::set_seed`). `reshuffle_each_iteration` gives each pass a new order.
    pub fn shuffle(
        &self,
        buffer_size: usize,
        seed: Option<u64>,
        reshuffle_each_iteration: bool,
    ) -> Dataset {
        let seed = seed.unwrap_or_else(|| ferroflow_core::random::op_rng(None).next_u64());
        Self::from_source(Shuffle {
            input: self.clone(),
            buffer_size,
            seed,
            reshuffle_each_iteration,
            epoch: AtomicU64::new(0),
        })
    }

    /// Stacks `batch_size` consecutive elements (`batch`).
    pub fn batch(&self, batch_size: usize, drop_remainder: bool) -> Result<Dataset> {
        if batch_size == 0 {
            return Err(Error::invalid("batch", "batch_size must be positive"));
        }
        Ok(Self::from_source(Batch {
            input: self.clone(),
            size: batch_size,
            drop_remainder,
            padding: None,
        }))
    }

    /// Batches elements of different shapes, padding each component to the largest in the
    /// batch (or to `padded_shape` where it gives a size) with `padding_value`.
    pub fn padded_batch(
        &self,
        batch_size: usize,
        padded_shape: Option<Vec<Option<usize>>>,
        padding_value: f64,
        drop_remainder: bool,
    ) -> Result<Dataset> {
        if batch_size == 0 {
            return Err(Error::invalid(
                "padded_batch",
                "batch_size must be positive",
            ));
        }
        Ok(Self::from_source(Batch {
            input: self.clone(),
            size: batch_size,
            drop_remainder,
            padding: Some((padded_shape, padding_value)),
        }))
    }

    /// Splits batched elements back into rows (`unbatch`).
    pub fn unbatch(&self) -> Dataset {
        Self::from_source(Unbatch(self.clone()))
    }

    /// Re-batches to `batch_size` (`rebatch`).
    pub fn rebatch(&self, batch_size: usize, drop_remainder: bool) -> Result<Dataset> {
        self.unbatch().batch(batch_size, drop_remainder)
    }

    /// Repeats the dataset `count` times, or forever with `None` (`repeat`).
    pub fn repeat(&self, count: Option<u64>) -> Dataset {
        Self::from_source(Repeat {
            input: self.clone(),
            count,
        })
    }

    /// The first `count` elements (`take`).
    pub fn take(&self, count: u64) -> Dataset {
        Self::from_source(Take {
            input: self.clone(),
            count,
        })
    }

    /// All but the first `count` elements (`skip`).
    pub fn skip(&self, count: u64) -> Dataset {
        Self::from_source(Skip {
            input: self.clone(),
            count,
        })
    }

    /// The same pipeline with its file-reading source (TFRecord, CSV, text lines) reading
    /// only files `index, index + num, ...` (TF's FILE auto-shard policy); `None` when the
    /// pipeline reads no files, has fewer files than `num`, or a stage between the files
    /// and the end cannot be rebuilt on another input.
    pub fn shard_files(&self, num: usize, index: usize) -> Option<Dataset> {
        if let Some(d) = self.0.shard_files(num, index) {
            return Some(d);
        }
        let below = self.0.input()?.shard_files(num, index)?;
        self.0.with_input(below)
    }

    /// Every `num`-th element starting at `index` (`shard`).
    pub fn shard(&self, num: u64, index: u64) -> Result<Dataset> {
        if num == 0 || index >= num {
            return Err(Error::invalid(
                "shard",
                format!("need index < num, got index {index}, num {num}"),
            ));
        }
        Ok(Self::from_source(Shard {
            input: self.clone(),
            num,
            index,
        }))
    }

    /// `(index, element)` tuples (`enumerate`).
    pub fn enumerate(&self, start: u64) -> Dataset {
        Self::from_source(Enumerate {
            input: self.clone(),
            start,
        })
    }

    /// Maps each element to a dataset and interleaves their elements: `cycle_length`
    /// datasets are open at a time, `block_length` elements are taken from each in turn
    /// (`interleave`). With `num_parallel_calls` > 1 each open dataset is produced ahead on
    /// its own thread; the order stays deterministic.
    pub fn interleave(
        &self,
        f: impl Fn(Element) -> Result<Dataset> + Send + Sync + 'static,
        cycle_length: usize,
        block_length: usize,
        num_parallel_calls: usize,
    ) -> Dataset {
        let prefetch = if num_parallel_calls > 1 {
            2 * block_length.max(1)
        } else {
            0
        };
        let cycle_length = if cycle_length == AUTOTUNE {
            cores()
        } else {
            cycle_length
        };
        Self::from_source(Interleave {
            input: self.clone(),
            f: Arc::new(f),
            cycle_length,
            block_length,
            prefetch,
        })
    }

    /// Sliding windows of `size` elements, `shift` apart, taking every `stride`-th element,
    /// each stacked into one batched element (TF's `window(...)` followed by
    /// `flat_map(lambda w: w.batch(size))`).
    pub fn window(
        &self,
        size: usize,
        shift: usize,
        stride: usize,
        drop_remainder: bool,
    ) -> Result<Dataset> {
        if size == 0 || shift == 0 || stride == 0 {
            return Err(Error::invalid(
                "window",
                format!("size, shift and stride must be positive, got {size}, {shift}, {stride}"),
            ));
        }
        Ok(Self::from_source(Window {
            input: self.clone(),
            size,
            shift,
            stride,
            drop_remainder,
        }))
    }

    /// Keeps the first complete pass in memory and replays it (`cache()`).
    pub fn cache(&self) -> Dataset {
        Self::from_source(MemoryCache {
            input: self.clone(),
            stored: Arc::new(Mutex::new(None)),
        })
    }

    /// Writes the first complete pass to `path` and reads later passes from it, also in
    /// later runs (`cache(filename)`). Delete the file to refresh it.
    pub fn cache_file(&self, path: impl AsRef<std::path::Path>) -> Dataset {
        Self::from_source(FileCache {
            input: self.clone(),
            path: path.as_ref().to_path_buf(),
        })
    }

    /// Produces up to `buffer_size` elements ahead on a background thread ([`AUTOTUNE`]:
    /// sized from how often the consumer waits, within a memory budget).
    pub fn prefetch(&self, buffer_size: usize) -> Dataset {
        Self::from_source(Prefetch {
            input: self.clone(),
            buffer: (buffer_size != AUTOTUNE).then_some(buffer_size),
            memory_budget: memory_budget(),
        })
    }

    /// The number of elements, when known (`cardinality()`).
    pub fn cardinality(&self) -> Cardinality {
        self.0.cardinality()
    }

    /// Starts a pass over the elements.
    pub fn iter(&self) -> Result<ElementIter> {
        self.0.open()
    }

    /// Every element of one pass (errors stop at the first).
    pub fn collect(&self) -> Result<Vec<Element>> {
        self.iter()?.collect()
    }
}
