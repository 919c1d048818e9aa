//! The transformations of a [`crate::Dataset`], one family per file.

pub(crate) mod batch;
pub(crate) mod cache;
pub(crate) mod interleave;
pub(crate) mod map;
pub(crate) mod prefetch;
pub(crate) mod shuffle;
pub(crate) mod slicing;
