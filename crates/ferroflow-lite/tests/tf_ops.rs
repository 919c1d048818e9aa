//! One `.tflite` file per builtin op beyond the basic set, made by TensorFlow's converter
//! (tools/make_tflite_op_fixtures.py), runs in ferroflow's interpreter with the outputs
//! LiteRT gave: every output, in LiteRT's order, with its shape and dtype; floats within
//! 1e-5 relative (the manifest's tolerance: 0 for the int8 models, whose float edges
//! must hold LiteRT's exact values; 1e-3 for int16 activations), integers exactly; and
//! the file as ferroflow writes it back gives the same outputs.

use ferroflow_core::npy::read_npy;
use ferroflow_core::{DType, Tensor};
use ferroflow_lite::Interpreter;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ops")
        .join(name)
}

fn suffix(i: usize) -> String {
    if i == 0 {
        String::new()
    } else {
        i.to_string()
    }
}

/// Runs case `name`; `None` when it matches LiteRT, else what differs.
fn check(name: &str, inputs: usize, outputs: usize, tolerance: f32) -> Option<String> {
    let interp = match Interpreter::from_file(fixture(&format!("op_{name}.tflite"))) {
        Ok(i) => i,
        Err(e) => return Some(format!("load: {e}")),
    };
    let xs: Vec<Tensor> = (0..inputs)
        .map(|i| read_npy(fixture(&format!("op_{name}_x{}.npy", suffix(i)))).unwrap())
        .collect();
    let ours = match interp.run(&xs) {
        Ok(y) => y,
        Err(e) => return Some(format!("run: {e}")),
    };
    if ours.len() != outputs {
        return Some(format!("{} outputs, LiteRT {outputs}", ours.len()));
    }
    let values = |ts: &[Tensor]| -> Vec<Vec<f64>> {
        ts.iter()
            .map(|t| t.cast(DType::F64).unwrap().to_vec::<f64>().unwrap())
            .collect()
    };
    // The interpreter's own threads (LiteRT's num_threads) give the same results.
    let threaded = Interpreter::from_file(fixture(&format!("op_{name}.tflite")))
        .and_then(|i| i.with_threads(2))
        .and_then(|i| i.run(&xs));
    match threaded {
        Ok(t) if values(&t) == values(&ours) => {}
        Ok(_) => return Some("with_threads(2) gives other outputs".into()),
        Err(e) => return Some(format!("with_threads(2): {e}")),
    }
    // ferroflow's writer keeps every option: the rewritten file gives the same outputs.
    let rewritten = ferroflow_lite::write::to_bytes(interp.model());
    match Interpreter::from_bytes(&rewritten).and_then(|i| i.run(&xs)) {
        Ok(again) if values(&again) == values(&ours) => {}
        Ok(_) => return Some("the rewritten file gives other outputs".into()),
        Err(e) => return Some(format!("rewritten: {e}")),
    }
    for (i, y) in ours.iter().enumerate() {
        let want = read_npy(fixture(&format!("op_{name}_y{}.npy", suffix(i)))).unwrap();
        if y.shape() != want.shape() || y.dtype() != want.dtype() {
            return Some(format!(
                "output {i}: {:?} {} against LiteRT's {:?} {}",
                y.shape(),
                y.dtype(),
                want.shape(),
                want.dtype()
            ));
        }
        if want.dtype().is_float() {
            let a = y.cast(DType::F32).unwrap().to_vec::<f32>().unwrap();
            let b = want.cast(DType::F32).unwrap().to_vec::<f32>().unwrap();
            let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let diff = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            if diff.is_nan() || diff > tolerance * scale {
                return Some(format!("output {i}: max difference {diff} (scale {scale})"));
            }
        } else {
            let a = y.cast(DType::I64).unwrap().to_vec::<i64>().unwrap();
            let b = want.cast(DType::I64).unwrap().to_vec::<i64>().unwrap();
            if a != b {
                return Some(format!("output {i}: {a:?} against LiteRT's {b:?}"));
            }
        }
    }
    None
}

#[test]
fn every_op_fixture_matches_litert() {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("ops_manifest.json")).unwrap())
            .unwrap();
    let cases = manifest.as_object().unwrap();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, c)| {
            let n = |k: &str| c[k].as_u64().unwrap() as usize;
            let tolerance = c["tolerance"].as_f64().unwrap() as f32;
            check(name, n("inputs"), n("outputs"), tolerance)
                .map(|why| format!("{name} {}: {why}", c["builtins"]))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from LiteRT:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn inspect_covers_every_subgraph() {
    // Keras LSTM(8) on 4 features: its 416 weights and its cell's ops live in the body.
    let bytes = std::fs::read(fixture("op_while_lstm.tflite")).unwrap();
    let v = ferroflow_lite::inspect::inspect(&bytes).unwrap();
    assert_eq!(v["subgraphs"], 3);
    let ops: Vec<&str> = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    for op in [
        "WHILE",
        "LOGICAL_AND",
        "FULLY_CONNECTED",
        "LOGISTIC",
        "TANH",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    assert!(v["parameters"]["count"].as_u64().unwrap() >= 416, "{v}");
    assert_eq!(v["unsupported_ops"], serde_json::json!([]));
}
