//! Replays TensorFlow golden gradients (tools/gen_grad_golden.py): for every differentiable
//! op case of the core fixture, the tape's gradient of Σ w ⊙ op(inputs) must match
//! TensorFlow's within 1e-5 relative (plus 1e-5 absolute near zero).

mod common;

use common::{run, tensor};
use ferroflow_core::{Axes, GradientTape, Tensor};
use serde_json::Value;

#[test]
fn gradients_match_tensorflow() {
    let core: Value = serde_json::from_str(include_str!("fixtures/core_golden.json")).unwrap();
    let grads: Value = serde_json::from_str(include_str!("fixtures/grad_golden.json")).unwrap();
    let core = core["cases"].as_array().unwrap();
    let cases = grads["cases"].as_array().unwrap();
    assert!(cases.len() > 150, "fixture holds {} cases", cases.len());
    let mut failures = Vec::new();
    for c in cases {
        let n = c["case"].as_u64().unwrap() as usize;
        let op_case = &core[n];
        let op = op_case["op"].as_str().unwrap();
        let inputs: Vec<Tensor> = op_case["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(tensor)
            .collect();
        let tape = GradientTape::new();
        for x in &inputs {
            tape.watch(x);
        }
        let y = run(op, &op_case["attrs"], &inputs).unwrap().remove(0);
        let w: Vec<f64> = c["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let w = Tensor::from_vec(w, y.shape())
            .unwrap()
            .cast(y.dtype())
            .unwrap();
        let loss = y.mul(&w).unwrap().sum(Axes::All, false).unwrap();
        let got = tape.gradient(&loss, &inputs).unwrap();
        for (i, want) in c["grads"].as_array().unwrap().iter().enumerate() {
            if want.is_null() {
                continue;
            }
            let want: Vec<f64> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let got = match &got[i] {
                Some(g) => g.to_dense().unwrap().to_f64_vec(),
                None => vec![0.0; want.len()],
            };
            if got.len() != want.len() {
                failures.push(format!(
                    "case {n} {op} input {i}: {} values, want {}",
                    got.len(),
                    want.len()
                ));
                continue;
            }
            if let Some((k, (g, e))) = got
                .iter()
                .zip(&want)
                .enumerate()
                .find(|(_, (g, e))| (*g - *e).abs() > 1e-5 * e.abs() + 1e-5)
            {
                failures.push(format!(
                    "case {n} {op} {} input {i} element {k}: got {g} want {e}",
                    op_case["attrs"]
                ));
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
