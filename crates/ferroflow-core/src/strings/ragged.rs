//! Rows of different lengths ([`Ragged`], `tf.RaggedTensor` of rank 2) and
//! `tf.strings.split`, which makes them.

use crate::dispatch::with_stored;
use crate::shape::numel;
use crate::{Error, Result, Stored, Tensor, TfString};

/// Rows of different lengths: row `i` is `values[row_splits[i]..row_splits[i + 1]]`, as a
/// rank-2 `tf.RaggedTensor`.
#[derive(Clone, Debug)]
pub struct Ragged {
    /// All rows' elements, one after another (rank 1).
    pub values: Tensor,
    /// Where each row starts in `values`, and a last entry that is `values`' length.
    pub row_splits: Vec<usize>,
}

impl Ragged {
    /// Rows from their values and splits (checked: starts at 0, never decreases, ends
    /// at `values`' length).
    pub fn new(values: Tensor, row_splits: Vec<usize>) -> Result<Ragged> {
        let ok = values.rank() == 1
            && row_splits.first() == Some(&0)
            && row_splits.windows(2).all(|w| w[0] <= w[1])
            && row_splits.last() == Some(&values.numel());
        if !ok {
            return Err(Error::invalid(
                "Ragged",
                format!(
                    "row_splits {row_splits:?} do not split values of shape {:?}",
                    values.shape()
                ),
            ));
        }
        Ok(Ragged { values, row_splits })
    }

    /// The number of rows.
    pub fn nrows(&self) -> usize {
        self.row_splits.len() - 1
    }

    /// The length of each row.
    pub fn row_lengths(&self) -> Vec<usize> {
        self.row_splits.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// A dense `[rows, width]` tensor (`RaggedTensor.to_tensor`): rows cut to `width` and
    /// padded with `fill` (a scalar of the values' dtype); `width` defaults to the longest
    /// row.
    pub fn to_tensor(&self, fill: &Tensor, width: Option<usize>) -> Result<Tensor> {
        if fill.numel() != 1 || fill.dtype() != self.values.dtype() {
            return Err(Error::invalid(
                "Ragged::to_tensor",
                format!(
                    "fill must be one {} value, got {} of shape {:?}",
                    self.values.dtype(),
                    fill.dtype(),
                    fill.shape()
                ),
            ));
        }
        let width = width.unwrap_or_else(|| self.row_lengths().into_iter().max().unwrap_or(0));
        let shape = [self.nrows(), width];
        with_stored!(self.values.dtype(), T => self.padded::<T>(fill, &shape))
    }

    fn padded<T: Stored>(&self, fill: &Tensor, shape: &[usize; 2]) -> Result<Tensor> {
        let values = self.values.contiguous_data::<T>()?;
        let fill = fill.contiguous_data::<T>()?[0].clone();
        let mut out = Vec::with_capacity(numel(shape));
        for w in self.row_splits.windows(2) {
            let row = &values[w[0]..w[1].min(w[0] + shape[1])];
            out.extend_from_slice(row);
            out.extend(std::iter::repeat_n(fill.clone(), shape[1] - row.len()));
        }
        Tensor::from_vec(out, shape)
    }
}

/// `tf.strings.split` of a rank-0 or rank-1 string tensor into one row per element. With
/// `sep` every occurrence splits (empty pieces are kept: `"a,,b"` gives `a`, ``, `b`);
/// without, runs of ASCII whitespace split and no piece is empty. `maxsplit` caps the
/// splits per element (the rest stays in the last piece, as TensorFlow keeps it).
pub fn split(t: &Tensor, sep: Option<&str>, maxsplit: Option<usize>) -> Result<Ragged> {
    if t.rank() > 1 {
        return Err(Error::invalid(
            "split",
            format!(
                "needs a scalar or a vector of strings, got shape {:?}",
                t.shape()
            ),
        ));
    }
    let limit = maxsplit.unwrap_or(usize::MAX);
    let mut values: Vec<TfString> = Vec::new();
    let mut splits = vec![0];
    for s in t.string_data("split")?.iter() {
        match sep.filter(|p| !p.is_empty()) {
            Some(p) => split_on(s, p.as_bytes(), limit, &mut values),
            None => split_whitespace(s, limit, &mut values),
        }
        splits.push(values.len());
    }
    Ragged::new(
        Tensor::from_vec(values, &[splits[splits.len() - 1]])?,
        splits,
    )
}

fn split_on(s: &TfString, sep: &[u8], limit: usize, out: &mut Vec<TfString>) {
    let mut start = 0;
    let mut at = 0;
    let mut n = 0;
    while n < limit && at + sep.len() <= s.len() {
        if &s[at..at + sep.len()] == sep {
            out.push(s.slice(start..at));
            at += sep.len();
            start = at;
            n += 1;
        } else {
            at += 1;
        }
    }
    out.push(s.slice(start..));
}

/// Splits on runs of ASCII whitespace as TensorFlow does: no empty pieces, except that
/// once `limit` pieces are cut the rest (leading whitespace skipped) is one more piece even
/// when empty; a `limit` of 0 keeps the element whole.
fn split_whitespace(s: &TfString, limit: usize, out: &mut Vec<TfString>) {
    if limit == 0 {
        out.push(s.clone());
        return;
    }
    let skip = |mut at: usize| {
        while at < s.len() && s[at].is_ascii_whitespace() {
            at += 1;
        }
        at
    };
    let mut at = skip(0);
    let mut n = 0;
    while at < s.len() {
        let start = at;
        while at < s.len() && !s[at].is_ascii_whitespace() {
            at += 1;
        }
        out.push(s.slice(start..at));
        n += 1;
        at = skip(at);
        if n == limit {
            out.push(s.slice(at..));
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_as_tensorflow_and_pads() {
        let t = Tensor::from_strings(&["", "a,,b", " x  y "], &[3]).unwrap();
        let r = split(&t, Some(","), None).unwrap();
        assert_eq!(r.row_splits, [0, 1, 4, 5]);
        assert_eq!(r.values.to_strings().unwrap(), ["", "a", "", "b", " x  y "]);
        let r = split(&t, None, None).unwrap();
        assert_eq!(r.row_splits, [0, 0, 1, 3]);
        assert_eq!(r.values.to_strings().unwrap(), ["a,,b", "x", "y"]);
        let r = split(
            &Tensor::from_strings(&["a b c d"], &[]).unwrap(),
            None,
            Some(2),
        )
        .unwrap();
        assert_eq!(r.values.to_strings().unwrap(), ["a", "b", "c d"]);
        let pad = Tensor::from_strings(&[""], &[]).unwrap();
        let d = split(&t, None, None)
            .unwrap()
            .to_tensor(&pad, Some(1))
            .unwrap();
        assert_eq!(d.shape(), [3, 1]);
        assert_eq!(d.to_strings().unwrap(), ["", "a,,b", "x"]);
        assert!(Ragged::new(Tensor::from_vec(vec![1i32], &[1]).unwrap(), vec![0, 2]).is_err());
    }
}
