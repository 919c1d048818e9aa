//! Replays TensorFlow golden values (tools/gen_core_golden.py) through ferroflow's ops.
//! Floats must agree within 1e-5 relative (plus 1e-6 absolute near zero).

mod common;

use common::{run, tensor};
use ferroflow_core::Tensor;
use serde_json::Value;

#[test]
fn ops_match_tensorflow_golden_values() {
    let text = include_str!("fixtures/core_golden.json");
    let root: Value = serde_json::from_str(text).unwrap();
    let cases = root["cases"].as_array().unwrap();
    assert!(cases.len() > 150, "fixture holds {} cases", cases.len());
    let mut failures = Vec::new();
    for (n, c) in cases.iter().enumerate() {
        let op = c["op"].as_str().unwrap();
        let inputs: Vec<Tensor> = c["inputs"].as_array().unwrap().iter().map(tensor).collect();
        let outs = match run(op, &c["attrs"], &inputs) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("case {n} {op}: error {e}"));
                continue;
            }
        };
        for (got, want) in outs.iter().zip(c["outputs"].as_array().unwrap()) {
            let want_t = tensor(want);
            if got.shape() != want_t.shape() || got.dtype() != want_t.dtype() {
                failures.push(format!(
                    "case {n} {op}: got {:?} {} want {:?} {}",
                    got.shape(),
                    got.dtype(),
                    want_t.shape(),
                    want_t.dtype()
                ));
                continue;
            }
            for (i, (g, w)) in got.to_f64_vec().iter().zip(want_t.to_f64_vec()).enumerate() {
                let ok = (g - w).abs() <= 1e-5 * w.abs() + 1e-6 || (g.is_nan() && w.is_nan());
                if !ok {
                    failures.push(format!(
                        "case {n} {op} {}: element {i}: got {g} want {w}",
                        c["attrs"]
                    ));
                    break;
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
