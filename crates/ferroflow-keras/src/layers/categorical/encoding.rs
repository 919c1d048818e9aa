//! How categorical layers (lookups, `Hashing`, `CategoryEncoding`) turn indices into
//! outputs: Keras's `output_mode`.

use ferroflow_core::{DType, Error, Result, Tensor};

/// Keras's `output_mode` of the categorical layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    /// The indices themselves (int64).
    Int,
    /// One row of `depth` per index, 1 at the index.
    OneHot,
    /// Per sample (the last axis), 1 at every index present.
    MultiHot,
    /// Per sample, how many times each index occurs.
    Count,
    /// Per sample, counts times each index's inverse document frequency.
    TfIdf,
}

impl OutputMode {
    const ALL: [OutputMode; 5] = [
        OutputMode::Int,
        OutputMode::OneHot,
        OutputMode::MultiHot,
        OutputMode::Count,
        OutputMode::TfIdf,
    ];

    /// The Keras name (`"multi_hot"`).
    pub fn name(self) -> &'static str {
        match self {
            OutputMode::Int => "int",
            OutputMode::OneHot => "one_hot",
            OutputMode::MultiHot => "multi_hot",
            OutputMode::Count => "count",
            OutputMode::TfIdf => "tf_idf",
        }
    }

    /// The mode Keras calls `name` (`"binary"` is Keras's old name of `multi_hot`), among
    /// those `allowed` for `layer`.
    pub fn parse(layer: &'static str, name: &str, allowed: &[OutputMode]) -> Result<OutputMode> {
        let name = if name == "binary" { "multi_hot" } else { name };
        Self::ALL
            .into_iter()
            .find(|m| m.name() == name && allowed.contains(m))
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|m| m.name()).collect();
                Error::invalid(
                    layer,
                    format!("output_mode must be one of {names:?}, got {name:?}"),
                )
            })
    }

    /// The modes every categorical layer has.
    pub const BASIC: [OutputMode; 4] = [
        OutputMode::Int,
        OutputMode::OneHot,
        OutputMode::MultiHot,
        OutputMode::Count,
    ];

    /// The modes of the lookup layers (the basic ones and tf_idf).
    pub const LOOKUP: [OutputMode; 5] = Self::ALL;
}

/// Encodes int64 `indices` as Keras's `encode_categorical_inputs` does: `Int` casts to
/// `int_dtype`; `OneHot` appends an axis of `depth` (after dropping a last axis of 1);
/// the others reduce the last axis (a scalar is one sample of one index) to `depth` bins.
/// Indices outside `0..depth` set no bin. `idf` weighs the bins for `TfIdf`.
pub fn encode(
    indices: &Tensor,
    mode: OutputMode,
    depth: usize,
    idf: Option<&[f32]>,
    int_dtype: DType,
) -> Result<Tensor> {
    if mode == OutputMode::Int {
        return indices.cast(int_dtype);
    }
    let idx = indices.cast(DType::I64)?.to_vec::<i64>()?;
    let shape = indices.shape();
    let bin = |i: i64| usize::try_from(i).ok().filter(|&b| b < depth);
    if mode == OutputMode::OneHot {
        let mut out_shape = shape.to_vec();
        if out_shape.len() > 1 && out_shape.last() == Some(&1) {
            out_shape.pop();
        }
        out_shape.push(depth);
        let mut out = vec![0f32; idx.len() * depth];
        for (r, &i) in idx.iter().enumerate() {
            if let Some(b) = bin(i) {
                out[r * depth + b] = 1.0;
            }
        }
        return Tensor::from_vec(out, &out_shape);
    }
    // A scalar is one sample holding one index.
    let (rows, width, mut out_shape) = match shape.split_last() {
        None => (1, 1, Vec::new()),
        Some((&w, rest)) => (rest.iter().product(), w, rest.to_vec()),
    };
    out_shape.push(depth);
    let mut out = vec![0f32; rows * depth];
    for (k, &i) in idx.iter().enumerate() {
        if let Some(b) = bin(i) {
            out[(k / width) * depth + b] += 1.0;
        }
    }
    match mode {
        OutputMode::MultiHot => out.iter_mut().for_each(|v| *v = v.min(1.0)),
        OutputMode::TfIdf => {
            let idf = idf
                .ok_or_else(|| Error::invalid("tf_idf", "output_mode tf_idf needs idf weights"))?;
            for row in out.chunks_mut(depth.max(1)) {
                for (v, w) in row.iter_mut().zip(idf) {
                    *v *= w;
                }
            }
        }
        _ => {}
    }
    Tensor::from_vec(out, &out_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_keras() {
        let i = Tensor::from_vec(vec![1i64, 3, 3, 0], &[2, 2]).unwrap();
        let m = encode(&i, OutputMode::MultiHot, 4, None, DType::I64).unwrap();
        assert_eq!(m.shape(), [2, 4]);
        assert_eq!(m.to_vec::<f32>().unwrap(), [0., 1., 0., 1., 1., 0., 0., 1.]);
        let c = encode(&i, OutputMode::Count, 4, None, DType::I64).unwrap();
        assert_eq!(c.to_vec::<f32>().unwrap(), [0., 1., 0., 1., 1., 0., 0., 1.]);
        let c = encode(
            &Tensor::from_vec(vec![2i64, 2], &[2]).unwrap(),
            OutputMode::Count,
            3,
            None,
            DType::I64,
        )
        .unwrap();
        assert_eq!(
            (c.shape(), c.to_vec::<f32>().unwrap()),
            (&[3][..], vec![0., 0., 2.])
        );
        let o = encode(
            &Tensor::from_vec(vec![1i64, 9], &[2, 1]).unwrap(),
            OutputMode::OneHot,
            3,
            None,
            DType::I64,
        )
        .unwrap();
        assert_eq!(
            (o.shape(), o.to_vec::<f32>().unwrap()),
            (&[2, 3][..], vec![0., 1., 0., 0., 0., 0.])
        );
        let t = encode(
            &i,
            OutputMode::TfIdf,
            4,
            Some(&[0.5, 1.0, 2.0, 3.0]),
            DType::I64,
        )
        .unwrap();
        assert_eq!(
            t.to_vec::<f32>().unwrap(),
            [0., 1., 0., 3., 0.5, 0., 0., 3.]
        );
        assert!(OutputMode::parse("Hashing", "tf_idf", &OutputMode::BASIC).is_err());
        assert_eq!(
            OutputMode::parse("x", "binary", &OutputMode::LOOKUP).unwrap(),
            OutputMode::MultiHot
        );
    }
}
