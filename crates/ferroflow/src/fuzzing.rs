//! The fuzz harnesses: one function per reader of untrusted input, fed arbitrary bytes.
//! `fuzz/` (cargo-fuzz) calls them from libFuzzer, and `tests/fuzz_regressions.rs` replays
//! every input a fuzzer ever found through them, so a fixed bug stays fixed.
//!
//! Errors are the expected outcome; a panic, a hang or unbounded allocation is a bug.

use crate as ff;
use ff::data::FeatureSpec;
use ff::serve::json::{Budget, Json, MEMORY_PER_BODY_BYTE};
use ff::serve::request::{example_inputs, predict_inputs, Method};
use ff::serve::servable::{Signature, TensorInfo};

/// A harness: runs one input.
pub type Harness = fn(&[u8]);

/// Every harness by its fuzz target's name.
pub const TARGETS: &[(&str, Harness)] = &[
    ("npy", npy),
    ("safetensors", safetensors),
    ("keras_archive", keras_archive),
    ("h5", h5),
    ("tflite", tflite),
    ("tfrecord", tfrecord),
    ("example", example),
    ("idx", idx),
    ("csv", csv),
    ("image", image),
    ("serve_request", serve_request),
    ("model_config", model_config),
];

/// `.npy` bytes (the arrays `ferroflow predict` reads).
pub fn npy(data: &[u8]) {
    let _ = ff::npy::from_npy_bytes(data, "fuzz.npy");
}

/// safetensors bytes (saved-model weights and optimizer state).
pub fn safetensors(data: &[u8]) {
    let _ = ff::keras::saving::tensor_file::from_bytes(data, "fuzz.safetensors".as_ref());
}

/// `.keras` archives (zip of config.json and model.weights.h5), then one prediction
/// with the model that loaded.
pub fn keras_archive(data: &[u8]) {
    if let Ok(m) = ff::keras::saving::keras_file::load_keras_bytes(data, "fuzz.keras".as_ref()) {
        predict_once(m);
    }
}

/// Legacy full-model `.h5` files (HDF5 with the config in an attribute), then one
/// prediction with the model that loaded.
pub fn h5(data: &[u8]) {
    let path = std::path::Path::new("fuzz.h5");
    if let Ok(m) = ff::keras::saving::keras_file::load_legacy_h5_bytes(data.to_vec(), path) {
        predict_once(m);
    }
}

/// `.tflite` flatbuffers: the validating reader (and, for files it refuses, the
/// inspector that names what is unsupported), then one run of the interpreter on zeros
/// of the declared input shapes when they are small.
pub fn tflite(data: &[u8]) {
    let _ = ff::lite::inspect::inspect(data);
    // An operator's work is bounded as a server running untrusted files would bound it:
    // under the sanitizers a convolution of a few hundred million multiply-adds (a filter
    // fed from the input) outlasts the time limit.
    let Ok(interp) = ff::lite::Interpreter::builder()
        .max_op_macs(1 << 24)
        .from_bytes(data)
    else {
        return;
    };
    let inputs: Option<Vec<ff::Tensor>> = interp
        .inputs()
        .iter()
        .map(|t| {
            let shape: Vec<usize> = t.shape.iter().map(|&d| d.max(1) as usize).collect();
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
            (n <= 1 << 16).then(|| ff::Tensor::zeros(&shape, ff::lite::core_dtype(t.dtype)).ok())?
        })
        .collect();
    if let Some(inputs) = inputs {
        let _ = interp.run(&inputs);
    }
    drop(interp);
    release_cached_buffers();
}

/// TFRecord framing (plain, or gzip by its magic number), each record then parsed as
/// a `tf.train.Example`.
pub fn tfrecord(data: &[u8]) {
    use ff::data::{Compression, TFRecordReader};
    let compression = if data.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else {
        Compression::None
    };
    let input = std::io::Cursor::new(data.to_vec());
    let mut r =
        TFRecordReader::from_reader("fuzz.tfrecord", input, compression, Some(data.len() as u64));
    while let Some(Ok(rec)) = r.next_record() {
        let _ = ff::data::Example::decode_bytes(&rec);
    }
}

/// `tf.train.Example` protobufs parsed against a spec with every kind of feature.
pub fn example(data: &[u8]) {
    let _ = ff::data::Example::decode_bytes(data);
    let spec: Vec<(&str, FeatureSpec)> = vec![
        (
            "f",
            FeatureSpec::FixedLen {
                shape: vec![2],
                dtype: ff::DType::F32,
                default: None,
            },
        ),
        (
            "i",
            FeatureSpec::FixedLen {
                shape: vec![],
                dtype: ff::DType::I64,
                default: Some(ff::Tensor::scalar(0i64)),
            },
        ),
        (
            "v",
            FeatureSpec::VarLen {
                dtype: ff::DType::F32,
            },
        ),
        (
            "b",
            FeatureSpec::VarLen {
                dtype: ff::DType::U8,
            },
        ),
    ];
    let _ = ff::data::parse_example(data, &spec);
}

/// IDX files (MNIST's format, plain or gzip).
pub fn idx(data: &[u8]) {
    let _ = ff::data::idx_from_bytes(data, "fuzz.idx".as_ref());
}

/// CSV files read by `csv_dataset` with typed columns (one with a default), batched.
pub fn csv(data: &[u8]) {
    let path = std::env::temp_dir().join(format!("ferroflow-fuzz-{}.csv", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let cols = vec![
        ff::data::CsvColumn::required(ff::DType::F32),
        ff::data::CsvColumn::with_default(ff::DType::I64, -1.0),
        ff::data::CsvColumn::required(ff::DType::F64),
    ];
    let Ok(ds) = ff::data::csv_dataset(&[&path], cols, true, b',', None) else {
        return;
    };
    if let Ok(it) = ds.batch(4, false).and_then(|d| d.iter()) {
        for e in it.take(64) {
            let _ = e;
        }
    }
}

/// Image bytes (PNG, JPEG, BMP, GIF) decoded and resized as
/// `image_dataset_from_directory` does.
pub fn image(data: &[u8]) {
    use ff::data::images::{decode_image, ColorMode};
    let _ = decode_image(data, "fuzz.img".as_ref(), (8, 8), ColorMode::Rgb);
}

/// Signatures the request decoder is driven against: one float input, three named
/// inputs of different dtypes, and a dynamic integer sequence.
fn signatures() -> Vec<Signature> {
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

/// TF Serving request bodies (`:predict`, `:classify`, `:regress`) decoded against fixed
/// signatures, under the budget `--rest_api_max_body_bytes` sets.
pub fn serve_request(data: &[u8]) {
    for sig in signatures() {
        for method in [Method::Predict, Method::Classify, Method::Regress] {
            let budget = Budget::new(data.len().max(1024) * MEMORY_PER_BODY_BYTE);
            let Ok(body) = Json::parse(data, &budget) else {
                return;
            };
            let _ = match method {
                Method::Predict => predict_inputs(body, &sig, &budget).map(|_| ()),
                m => example_inputs(body, &sig, m, &budget).map(|_| ()),
            };
        }
    }
}

/// `--model_config_file` and `--batching_parameters_file` text protos.
pub fn model_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ff::serve::config::parse_model_config_text(text);
    let _ = ff::serve::config::parse_batching_text(text);
}

/// Runs `model` once on zeros of its input specs (unknown dimensions as 1) when they
/// are small and the model is.
fn predict_once(model: ff::keras::Model) {
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
    drop(model);
    release_cached_buffers();
}

/// Empties the kernels' buffer cache ([`ff::alloc`]) after a run. libFuzzer limits the
/// process's resident memory across inputs, and the cache would otherwise keep up to
/// 1 GiB of one input's large outputs while the next input allocates its own.
fn release_cached_buffers() {
    ff::alloc::clear_cache();
}
