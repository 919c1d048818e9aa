//! StringLookup, IntegerLookup, Hashing and CategoryEncoding against Keras 3: the same
//! configs, adapted on the same data, give the same configs, vocabularies and outputs
//! (fixtures from `tools/gen_keras_categorical_golden.py`).

use ferroflow_core::{DType, Result, Tensor, TfString};
use ferroflow_keras::layers::registry::from_config;
use ferroflow_keras::layers::{Hashing, IntegerLookup, StringLookup, TextVectorization};
use ferroflow_keras::LayerExt;
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/categorical_golden.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The shape and leaves of a nested JSON list.
fn flatten(v: &Value, shape: &mut Vec<usize>, leaves: &mut Vec<Value>, depth: usize) {
    match v {
        Value::Array(a) => {
            if shape.len() == depth {
                shape.push(a.len());
            }
            a.iter().for_each(|x| flatten(x, shape, leaves, depth + 1));
        }
        x => leaves.push(x.clone()),
    }
}

fn tensor(v: &Value, kind: &str) -> Result<Tensor> {
    let (mut shape, mut leaves) = (Vec::new(), Vec::new());
    flatten(v, &mut shape, &mut leaves, 0);
    match kind {
        "U" | "S" | "O" => {
            let s: Vec<String> = leaves
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            Tensor::from_strings(&s, &shape)
        }
        "f" => Tensor::from_vec(
            leaves.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
            &shape,
        ),
        _ => Tensor::from_vec(leaves.iter().map(|x| x.as_i64().unwrap()).collect(), &shape),
    }
}

/// Leaves of an output as JSON (numbers as f64, strings as strings).
fn leaves_of(t: &Tensor) -> Vec<Value> {
    match t.dtype() {
        DType::String => t
            .to_strings()
            .unwrap()
            .into_iter()
            .map(Value::from)
            .collect(),
        _ => t.to_f64_vec().into_iter().map(Value::from).collect(),
    }
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
        _ => a == b,
    }
}

#[test]
fn layers_equal_keras() -> Result<()> {
    let g = golden();
    for case in g["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let class = case["class"].as_str().unwrap();
        let layer = from_config(class, &case["init_config"])?;
        if let Some(data) = case.get("adapt") {
            let kind = case["adapt_dtype"].as_str().unwrap_or("U");
            let data = tensor(data, kind)?;
            layer.adapt(&data)?;
        }
        let x = tensor(&case["input"], case["input_dtype"].as_str().unwrap())?;
        let y = layer.forward1(&x, false)?;
        let shape: Vec<usize> = serde_json::from_value(case["output_shape"].clone()).unwrap();
        assert_eq!(y.shape(), shape, "{name}: output shape");
        let (mut s, mut want) = (Vec::new(), Vec::new());
        flatten(&case["output"], &mut s, &mut want, 0);
        let got = leaves_of(&y);
        assert!(
            got.len() == want.len() && got.iter().zip(&want).all(|(a, b)| close(a, b)),
            "{name}: output\n got {got:?}\nwant {want:?}"
        );
        let config = Value::Object(layer.get_config());
        for (k, v) in case["config"].as_object().unwrap() {
            let mine = &config[k.as_str()];
            let same = match (mine, v) {
                (Value::Array(a), Value::Array(b)) => {
                    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close(x, y))
                }
                _ => close(mine, v),
            };
            assert!(same, "{name}: config '{k}' is {mine}, Keras has {v}");
        }
        assert_eq!(
            config.as_object().unwrap().len(),
            case["config"].as_object().unwrap().len(),
            "{name}: config keys {config}"
        );
        if let Some(v) = case.get("vocabulary") {
            // The same layer, typed, for get_vocabulary.
            let got: Vec<Value> = match class {
                "StringLookup" => {
                    let l = StringLookup::from_config(&case["init_config"])?;
                    if let Some(d) = case.get("adapt") {
                        l.adapt(&tensor(d, "U")?)?;
                    }
                    l.get_vocabulary(true)
                        .iter()
                        .map(|t: &TfString| Value::from(String::from_utf8_lossy(t).into_owned()))
                        .collect()
                }
                "TextVectorization" => {
                    let l = TextVectorization::from_config(&case["init_config"])?;
                    if let Some(d) = case.get("adapt") {
                        l.adapt(&tensor(d, "U")?)?;
                    }
                    l.lookup_layer()
                        .get_vocabulary(true)
                        .iter()
                        .map(|t: &TfString| Value::from(String::from_utf8_lossy(t).into_owned()))
                        .collect()
                }
                _ => {
                    let l = IntegerLookup::from_config(&case["init_config"])?;
                    if let Some(d) = case.get("adapt") {
                        l.adapt(&tensor(d, "i")?)?;
                    }
                    l.get_vocabulary(true)
                        .into_iter()
                        .map(Value::from)
                        .collect()
                }
            };
            assert_eq!(&Value::Array(got), v, "{name}: vocabulary");
        }
    }
    Ok(())
}

#[test]
fn hashing_bins_equal_tensorflow_for_10000_strings() -> Result<()> {
    let g = &golden()["hash_10000"];
    let x = tensor(&g["input"], "U")?;
    let fast: Vec<i64> = serde_json::from_value(g["fast"].clone()).unwrap();
    let salted: Vec<i64> = serde_json::from_value(g["salted"].clone()).unwrap();
    assert_eq!(x.numel(), 10_000);
    assert_eq!(Hashing::new(100_003)?.bins(&x)?.to_vec::<i64>()?, fast);
    assert_eq!(
        Hashing::new(100_003)?
            .salt([123, 456])
            .bins(&x)?
            .to_vec::<i64>()?,
        salted
    );
    Ok(())
}
