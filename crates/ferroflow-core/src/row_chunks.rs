//! Running a large batch as chunks of rows, one after another or one per thread: what
//! the TFLite interpreter and compiled functions do when every op of a model keeps the
//! rows of its first dimension apart.
//!
//! A vision model's early activations are megabytes per image: at batch 16 each layer's
//! output leaves the caches before the next layer reads it, and every layer streams from
//! memory. A batch can instead run as chunks of a few rows whose activations stay in
//! cache, and on several threads as one chunk per thread, which needs no synchronisation
//! between layers.

use crate::{Result, Tensor};

/// The most bytes of one activation a chunk may hold: a chunk's largest activation stays
/// in a core's share of the last-level cache.
pub const CHUNK_ACTIVATION_BYTES: usize = 4 << 20;

/// The bytes of the largest activation from which a batch runs in chunks. Below, the
/// whole batch's activations stay in the last-level cache, and a whole batch keeps the
/// kernels' tiles fuller (an int8 MobileNetV2 at batch 16, 18 MiB, ran 12% slower on two
/// threads in chunks; the float one, 73 MiB, 20% faster).
pub const SPLIT_FROM_BYTES: usize = 32 << 20;

/// The rows of each chunk that a batch of `batch` rows, whose largest activation takes
/// `row_bytes` per row, runs as on `threads` threads (see [`chunk_sizes`]); `None` when
/// the batch is small enough to run whole.
pub fn chunk_plan(batch: usize, row_bytes: usize, threads: usize) -> Option<Vec<usize>> {
    if batch < 2 || batch.saturating_mul(row_bytes) < SPLIT_FROM_BYTES {
        return None;
    }
    let rows = (CHUNK_ACTIVATION_BYTES / row_bytes.max(1)).max(1);
    Some(chunk_sizes(batch, rows, threads))
}

/// The rows of each chunk of a batch of `batch` rows: at most `max_rows` each, and as many
/// chunks as a multiple of `threads` where the rows allow, so that chunk `j` going to
/// thread `j % threads` gives every thread the same rows within one; larger chunks first.
pub fn chunk_sizes(batch: usize, max_rows: usize, threads: usize) -> Vec<usize> {
    let mut n = batch.div_ceil(max_rows.max(1));
    if threads > 1 && batch >= threads {
        n = n.next_multiple_of(threads);
    }
    let n = n.clamp(1, batch.max(1));
    (0..n)
        .map(|i| batch / n + usize::from(i < batch % n))
        .collect()
}

/// `x` cut along its first dimension into consecutive pieces of `sizes` rows.
pub fn cut_rows(x: &Tensor, sizes: &[usize]) -> Result<Vec<Tensor>> {
    let mut begin = vec![0usize; x.rank()];
    let mut size = vec![-1isize; x.rank()];
    sizes
        .iter()
        .map(|&rows| {
            size[0] = rows as isize;
            let piece = x.slice(&begin, &size);
            begin[0] += rows;
            piece
        })
        .collect()
}

/// The chunks of `inputs` (each cut into pieces of `sizes` rows): chunk `c` holds piece
/// `c` of every input.
pub fn chunks_of(inputs: &[Tensor], sizes: &[usize]) -> Result<Vec<Vec<Tensor>>> {
    let cuts = inputs
        .iter()
        .map(|x| cut_rows(x, sizes))
        .collect::<Result<Vec<_>>>()?;
    Ok((0..sizes.len())
        .map(|c| cuts.iter().map(|pieces| pieces[c].clone()).collect())
        .collect())
}

/// Each output joined along its first dimension from the chunks' outputs, in order.
pub fn join_rows(outs: &[Vec<Tensor>]) -> Result<Vec<Tensor>> {
    let n = outs.first().map_or(0, Vec::len);
    (0..n)
        .map(|o| {
            let parts: Vec<Tensor> = outs.iter().map(|out| out[o].clone()).collect();
            Tensor::concat(&parts, 0)
        })
        .collect()
}

/// Runs `run(j)` for the chunks `0..chunks` in the current rayon pool (the global one
/// outside any), chunk `j` on thread `j % threads` with its kernels kept on that thread
/// ([`crate::on_calling_thread`]); the results in chunk order. With one thread the chunks
/// run one after another on the calling thread.
pub fn run_across<T: Send>(
    chunks: usize,
    threads: usize,
    run: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let alone = |j: usize| crate::on_calling_thread(|| run(j));
    if threads < 2 {
        return (0..chunks).map(alone).collect();
    }
    use rayon::prelude::*;
    let per_thread: Vec<Vec<(usize, T)>> = (0..threads)
        .into_par_iter()
        .map(|t| {
            (t..chunks)
                .step_by(threads)
                .map(|j| Ok((j, alone(j)?)))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    let mut done: Vec<(usize, T)> = per_thread.into_iter().flatten().collect();
    done.sort_by_key(|&(j, _)| j);
    Ok(done.into_iter().map(|(_, out)| out).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_batch_evenly_per_thread() {
        for batch in 1..40 {
            for max_rows in 1..6 {
                for threads in 1..4 {
                    let sizes = chunk_sizes(batch, max_rows, threads);
                    assert_eq!(sizes.iter().sum::<usize>(), batch);
                    assert!(sizes.iter().all(|&r| r >= 1 && r <= max_rows.max(1)));
                    assert!(sizes.windows(2).all(|w| w[0] >= w[1]));
                    if batch >= threads {
                        let per: Vec<usize> = (0..threads)
                            .map(|t| sizes.iter().skip(t).step_by(threads).sum())
                            .collect();
                        let (lo, hi) = (per.iter().min().unwrap(), per.iter().max().unwrap());
                        assert!(hi - lo <= 1, "{batch} rows, {max_rows} per chunk: {per:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn small_batches_run_whole() {
        assert_eq!(chunk_plan(16, 1 << 20, 2), None);
        assert_eq!(chunk_plan(1, 64 << 20, 2), None);
        assert_eq!(chunk_plan(16, 4 << 20, 2), Some(vec![1; 16]));
        assert_eq!(chunk_plan(4, 16 << 20, 3), Some(vec![1; 4]));
    }

    #[test]
    fn pieces_are_consecutive_rows_and_join_back() {
        let x = Tensor::from_vec((0..30).map(|v| v as f32).collect(), &[10, 3]).unwrap();
        let pieces = cut_rows(&x, &[4, 3, 3]).unwrap();
        let shapes: Vec<Vec<usize>> = pieces.iter().map(|p| p.shape().to_vec()).collect();
        assert_eq!(shapes, [vec![4, 3], vec![3, 3], vec![3, 3]]);
        let chunks = chunks_of(std::slice::from_ref(&x), &[4, 3, 3]).unwrap();
        assert_eq!(
            join_rows(&chunks).unwrap()[0].to_vec::<f32>().unwrap(),
            x.to_vec::<f32>().unwrap()
        );
    }

    #[test]
    fn chunks_come_back_in_order_from_any_thread_count() {
        for threads in 1..4 {
            let got = run_across(7, threads, |j| Ok(j * 10)).unwrap();
            assert_eq!(got, (0..7).map(|j| j * 10).collect::<Vec<_>>());
        }
    }
}
