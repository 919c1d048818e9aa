//! Helpers shared by the ferroflow-keras tests: reading JSON fixtures into tensors and
//! comparing tensors.

#![allow(dead_code)]

use ferroflow_core::{DType, Tensor};
use serde_json::Value;

/// A tensor from `{"shape": [...], "dtype": "...", "data": [...]}`.
pub fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let name = v.get("dtype").and_then(Value::as_str).unwrap_or("float32");
    let dtype = DType::from_name(name).unwrap_or_else(|| panic!("fixture dtype {name}"));
    Tensor::from_vec(data, &shape).unwrap().cast(dtype).unwrap()
}

/// Asserts `|a - b| <= atol + rtol·|b|` elementwise, with shapes equal.
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor, rtol: f64, atol: f64) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes differ");
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        assert!(
            (p - q).abs() <= atol + rtol * q.abs(),
            "{what}: element {i}: got {p}, expected {q}"
        );
    }
}

/// JSON equality where numbers compare as f64 (Keras writes `2` where ferroflow writes `2.0`)
/// and `build_config` (build state, not configuration) is ignored.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-7 * y.abs().max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys = |m: &serde_json::Map<String, Value>| {
                m.keys().filter(|k| *k != "build_config").count()
            };
            keys(x) == keys(y)
                && x.iter()
                    .filter(|(k, _)| *k != "build_config")
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Reads a fixture file from `tests/fixtures`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Max |a − b| / max(1, |b|) over all elements, with shapes equal.
pub fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0, f64::max)
}

/// One step of `opt` on `table` from a sparse Embedding gradient (rows 3, 1, 3, 7 of a
/// squared-sum loss), densified first when `densify`.
pub fn embedding_step(
    opt: &mut ferroflow_keras::optimizers::Optimizer,
    table: &ferroflow_core::Variable,
    densify: bool,
) {
    let ids = Tensor::from_vec(vec![3i32, 1, 3, 7], &[4]).unwrap();
    let tape = ferroflow_core::GradientTape::new();
    let rows = table.value().gather(&ids, 0).unwrap();
    let loss = rows
        .square()
        .unwrap()
        .sum(ferroflow_core::Axes::All, false)
        .unwrap();
    let mut grads = tape.gradient(&loss, &[table]).unwrap();
    assert!(matches!(
        grads[0],
        Some(ferroflow_core::Gradient::Sparse(_))
    ));
    if densify {
        grads[0] = Some(ferroflow_core::Gradient::Dense(
            grads[0].as_ref().unwrap().to_dense().unwrap(),
        ));
    }
    opt.apply_gradients(&grads, std::slice::from_ref(table))
        .unwrap();
}
