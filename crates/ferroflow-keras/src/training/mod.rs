//! Training: `fit`, `evaluate`, `train_on_batch`, `test_on_batch`, the progress bar and
//! the [`History`] that `fit` returns.

pub mod data;
mod epochs;
pub mod fit;
pub mod history;
mod overlap;
pub mod progress;
mod replicated;
pub mod step;

pub use fit::{FitOptions, Verbose};
pub use history::{History, Logs};
