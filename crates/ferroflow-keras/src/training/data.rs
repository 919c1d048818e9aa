//! Helpers for in-memory training data: sample counts, batches, validation splits.

use ferroflow_core::{DType, Error, Result, Tensor};

/// The number of samples (first dimension), which all arrays must share.
pub fn num_samples(arrays: &[Tensor]) -> Result<usize> {
    let first = arrays
        .first()
        .ok_or_else(|| Error::invalid("fit", "no input arrays"))?;
    if first.rank() == 0 {
        return Err(Error::invalid("fit", "inputs must have a batch dimension"));
    }
    let n = first.shape()[0];
    for a in arrays {
        if a.rank() == 0 || a.shape()[0] != n {
            return Err(Error::invalid(
                "fit",
                format!(
                    "all arrays must have the same number of samples: {:?}",
                    arrays
                        .iter()
                        .map(|t| t.shape().to_vec())
                        .collect::<Vec<_>>()
                ),
            ));
        }
    }
    Ok(n)
}

/// Rows `start..end` of each array (views, no copy).
pub fn slice_rows(arrays: &[Tensor], start: usize, end: usize) -> Result<Vec<Tensor>> {
    arrays
        .iter()
        .map(|a| {
            let mut begin = vec![0; a.rank()];
            begin[0] = start;
            let mut size: Vec<isize> = vec![-1; a.rank()];
            size[0] = (end - start) as isize;
            a.slice(&begin, &size)
        })
        .collect()
}

/// The rows at `idx` of each array.
pub fn gather_rows(arrays: &[Tensor], idx: &Tensor) -> Result<Vec<Tensor>> {
    arrays.iter().map(|a| a.gather(idx, 0)).collect()
}

/// Index tensor from positions.
pub fn index_tensor(idx: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(
        idx.iter().map(|&i| i as i64).collect::<Vec<_>>(),
        &[idx.len()],
    )
}

/// Splits off the last `fraction` of samples for validation (Keras's `validation_split`,
/// taken before shuffling).
pub fn split_tail(arrays: &[Tensor], fraction: f64) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(Error::invalid(
            "fit",
            format!("validation_split must be in [0, 1), got {fraction}"),
        ));
    }
    let n = num_samples(arrays)?;
    let val = (n as f64 * fraction).floor() as usize;
    let cut = n - val;
    if fraction > 0.0 && (val == 0 || cut == 0) {
        return Err(Error::invalid(
            "fit",
            format!("validation_split {fraction} of {n} samples leaves an empty split"),
        ));
    }
    Ok((slice_rows(arrays, 0, cut)?, slice_rows(arrays, cut, n)?))
}

/// Per-sample weights from `class_weight` (labels are the first target's class ids, or
/// the argmax of one-hot rows) times the explicit `sample_weight`.
pub fn sample_weights(
    y: &Tensor,
    class_weight: Option<&std::collections::HashMap<usize, f64>>,
    sample_weight: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    let n = y.shape().first().copied().unwrap_or(0);
    let mut w: Option<Vec<f32>> = match sample_weight {
        Some(s) => {
            if s.numel() != n {
                return Err(Error::shapes(
                    "fit",
                    "sample_weight needs one weight per sample",
                    s.shape(),
                    y.shape(),
                ));
            }
            Some(s.cast(DType::F32)?.to_vec::<f32>()?)
        }
        None => None,
    };
    if let Some(cw) = class_weight {
        let per_row = y.numel() / n.max(1);
        let v = y.to_f64_vec();
        let labels: Vec<usize> = if per_row <= 1 {
            v.iter().map(|&x| x as usize).collect()
        } else {
            v.chunks(per_row)
                .map(|r| {
                    r.iter()
                        .enumerate()
                        .fold((0, f64::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
                        .0
                })
                .collect()
        };
        let ws = w.get_or_insert_with(|| vec![1.0; n]);
        for (wi, l) in ws.iter_mut().zip(labels) {
            *wi *= cw.get(&l).copied().unwrap_or(1.0) as f32;
        }
    }
    w.map(|w| Tensor::from_vec(w, &[n])).transpose()
}

/// One or several arrays, as `fit`, `evaluate` and `predict` take them: a single tensor
/// for a single-input model, a list for several inputs (or outputs).
#[derive(Clone, Debug)]
pub struct Arrays(pub Vec<Tensor>);

impl From<Tensor> for Arrays {
    fn from(t: Tensor) -> Self {
        Arrays(vec![t])
    }
}

impl From<&Tensor> for Arrays {
    fn from(t: &Tensor) -> Self {
        Arrays(vec![t.clone()])
    }
}

impl From<Vec<Tensor>> for Arrays {
    fn from(v: Vec<Tensor>) -> Self {
        Arrays(v)
    }
}

impl From<&Vec<Tensor>> for Arrays {
    fn from(v: &Vec<Tensor>) -> Self {
        Arrays(v.clone())
    }
}

impl From<&[Tensor]> for Arrays {
    fn from(v: &[Tensor]) -> Self {
        Arrays(v.to_vec())
    }
}

impl<const N: usize> From<[Tensor; N]> for Arrays {
    fn from(v: [Tensor; N]) -> Self {
        Arrays(v.to_vec())
    }
}

impl<const N: usize> From<&[Tensor; N]> for Arrays {
    fn from(v: &[Tensor; N]) -> Self {
        Arrays(v.to_vec())
    }
}
