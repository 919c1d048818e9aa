//! Sparse-gradient helpers: merging repeated rows before an update.

use ferroflow_core::{DType, IndexedSlices, Result, Tensor};

/// The same slices with each row index once (repeated rows summed), in first-seen order.
pub(crate) fn dedupe(s: &IndexedSlices) -> Result<IndexedSlices> {
    let idx: Vec<i64> = s
        .indices
        .to_f64_vec()
        .into_iter()
        .map(|v| v as i64)
        .collect();
    // Row ids are small integers under no adversary's control that matters here: a fast
    // hash, sized once (a step's rows are typically all distinct).
    let mut first = rustc_hash::FxHashMap::with_capacity_and_hasher(idx.len(), Default::default());
    let mut unique = Vec::new();
    let segment: Vec<i64> = idx
        .iter()
        .map(|&i| {
            *first.entry(i).or_insert_with(|| {
                unique.push(i);
                unique.len() as i64 - 1
            })
        })
        .collect();
    if unique.len() == idx.len() {
        return Ok(s.clone());
    }
    let mut shape = s.values.shape().to_vec();
    shape[0] = unique.len();
    let seg = Tensor::from_vec(segment, &[idx.len(), 1])?;
    let values = Tensor::scatter_nd(&seg, &s.values, &shape)?;
    Ok(IndexedSlices {
        indices: Tensor::from_vec(unique, &[shape[0]])?.cast(DType::I64)?,
        values,
        dense_shape: s.dense_shape.clone(),
    })
}
