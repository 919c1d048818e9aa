//! The input side of the integer products (`vnni`, `madd_avx2`): rows of int8 values
//! converted, a tile of rows at a time, into the type and row stride a kernel reads.

/// Input rows converted per tile: a tile's converted rows stay in L2 while every channel
/// block reads them.
pub(super) const TILE_ROWS: usize = 64;

/// Copies rows of `k` int8 values from `src` into rows of `stride` values of `dst`, each
/// value through `convert`; what lies past `k` in each row of `dst` is left as it is.
#[inline]
pub(super) fn convert_rows<T>(
    src: &[i8],
    k: usize,
    dst: &mut [T],
    stride: usize,
    convert: impl Fn(i8) -> T,
) {
    for (s, d) in src.chunks_exact(k).zip(dst.chunks_exact_mut(stride)) {
        for (d, &s) in d.iter_mut().zip(s) {
            *d = convert(s);
        }
    }
}

/// Runs `kernel(rows, first, count)` over the `m` rows of `input` (`k` int8 values each),
/// [`TILE_ROWS`] at a time: `rows` holds rows `first..first + count`, converted by
/// `convert` into rows of `stride` values, zero past `k`.
pub(super) fn for_converted_tiles<T: Copy + Default>(
    input: &[i8],
    k: usize,
    m: usize,
    stride: usize,
    buf: &mut Vec<T>,
    convert: impl Fn(i8) -> T + Copy,
    mut kernel: impl FnMut(&[T], usize, usize),
) {
    let mut first = 0;
    while first < m {
        let count = (m - first).min(TILE_ROWS);
        buf.clear();
        buf.resize(count * stride, T::default());
        convert_rows(
            &input[first * k..(first + count) * k],
            k,
            buf,
            stride,
            convert,
        );
        kernel(buf, first, count);
        first += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_every_row_once_with_zero_padding() {
        let (k, m, stride) = (3, 150, 4);
        let input: Vec<i8> = (0..k * m).map(|i| (i % 251) as i8).collect();
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        for_converted_tiles(
            &input,
            k,
            m,
            stride,
            &mut buf,
            |v| v as i16 + 1000,
            |rows, first, count| {
                assert_eq!(rows.len(), count * stride);
                assert!(count <= TILE_ROWS);
                for (i, row) in rows.chunks_exact(stride).enumerate() {
                    let src = &input[(first + i) * k..(first + i + 1) * k];
                    assert!(row[..k]
                        .iter()
                        .zip(src)
                        .all(|(&d, &s)| d == s as i16 + 1000));
                    assert_eq!(row[k], 0);
                    seen.push(first + i);
                }
            },
        );
        assert_eq!(seen, (0..m).collect::<Vec<_>>());
    }
}
