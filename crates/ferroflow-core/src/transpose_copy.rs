//! Cache-blocked copy of a column-major matrix view into row-major order: the kernel
//! behind `contiguous()` of transposed views and the repacking of matmul operands.
//!
//! A plain row-by-row gather of a transposed view strides through memory and misses the
//! cache on every element; copying square tiles keeps both the rows read and the rows
//! written in L1.

use std::mem::MaybeUninit;

/// Tile edge in elements: a 32×32 tile of f32 touches 64 source and 32 destination lines.
const TILE: usize = 32;

/// Elements from which a copy is split across threads.
const PAR_MIN: usize = 1 << 16;

/// Fewest elements in a band of a matrix at most one tile wide (a band per task).
const BAND_MIN: usize = 1 << 13;

/// Writes `dst[i * cols + j] = src[offset + i + j * col_stride]` for every `i < rows`,
/// `j < cols`: the `rows × cols` matrix stored with unit row stride (column-major, columns
/// `col_stride` apart) becomes row-major. Every element of `dst[..rows * cols]` is written.
///
/// # Panics
/// If `dst` is shorter than `rows * cols` or the view reaches past `src`.
pub(crate) fn transpose_into<T: Copy + Send + Sync>(
    src: &[T],
    offset: usize,
    rows: usize,
    cols: usize,
    col_stride: usize,
    dst: &mut [MaybeUninit<T>],
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        dst.len() >= rows * cols,
        "transpose_into: destination too short"
    );
    assert!(
        offset + (rows - 1) + (cols - 1) * col_stride < src.len(),
        "transpose_into: view reaches past its buffer"
    );
    // Bands of TILE rows, or for a narrow matrix (one tile wide) of at least BAND_MIN
    // elements, whose source columns stay in cache as whole runs; large copies split their
    // bands across threads.
    let band_rows = if cols <= TILE {
        TILE.max(BAND_MIN / cols)
    } else {
        TILE
    };
    let band = band_rows * cols;
    let copy_band = |start: usize, out: &mut [MaybeUninit<T>]| {
        let i0 = start / cols;
        let i1 = i0 + out.len() / cols;
        let at = offset + i0;
        match cols {
            // Image planes (channels first to channels last): one pass that interleaves.
            2 => return interleave::<T, 2>(src, at, col_stride, out),
            3 => return interleave::<T, 3>(src, at, col_stride, out),
            4 => return interleave::<T, 4>(src, at, col_stride, out),
            _ => {}
        }
        for j0 in (0..cols).step_by(TILE) {
            let j1 = (j0 + TILE).min(cols);
            for i in i0..i1 {
                let out = &mut out[(i - i0) * cols + j0..(i - i0) * cols + j1];
                let column = &src[offset + i + j0 * col_stride..];
                for (jj, d) in out.iter_mut().enumerate() {
                    d.write(column[jj * col_stride]);
                }
            }
        }
    };
    let dst = &mut dst[..rows * cols];
    // An interleaving pass runs at memory speed: it pays to split only when large.
    let par_min = if cols <= 4 { 16 * PAR_MIN } else { PAR_MIN };
    if rows * cols >= par_min && rows > band_rows && crate::parallel::num_threads() > 1 {
        use rayon::prelude::*;
        dst.par_chunks_mut(band)
            .enumerate()
            .for_each(|(b, out)| copy_band(b * band, out));
    } else {
        for (b, out) in dst.chunks_mut(band).enumerate() {
            copy_band(b * band, out);
        }
    }
}

/// `out[i * C + j] = src[at + i + j * col_stride]` for the rows of `out`: `C` source
/// columns read as runs and written interleaved.
#[inline]
fn interleave<T: Copy, const C: usize>(
    src: &[T],
    at: usize,
    col_stride: usize,
    out: &mut [MaybeUninit<T>],
) {
    let rows = out.len() / C;
    let columns: [&[T]; C] = std::array::from_fn(|j| &src[at + j * col_stride..][..rows]);
    for (i, d) in out.chunks_exact_mut(C).enumerate() {
        for (d, column) in d.iter_mut().zip(&columns) {
            d.write(column[i]);
        }
    }
}

/// [`transpose_into`] on an initialised destination.
pub(crate) fn transpose_into_init<T: Copy + Send + Sync>(
    src: &[T],
    offset: usize,
    rows: usize,
    cols: usize,
    col_stride: usize,
    dst: &mut [T],
) {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and only initialised values are
    // written through the reinterpreted slice, so `dst` stays initialised.
    let dst = unsafe { &mut *(dst as *mut [T] as *mut [MaybeUninit<T>]) };
    transpose_into(src, offset, rows, cols, col_stride, dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_transpose_for_ragged_tiles() {
        let narrow = [(1000, 2, 1), (50_000, 3, 7), (9000, 4, 0), (70_000, 5, 3)];
        for (rows, cols, extra) in [(1, 1, 0), (3, 70, 2), (33, 65, 0), (64, 31, 5)]
            .into_iter()
            .chain(narrow)
        {
            let stride = rows + extra;
            let src: Vec<u32> = (0..(stride * cols + 3) as u32).collect();
            let mut dst = vec![u32::MAX; rows * cols];
            transpose_into_init(&src, 3, rows, cols, stride, &mut dst);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(dst[i * cols + j], src[3 + i + j * stride]);
                }
            }
        }
    }
}
