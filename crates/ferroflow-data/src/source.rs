//! The [`Source`] trait every pipeline stage implements, and [`Cardinality`].

use crate::Dataset;
use crate::Element;
use ferroflow_core::Result;

/// An iterator over a dataset's elements (one pass, an "epoch").
pub type ElementIter = Box<dyn Iterator<Item = Result<Element>> + Send>;

/// How many elements a dataset has (`tf.data.experimental.cardinality`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cardinality {
    /// Exactly this many.
    Known(u64),
    /// Never ends (`repeat()` without a count).
    Infinite,
    /// Cannot be known without iterating (after `filter`, for files...).
    Unknown,
}

impl Cardinality {
    /// Applies `f` to a known count; infinite and unknown stay as they are.
    pub fn map(self, f: impl FnOnce(u64) -> u64) -> Cardinality {
        match self {
            Cardinality::Known(n) => Cardinality::Known(f(n)),
            other => other,
        }
    }

    /// The count, if known.
    pub fn known(self) -> Option<u64> {
        match self {
            Cardinality::Known(n) => Some(n),
            _ => None,
        }
    }
}

/// One stage of a pipeline: it can start a fresh pass over its elements any number of times.
pub trait Source: Send + Sync {
    /// Starts a new pass.
    fn open(&self) -> Result<ElementIter>;
    /// The number of elements a pass yields.
    fn cardinality(&self) -> Cardinality;
    /// For a stage that reads files: the same stage reading only its share of them, files
    /// `index, index + num, ...` (`None` when it reads no files or has fewer than `num`).
    fn shard_files(&self, _num: usize, _index: usize) -> Option<Dataset> {
        None
    }
    /// For a stage with one input: that input.
    fn input(&self) -> Option<&Dataset> {
        None
    }
    /// For a stage with one input: the same stage on another input.
    fn with_input(&self, _input: Dataset) -> Option<Dataset> {
        None
    }
}

/// The paths `index, index + num, ...` of `paths`, when every shard gets at least one.
pub(crate) fn file_share(
    paths: &[std::path::PathBuf],
    num: usize,
    index: usize,
) -> Option<Vec<std::path::PathBuf>> {
    (num > 0 && index < num && paths.len() >= num)
        .then(|| paths.iter().skip(index).step_by(num).cloned().collect())
}
