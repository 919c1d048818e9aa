//! The first hour with the `ferroflow` binary: `inspect` on every format (checked against
//! what the files contain and what LiteRT reports of them), the common mistakes (each
//! message's first line names the cause and the offending values), exit codes, and
//! `bench` on any model file.

use ferroflow as ff;
use ff::keras::layers::{Dense, Embedding, GlobalAveragePooling1D};
use ff::keras::{Input, Model, SymbolicCall};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ferroflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferroflow"))
        .args(args)
        .output()
        .expect("runs")
}

/// Runs a command that must succeed and returns its stdout.
fn ok(args: &[&str]) -> String {
    let out = ferroflow(args);
    assert!(
        out.status.success(),
        "ferroflow {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with `code` and returns the first line of its message.
fn fails(args: &[&str], code: i32) -> String {
    let out = ferroflow(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "ferroflow {args:?}:\n{err}");
    err.lines().next().unwrap_or_default().to_string()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ff_first_hour_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn crate_fixture(krate: &str, rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("tests/fixtures")
        .join(rel)
        .display()
        .to_string()
}

fn inspect(path: &str) -> Value {
    serde_json::from_str(&ok(&["inspect", "--model", path, "--json"])).unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// A two-input text-and-features model, saved as a ferroflow model directory.
fn saved_two_input_model(dir: &Path) -> Model {
    ff::random::set_seed(1);
    let ids = Input::with(vec![Some(6)], ff::DType::I32, Some("token_ids"));
    let feats = Input::with(vec![Some(3)], ff::DType::F32, Some("features"));
    let t = Embedding::new(20, 4).apply(&ids).unwrap();
    let t = GlobalAveragePooling1D::new().apply(&t).unwrap();
    let h = ff::keras::layers::Concatenate::new(-1)
        .call_many(&[t, feats.clone()])
        .unwrap()
        .remove(0);
    let y = Dense::new(2).apply(&h).unwrap();
    let model = Model::named(&[ids, feats], &[y], "two_inputs").unwrap();
    model.save(dir).unwrap();
    model
}

#[test]
fn inspect_describes_saved_models_and_keras_files() {
    let dir = tmp("saved");
    let model = saved_two_input_model(&dir);
    let v = inspect(dir.to_str().unwrap());
    assert_eq!(v["format"], "ferroflow_saved_model");
    assert_eq!(v["name"], "two_inputs");
    assert_eq!(names(&v["inputs"]), ["token_ids", "features"]);
    assert_eq!(v["inputs"][0]["dtype"], "int32");
    assert_eq!(v["inputs"][0]["shape"], serde_json::json!([null, 6]));
    assert_eq!(v["outputs"][0]["shape"], serde_json::json!([null, 2]));
    let weights: usize = model.get_weights().iter().map(|w| w.numel()).sum();
    assert_eq!(v["parameters"]["count"], weights);
    assert_eq!(v["parameters"]["bytes"], weights * 4);
    let classes: Vec<&str> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["class"].as_str().unwrap())
        .collect();
    assert!(classes.contains(&"Embedding") && classes.contains(&"Concatenate"));

    let v = inspect(&crate_fixture("ferroflow-keras", "keras/multi_io.keras"));
    assert_eq!(v["format"], "keras");
    assert_eq!(v["format_version"], "3.15.1");
    assert_eq!(names(&v["inputs"]), ["a", "b"]);
    assert_eq!(names(&v["outputs"]), ["p", "q"]);
    assert_eq!(v["inputs"][1]["shape"], serde_json::json!([null, 3]));
    let dense = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["class"] == "Dense")
        .unwrap();
    assert_eq!(dense["count"], 4);

    let v = inspect(&crate_fixture("ferroflow-keras", "keras/mlp_legacy.h5"));
    assert_eq!(v["format"], "keras_h5");
    assert_eq!(names(&v["inputs"]), ["features"]);
    assert_eq!(v["inputs"][0]["shape"], serde_json::json!([null, 8]));
    let text = ok(&["inspect", "--model", dir.to_str().unwrap()]);
    assert!(text.contains("'token_ids': int32 (None, 6)"), "{text}");
}

/// What LiteRT reports of a file (tools/make_inspect_fixtures.py).
fn litert_view(name: &str) -> Value {
    let p = fixtures().join(format!("{name}.litert.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// ferroflow's description of a tensor against LiteRT's.
fn same_tensor(ours: &Value, litert: &Value) {
    assert_eq!(ours["name"], litert["name"]);
    let dtype = litert["dtype"].as_str().unwrap().to_uppercase();
    assert_eq!(ours["dtype"], dtype);
    let sig: Vec<Value> = litert["shape_signature"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| if d == -1 { Value::Null } else { d.clone() })
        .collect();
    assert_eq!(ours["shape"], Value::Array(sig));
    let scale = litert["scale"].as_f64().unwrap();
    if scale == 0.0 {
        assert!(ours["quantization"].is_null(), "{ours}");
    } else {
        let q = &ours["quantization"];
        assert_eq!(q["kind"], "per_tensor");
        let s = q["scale"][0].as_f64().unwrap();
        assert!(
            (s - scale).abs() <= 1e-7 * scale,
            "scale {s} vs LiteRT's {scale}"
        );
        assert_eq!(q["zero_point"][0], litert["zero_point"]);
    }
}

fn op_counts(ops: impl Iterator<Item = (String, u64)>) -> Vec<(String, u64)> {
    let mut m: Vec<(String, u64)> = Vec::new();
    for (name, n) in ops {
        match m.iter_mut().find(|(k, _)| *k == name) {
            Some(e) => e.1 += n,
            None => m.push((name, n)),
        }
    }
    m.sort();
    m
}

#[test]
fn inspect_of_tflite_files_agrees_with_litert() {
    let files = [
        (
            "mlp_int8",
            crate_fixture("ferroflow-lite", "mlp_int8.tflite"),
        ),
        (
            "cnn_int8",
            crate_fixture("ferroflow-lite", "cnn_int8.tflite"),
        ),
        (
            "multi_input_int8",
            crate_fixture("ferroflow-lite", "multi_input_int8.tflite"),
        ),
        (
            "spectrum_c64",
            fixtures().join("spectrum_c64.tflite").display().to_string(),
        ),
    ];
    for (name, path) in files {
        let v = inspect(&path);
        let lr = litert_view(name);
        assert_eq!(v["format"], "tflite");
        assert_eq!(v["format_version"], 3);
        for key in ["inputs", "outputs"] {
            let (ours, theirs) = (v[key].as_array().unwrap(), lr[key].as_array().unwrap());
            assert_eq!(ours.len(), theirs.len(), "{name} {key}");
            for (o, t) in ours.iter().zip(theirs) {
                same_tensor(o, t);
            }
        }
        let ours = op_counts(v["ops"].as_array().unwrap().iter().map(|o| {
            (
                o["op"].as_str().unwrap().to_string(),
                o["count"].as_u64().unwrap(),
            )
        }));
        let theirs = op_counts(
            lr["ops"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| (o.as_str().unwrap().to_string(), 1)),
        );
        assert_eq!(ours, theirs, "{name}: operators");
        assert_eq!(v["operators"], lr["ops"].as_array().unwrap().len());
    }
    // The int8 models' weights are quantised per channel, their edges per tensor.
    let v = inspect(&crate_fixture("ferroflow-lite", "cnn_int8.tflite"));
    assert!(v["quantization"]["per_channel"].as_u64().unwrap() > 0);
    assert_eq!(v["unsupported_ops"], serde_json::json!([]));
    // What ferroflow cannot run is named, with the reason, and not fatal to inspect.
    let c64 = fixtures().join("spectrum_c64.tflite");
    let v = inspect(c64.to_str().unwrap());
    assert_eq!(
        v["unsupported_ops"],
        serde_json::json!(["RFFT2D", "COMPLEX_ABS"])
    );
    assert_eq!(
        v["unsupported_tensor_types"],
        serde_json::json!(["COMPLEX64"])
    );
    let text = ok(&["inspect", "--model", c64.to_str().unwrap()]);
    assert!(
        text.contains("ferroflow cannot run: RFFT2D, COMPLEX_ABS"),
        "{text}"
    );
}

/// Writes a `.npy` of f32 zeros (or i32 when `int`).
fn npy(dir: &Path, name: &str, shape: &[usize], dtype: ff::DType) -> String {
    let n: usize = shape.iter().product();
    let t = ff::Tensor::zeros(&[n], dtype)
        .unwrap()
        .reshape(&shape.iter().map(|&d| d as isize).collect::<Vec<_>>())
        .unwrap();
    let p = dir.join(name);
    ff::npy::write_npy(&p, &t).unwrap();
    p.display().to_string()
}

#[test]
fn each_common_mistake_is_named_on_the_first_line() {
    let dir = tmp("mistakes");
    let model_dir = dir.join("model");
    saved_two_input_model(&model_dir);
    let m = model_dir.to_str().unwrap();
    let ids = npy(&dir, "ids.npy", &[2, 6], ff::DType::I32);
    let feats = npy(&dir, "feats.npy", &[2, 3], ff::DType::F32);
    let out = dir.join("y.npy").display().to_string();
    ok(&[
        "predict", "--model", m, "--input", &ids, "--input", &feats, "--output", &out,
    ]);

    // Wrong shape.
    let wide = npy(&dir, "wide.npy", &[2, 7], ff::DType::F32);
    let line = fails(
        &[
            "predict", "--model", m, "--input", &ids, "--input", &wide, "--output", &out,
        ],
        1,
    );
    assert_eq!(
        line,
        "error: model 'two_inputs': input 'features' expects shape (None, 3), got (2, 7)"
    );
    // Wrong dtype: floats where the model takes token ids.
    let float_ids = npy(&dir, "float_ids.npy", &[2, 6], ff::DType::F32);
    let line = fails(
        &[
            "predict", "--model", m, "--input", &float_ids, "--input", &feats, "--output", &out,
        ],
        1,
    );
    assert!(
        line.starts_with(
            "error: model 'two_inputs': input 'token_ids' expects int32, got float32 values from"
        ),
        "{line}"
    );
    // Wrong number of inputs.
    let line = fails(
        &["predict", "--model", m, "--input", &ids, "--output", &out],
        1,
    );
    assert_eq!(
        line,
        "error: model 'two_inputs': takes 2 input(s) (token_ids, features), got 1 --input file(s)"
    );
    // A missing input file, and a missing model.
    let missing = dir.join("nope.npy").display().to_string();
    let line = fails(
        &[
            "predict", "--model", m, "--input", &missing, "--input", &feats, "--output", &out,
        ],
        1,
    );
    assert!(line.starts_with(&format!("error: {missing}: ")), "{line}");
    let nowhere = dir.join("no_model").display().to_string();
    let line = fails(
        &[
            "predict", "--model", &nowhere, "--input", &ids, "--output", &out,
        ],
        1,
    );
    assert!(
        line.starts_with(&format!("error: {nowhere}: no such file or directory")),
        "{line}"
    );
    // An unsupported layer.
    let config = model_dir.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"Embedding\"", "\"FancyEmbedding\"")).unwrap();
    let line = fails(&["summary", "--model", m], 1);
    assert!(
        line.contains("unknown layer class 'FancyEmbedding'"),
        "{line}"
    );
    // An unsupported TFLite op and tensor type: all of them named at once.
    let c64 = fixtures().join("spectrum_c64.tflite");
    let x = npy(&dir, "x16.npy", &[1, 16], ff::DType::F32);
    let line = fails(
        &[
            "predict",
            "--model",
            c64.to_str().unwrap(),
            "--input",
            &x,
            "--output",
            &out,
        ],
        1,
    );
    assert!(
        line.contains("cannot run this model yet")
            && line.contains("COMPLEX64")
            && line.contains("RFFT2D")
            && line.contains("COMPLEX_ABS"),
        "{line}"
    );
    // TFLite inputs of the wrong shape or count, in the same terms.
    let mlp = crate_fixture("ferroflow-lite", "mlp_float.tflite");
    let line = fails(
        &[
            "predict", "--model", &mlp, "--input", &wide, "--output", &out,
        ],
        1,
    );
    assert!(
        line.starts_with("error: model 'mlp_float.tflite': input 'serving_default_features:0' expects shape (None, 32), got (2, 7)"),
        "{line}"
    );
}

#[test]
fn bad_command_lines_exit_with_2() {
    fails(&["bench", "no_such_suite"], 2);
    fails(&["predict", "--input", "x.npy"], 2);
    fails(
        &[
            "convert",
            "--model",
            "m",
            "--to",
            "torchscript",
            "--output",
            "m.pt",
        ],
        2,
    );
    fails(&["demo", "--model", "transformer"], 2);
}

#[test]
fn bench_times_any_model_file() {
    // An image model (4-D input) in the interpreter, and a two-input Keras model.
    let cnn = crate_fixture("ferroflow-lite", "cnn_float.tflite");
    let out = ok(&["bench", "tflite", "--model", &cnn, "--reps", "3", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["cnn_float_b1_p50_ms"].as_f64().unwrap() > 0.0, "{v}");
    assert!(
        v["cnn_float_b1_p99_ms"].as_f64().unwrap() >= v["cnn_float_b1_p50_ms"].as_f64().unwrap()
    );
    assert!(v["peak_rss_mib"].as_f64().unwrap() > 0.0);
    let keras = crate_fixture("ferroflow-keras", "keras/multi_io.keras");
    let out = ok(&[
        "bench", "keras", "--model", &keras, "--reps", "3", "--batch", "4", "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["multi_io_b4_p50_ms"].as_f64().unwrap() > 0.0, "{v}");
}
