//! ferroflow-data: `tf.data`-style input pipelines.
//!
//! A [`Dataset`] is a lazy pipeline of [`Element`]s (tensors or nested tuples/maps of
//! tensors) built from tensors, generators or files and transformed with `map` (on worker
//! threads), `shuffle`, `batch`, `prefetch` and the rest of TF's operators. Iterating it
//! twice gives two passes (epochs); dropping an iterator stops its worker threads.
#![warn(missing_docs)]

pub mod codec;
mod dataset;
mod element;
pub mod example;
pub mod images;
pub mod readers;
pub mod source;
mod sources;
pub mod tfrecord;
mod transforms;

pub use dataset::{Dataset, AUTOTUNE};
pub use element::Element;
pub use example::{parse_example, Example, FeatureSpec};
pub use images::{image_dataset_from_directory, ImageDirectoryOptions};
pub use readers::{
    csv_dataset, idx_from_bytes, npy_dataset, read_idx, text_line_dataset, CsvColumn,
};
pub use source::{Cardinality, ElementIter, Source};
pub use tfrecord::{
    tfrecord_dataset, tfrecord_dataset_with, Compression, TFRecordReader, TFRecordWriter,
};
