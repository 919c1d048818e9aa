//! The `ferroflow` binary end to end: the demo is deterministic for a seed, and the saved
//! model works with `predict` and `summary`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ferroflow(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroflow"))
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "ferroflow {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ff_cli_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.weights.safetensors")).unwrap()
}

#[test]
fn demo_is_deterministic_and_its_model_serves_predict_and_summary() {
    let (a, b, c) = (tmp("a"), tmp("b"), tmp("c"));
    let d = tmp("d");
    let run = |dir: &Path, seed: &str| {
        let mut args = vec![
            "demo",
            "--epochs",
            "2",
            "--seed",
            seed,
            "--save",
            dir.to_str().unwrap(),
        ];
        if dir == d.as_path() {
            args.push("--run-eagerly");
        }
        let out = ferroflow(&args);
        let text = String::from_utf8(out.stdout).unwrap();
        let accuracy = text
            .lines()
            .find(|l| l.starts_with("val_accuracy: 0."))
            .unwrap_or_else(|| panic!("no val_accuracy line in:\n{text}"))
            .to_string();
        // The demo ends by exporting float and int8 TFLite files and scoring them: the
        // float file scores as the model, the int8 one within a point of it.
        let scored = |file: &str| -> f64 {
            assert!(dir.join(file).exists(), "{file} missing");
            let line = text
                .lines()
                .find(|l| l.contains(&format!("/{file} ")) && l.contains("held-out accuracy"))
                .unwrap_or_else(|| panic!("{file} not reported in:\n{text}"));
            let value = line.split("held-out accuracy ").nth(1).unwrap();
            value.split_whitespace().next().unwrap().parse().unwrap()
        };
        let keras: f64 = accuracy["val_accuracy: ".len()..].parse().unwrap();
        let (float, int8) = (scored("model.tflite"), scored("model_int8.tflite"));
        assert!(
            (float - keras).abs() < 1e-9,
            "float TFLite {float} vs model {keras}"
        );
        assert!(
            (int8 - float).abs() <= 0.01,
            "int8 TFLite {int8} vs float {float}"
        );
        accuracy
    };
    let la = run(&a, "5");
    let lb = run(&b, "5");
    run(&c, "6");
    assert_eq!(la, lb);
    assert_eq!(weights(&a), weights(&b), "same seed, different weights");
    assert_ne!(weights(&a), weights(&c), "different seeds, same weights");
    // The compiled train step (the default) and op-by-op training give the same model.
    assert_eq!(run(&d, "5"), la);
    assert_eq!(
        weights(&a),
        weights(&d),
        "compiled and eager training differ"
    );

    let y = a.join("y.npy");
    ferroflow(&[
        "predict",
        "--model",
        a.to_str().unwrap(),
        "--input",
        a.join("sample_inputs.npy").to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
    ]);
    let probs = ferroflow::npy::read_npy(&y).unwrap();
    assert_eq!(probs.shape(), &[16, 10]);
    let sums = probs.sum(-1, false).unwrap().to_f64_vec();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-4), "{sums:?}");

    let out = ferroflow(&["summary", "--model", a.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Model: \"digits_mlp\"") && text.contains("Total params: 17226"),
        "{text}"
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_ferroflow"))
        .args([
            "predict",
            "--model",
            a.to_str().unwrap(),
            "--input",
            "/nonexistent.npy",
            "--output",
            "/tmp/x.npy",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent.npy"));
    for d in [a, b, c, d] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn predict_and_summary_work_on_keras_files() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ferroflow-keras/tests/fixtures/keras");
    let out = tmp("keras_predict");
    std::fs::create_dir_all(&out).unwrap();
    let y = out.join("y.npy");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    ferroflow(&[
        "predict",
        "--model",
        &s(&fx.join("multi_io.keras")),
        "--input",
        &s(&fx.join("multi_io_x0.npy")),
        "--input",
        &s(&fx.join("multi_io_x1.npy")),
        "--output",
        &s(&y),
    ]);
    for (got, want) in [("y.npy", "multi_io_y0.npy"), ("y_1.npy", "multi_io_y1.npy")] {
        let g = ferroflow::npy::read_npy(out.join(got))
            .unwrap()
            .to_f64_vec();
        let w = ferroflow::npy::read_npy(fx.join(want))
            .unwrap()
            .to_f64_vec();
        assert_eq!(g.len(), w.len());
        assert!(
            g.iter()
                .zip(&w)
                .all(|(a, b)| (a - b).abs() <= 1e-4 * b.abs().max(1.0)),
            "{got}"
        );
    }
    let summary = ferroflow(&["summary", "--model", &s(&fx.join("cnn.keras"))]);
    let text = String::from_utf8_lossy(&summary.stdout);
    assert!(
        text.contains("Model: \"cnn\"") && text.contains("separable_conv2d"),
        "{text}"
    );
    // A model with two inputs given one file is an error naming the counts.
    let bad = Command::new(env!("CARGO_BIN_EXE_ferroflow"))
        .args([
            "predict",
            "--model",
            &s(&fx.join("multi_io.keras")),
            "--input",
            &s(&fx.join("multi_io_x0.npy")),
            "--output",
            &s(&y),
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("takes 2 input(s) (a, b), got 1"));
}

#[test]
fn convert_to_keras_writes_an_archive_that_predicts_the_same() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ferroflow-keras/tests/fixtures/keras");
    let out = tmp("to_keras");
    std::fs::create_dir_all(&out).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let archive = out.join("again.keras");
    ferroflow(&[
        "convert",
        "--model",
        &s(&fx.join("multi_io.keras")),
        "--to",
        "keras",
        "--output",
        &s(&archive),
    ]);
    let predict = |model: &Path, y: &Path| {
        ferroflow(&[
            "predict",
            "--model",
            &s(model),
            "--input",
            &s(&fx.join("multi_io_x0.npy")),
            "--input",
            &s(&fx.join("multi_io_x1.npy")),
            "--output",
            &s(y),
        ]);
        ferroflow::npy::read_npy(y).unwrap().to_f64_vec()
    };
    let (a, b) = (
        predict(&fx.join("multi_io.keras"), &out.join("a.npy")),
        predict(&archive, &out.join("b.npy")),
    );
    assert_eq!(a, b);
    // Only .keras outputs, and no quantisation.
    for extra in [
        vec!["--output", "x.tflite"],
        vec!["--output", "x.keras", "--quantize", "dynamic"],
    ] {
        let mut args = vec![
            "convert".to_string(),
            "--model".into(),
            s(&fx.join("cnn.keras")),
        ];
        args.extend(["--to", "keras"].map(String::from));
        args.extend(extra.iter().map(|e| {
            if e.starts_with("x.") {
                s(&out.join(e))
            } else {
                e.to_string()
            }
        }));
        let bad = Command::new(env!("CARGO_BIN_EXE_ferroflow"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(bad.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(
            err.contains(".keras") || err.contains("--quantize"),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn convert_to_onnx_writes_a_model_and_refuses_quantisation() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ferroflow-keras/tests/fixtures/keras");
    let out = tmp("to_onnx");
    std::fs::create_dir_all(&out).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let file = out.join("cnn.onnx");
    let (model, file_s) = (s(&fx.join("cnn.keras")), s(&file));
    let args = [
        "convert", "--model", &model, "--to", "onnx", "--output", &file_s,
    ];
    let stdout = String::from_utf8_lossy(&ferroflow(&args).stdout).to_string();
    assert!(stdout.contains("opset 17"), "{stdout}");
    let bytes = std::fs::read(&file).unwrap();
    let m = <ferroflow::onnx::proto::ModelProto as prost::Message>::decode(&bytes[..]).unwrap();
    assert_eq!(m.graph.unwrap().input[0].name.as_deref(), Some("image"));
    for extra in [vec!["--quantize", "dynamic"], vec!["--opset", "9"]] {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(extra.iter().copied());
        let bad = Command::new(env!("CARGO_BIN_EXE_ferroflow"))
            .args(&all)
            .output()
            .unwrap();
        assert!(!bad.status.success());
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(
            err.contains("--quantize applies to --to tflite only")
                || err.contains("opset 9 is not supported"),
            "{err}"
        );
    }
}

#[test]
fn an_onnx_model_converts_to_tflite_float_and_int8() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ferroflow-onnx/tests/fixtures/import");
    let out = tmp("onnx_to_tflite");
    std::fs::create_dir_all(&out).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (model, x, y) = (
        s(&fx.join("keras_cnn_tf2onnx.onnx")),
        s(&fx.join("keras_cnn_tf2onnx_x0.npy")),
        fx.join("keras_cnn_tf2onnx_y0.npy"),
    );
    let want = ferroflow::npy::read_npy(&y).unwrap();
    let scale = want
        .abs()
        .unwrap()
        .to_f64_vec()
        .into_iter()
        .fold(0.0, f64::max);
    for quantize in [None, Some("int8")] {
        let file = s(&out.join(format!("m_{}.tflite", quantize.unwrap_or("float"))));
        let mut args = vec![
            "convert", "--model", &model, "--to", "tflite", "--output", &file,
        ];
        if let Some(q) = quantize {
            args.extend(["--quantize", q, "--representative", &x, "--io", "float"]);
        }
        ferroflow(&args);
        let pred = s(&out.join("pred.npy"));
        ferroflow(&[
            "predict", "--model", &file, "--input", &x, "--output", &pred,
        ]);
        let got = ferroflow::npy::read_npy(&pred).unwrap();
        assert_eq!(got.shape(), want.shape());
        let d = got
            .sub(&want)
            .unwrap()
            .abs()
            .unwrap()
            .to_f64_vec()
            .into_iter()
            .fold(0.0, f64::max);
        let allowed = if quantize.is_some() { 0.1 } else { 1e-5 } * scale;
        assert!(
            d <= allowed,
            "{quantize:?}: max difference {d} (allowed {allowed})"
        );
    }
    // A graph whose branch is picked at run time is refused by name.
    let branchy = s(&fx.join("branchy_if_then.onnx"));
    let file = s(&out.join("branchy.tflite"));
    let bad = Command::new(env!("CARGO_BIN_EXE_ferroflow"))
        .args([
            "convert", "--model", &branchy, "--to", "tflite", "--output", &file,
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("If/Loop"));
    std::fs::remove_dir_all(&out).ok();
}

/// Output into a pipe whose reader has gone (`ferroflow inspect ... | head`) ends the
/// command by SIGPIPE, as Unix tools end, without a panic message.
#[cfg(unix)]
#[test]
fn a_closed_output_pipe_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spectrum_c64.tflite");
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_ferroflow"))
        .args(["inspect", "--model", model.to_str().unwrap()])
        .stdout(writer)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}
