//! Scoring queries against a candidate table in blocks, so that a batch against millions
//! of candidates never holds the whole `[batch, candidates]` score matrix.

use ferroflow_core::{DType, Error, Result, Tensor};
use std::cmp::Ordering;

/// Scores held at once: `batch x block` stays under this many values.
const BLOCK_SCORES: usize = 1 << 22;

/// Checks a `[batch, dim]` query batch against a `[n, dim]` candidate table.
pub(crate) fn check_pair(op: &'static str, queries: &Tensor, candidates: &Tensor) -> Result<()> {
    let ok = queries.rank() == 2
        && candidates.rank() == 2
        && queries.shape()[1] == candidates.shape()[1]
        && queries.dtype().is_float()
        && candidates.dtype().is_float();
    if !ok {
        return Err(Error::invalid(
            op,
            format!(
                "queries [batch, dim] and candidates [n, dim] of floats are needed, got {} {:?} and {} {:?}",
                queries.dtype(),
                queries.shape(),
                candidates.dtype(),
                candidates.shape()
            ),
        ));
    }
    Ok(())
}

/// Calls `f(first candidate row, scores [batch, rows] row-major)` for each block of
/// candidate rows, scores being the dot products `queries . candidates[row]`.
fn for_each_block(
    queries: &Tensor,
    candidates: &Tensor,
    mut f: impl FnMut(usize, usize, &[f32]),
) -> Result<()> {
    let q = queries.cast(DType::F32)?;
    let c = candidates.cast(DType::F32)?;
    let (batch, n) = (q.shape()[0], c.shape()[0]);
    let block = (BLOCK_SCORES / batch.max(1)).clamp(1, n.max(1));
    let mut start = 0;
    while start < n {
        let rows = block.min(n - start);
        let part = c.slice(&[start, 0], &[rows as isize, -1])?;
        let s = q.matmul_t(&part, false, true)?;
        f(start, rows, &s.data::<f32>()?);
        start += rows;
    }
    Ok(())
}

/// Orders (score, index) best first: higher score, then lower index; NaN last.
fn better(a: &(f32, usize), b: &(f32, usize)) -> Ordering {
    let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
    key(b.0).total_cmp(&key(a.0)).then_with(|| a.1.cmp(&b.1))
}

/// The `k` best-scoring candidate rows of each query, best first (ties: the lower row
/// first, as `tf.math.top_k`): scores `[batch, k]` and rows `[batch, k]`.
pub(crate) fn top_k(
    queries: &Tensor,
    candidates: &Tensor,
    k: usize,
) -> Result<(Vec<f32>, Vec<usize>)> {
    check_pair("top_k", queries, candidates)?;
    let (batch, n) = (queries.shape()[0], candidates.shape()[0]);
    if k > n {
        return Err(Error::invalid(
            "top_k",
            format!("k = {k} exceeds the {n} candidates"),
        ));
    }
    let mut best: Vec<Vec<(f32, usize)>> = vec![Vec::with_capacity(2 * k + 1); batch];
    for_each_block(queries, candidates, |start, rows, scores| {
        for (b, row) in best.iter_mut().zip(scores.chunks_exact(rows)) {
            for (j, &s) in row.iter().enumerate() {
                row_push(b, (s, start + j), k);
            }
        }
    })?;
    let mut values = Vec::with_capacity(batch * k);
    let mut rows = Vec::with_capacity(batch * k);
    for mut b in best {
        b.sort_unstable_by(better);
        b.truncate(k);
        values.extend(b.iter().map(|e| e.0));
        rows.extend(b.iter().map(|e| e.1));
    }
    Ok((values, rows))
}

/// Adds a candidate to a row's running best list, which is cut back to the best `k`
/// whenever it doubles (amortised linear time).
fn row_push(best: &mut Vec<(f32, usize)>, e: (f32, usize), k: usize) {
    if k == 0 {
        return;
    }
    best.push(e);
    if best.len() > 2 * k {
        best.select_nth_unstable_by(k - 1, better);
        best.truncate(k);
    }
}

/// For each query, how many candidates score higher than `positive[i]` by more than
/// `slack[i]` (its rank among the candidates when the positive is one of them; the slack
/// absorbs the rounding between two summation orders of the same dot product).
pub(crate) fn count_above(
    queries: &Tensor,
    candidates: &Tensor,
    positive: &[f32],
    slack: &[f32],
) -> Result<Vec<usize>> {
    check_pair("count_above", queries, candidates)?;
    let mut above = vec![0usize; queries.shape()[0]];
    for_each_block(queries, candidates, |_, rows, scores| {
        for (i, (a, row)) in above.iter_mut().zip(scores.chunks_exact(rows)).enumerate() {
            let bar = positive[i] + slack[i];
            *a += row.iter().filter(|&&s| s > bar).count();
        }
    })?;
    Ok(above)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_matches_a_full_sort_and_breaks_ties_by_row() {
        let (batch, n, d) = (3, 1000, 4);
        let q: Vec<f32> = (0..batch * d)
            .map(|i| ((i * 7 % 11) as f32) - 5.0)
            .collect();
        // Rounded scores make many ties.
        let c: Vec<f32> = (0..n * d).map(|i| ((i * 13 % 7) as f32) - 3.0).collect();
        let qt = Tensor::from_vec(q.clone(), &[batch, d]).unwrap();
        let ct = Tensor::from_vec(c.clone(), &[n, d]).unwrap();
        for k in [1, 5, 100, 1000] {
            let (v, r) = top_k(&qt, &ct, k).unwrap();
            for b in 0..batch {
                let mut all: Vec<(f32, usize)> = (0..n)
                    .map(|j| ((0..d).map(|t| q[b * d + t] * c[j * d + t]).sum(), j))
                    .collect();
                all.sort_by(better);
                assert_eq!(
                    &r[b * k..(b + 1) * k],
                    all[..k].iter().map(|e| e.1).collect::<Vec<_>>()
                );
                assert_eq!(
                    &v[b * k..(b + 1) * k],
                    all[..k].iter().map(|e| e.0).collect::<Vec<_>>()
                );
            }
        }
        assert!(top_k(&qt, &ct, 1001).is_err());
        let above = count_above(&qt, &ct, &[0.0, 1e9, -1e9], &[0.0; 3]).unwrap();
        assert_eq!(above[1], 0);
        assert_eq!(above[2], n);
    }
}
