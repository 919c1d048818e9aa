//! What the fuzz targets share: fixed signatures and specs to decode against, and one
//! prediction with a model that loaded.

use ferroflow as ff;
use ff::data::FeatureSpec;
use ff::serve::servable::{Signature, TensorInfo};
use std::path::{Path, PathBuf};

/// Runs `model` once on zeros of its input specs (unknown dimensions as 1) when they
/// are small; errors are fine, panics and unbounded allocation are the bugs.
pub fn predict_once(model: &ff::keras::Model) {
    let Some(specs) = model.input_specs() else {
        return;
    };
    let inputs: Option<Vec<ff::Tensor>> = specs
        .iter()
        .map(|s| {
            let shape: Vec<usize> = s.shape.iter().map(|d| d.unwrap_or(1)).collect();
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
            (n <= 1 << 16).then(|| ff::Tensor::zeros(&shape, s.dtype).ok())?
        })
        .collect();
    if let Some(inputs) = inputs {
        let _ = model.predict(&inputs, 8);
    }
}

/// Signatures the request decoder is driven against: one float input, two named inputs
/// of different dtypes, and a dynamic integer sequence.
pub fn signatures() -> Vec<Signature> {
    let info = |name: &str, dtype, shape: &[Option<usize>]| TensorInfo {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    };
    let out = vec![info("y", ff::DType::F32, &[None, Some(2)])];
    vec![
        Signature {
            inputs: vec![info("x", ff::DType::F32, &[None, Some(3)])],
            outputs: out.clone(),
        },
        Signature {
            inputs: vec![
                info("a", ff::DType::F32, &[None, Some(2)]),
                info("b", ff::DType::I64, &[None]),
                info("c", ff::DType::Bool, &[None, Some(1)]),
            ],
            outputs: out.clone(),
        },
        Signature {
            inputs: vec![info("tokens", ff::DType::I32, &[None, None])],
            outputs: out,
        },
    ]
}

/// A feature spec with every kind of feature.
pub fn example_spec() -> Vec<(String, FeatureSpec)> {
    vec![
        (
            "f".into(),
            FeatureSpec::FixedLen {
                shape: vec![2],
                dtype: ff::DType::F32,
                default: None,
            },
        ),
        (
            "i".into(),
            FeatureSpec::FixedLen {
                shape: vec![],
                dtype: ff::DType::I64,
                default: Some(ff::Tensor::scalar(0i64)),
            },
        ),
        (
            "v".into(),
            FeatureSpec::VarLen {
                dtype: ff::DType::F32,
            },
        ),
        (
            "b".into(),
            FeatureSpec::VarLen {
                dtype: ff::DType::U8,
            },
        ),
    ]
}

/// Writes `data` to a file of this process named like `name` and runs `f` on its path.
pub fn with_file(name: &str, data: &[u8], f: impl FnOnce(&Path)) {
    let dir = std::env::temp_dir();
    let path: PathBuf = dir.join(format!("ferroflow-fuzz-{}-{name}", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        f(&path);
    }
}
