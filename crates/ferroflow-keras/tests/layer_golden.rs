//! Every layer against Keras 3: configs written by Keras rebuild the layer, `get_config`
//! gives Keras's config back, and outputs (inference and training) match Keras's within
//! float32 rounding. Fixtures: `tools/gen_keras_layer_golden.py`.

mod common;

use common::{assert_close, fixture, json_eq, tensor};
use ferroflow_core::autodiff::pause_recording;
use ferroflow_keras::layers::registry;
use ferroflow_keras::{LayerExt, TensorSpec};
use serde_json::Value;

fn weight_suffix(name: &str) -> &str {
    name.split_once('/').map_or(name, |(_, s)| s)
}

fn set_weights(layer: &dyn ferroflow_keras::Layer, weights: &Value, case: &str) {
    let _p = pause_recording();
    let ours = layer.weights();
    let theirs = weights.as_array().unwrap();
    assert_eq!(ours.len(), theirs.len(), "{case}: weight count");
    for w in theirs {
        let name = w["name"].as_str().unwrap();
        let mine = ours
            .iter()
            .find(|o| weight_suffix(o.variable.name()) == name || o.variable.name() == name)
            .unwrap_or_else(|| panic!("{case}: no weight '{name}'"));
        let v = tensor(&w["value"]).cast(mine.variable.dtype()).unwrap();
        mine.variable.assign(&v).unwrap();
    }
}

#[test]
fn layers_match_keras() {
    let fx = fixture("keras_layers.json");
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 50);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let class = c["class_name"].as_str().unwrap();
        let layer =
            registry::from_config(class, &c["config"]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = Value::Object(layer.get_config());
        assert!(
            json_eq(&got, &c["config"]),
            "{name}: get_config differs:\n ours  {got}\n keras {}",
            c["config"]
        );
        let inputs: Vec<_> = c["inputs"].as_array().unwrap().iter().map(tensor).collect();
        let specs: Vec<_> = inputs.iter().map(TensorSpec::of_batch).collect();
        layer
            .ensure_built(&specs)
            .unwrap_or_else(|e| panic!("{name}: build: {e}"));
        set_weights(layer.as_ref(), &c["weights"], name);
        let out = layer
            .forward(&inputs, false)
            .unwrap_or_else(|e| panic!("{name}: call: {e}"));
        let expected: Vec<_> = c["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(tensor)
            .collect();
        assert_eq!(out.len(), expected.len(), "{name}: output count");
        for (o, e) in out.iter().zip(&expected) {
            assert_close(name, o, e, 1e-4, 1e-5);
        }
        // The static output spec agrees with what the layer returns.
        let spec = layer.compute_output_spec(&specs).unwrap();
        for (s, o) in spec.iter().zip(&out) {
            let dims: Vec<usize> = s.shape.iter().skip(1).map(|d| d.unwrap()).collect();
            assert_eq!(&dims[..], &o.shape()[1..], "{name}: compute_output_spec");
        }
        if let Some(train) = c.get("train_outputs") {
            let out = layer.forward(&inputs, true).unwrap();
            assert_close(
                &format!("{name} (training)"),
                &out[0],
                &tensor(&train[0]),
                1e-4,
                1e-5,
            );
            for w in c["weights_after_train"].as_array().unwrap() {
                let wn = w["name"].as_str().unwrap();
                let mine = layer
                    .weights()
                    .into_iter()
                    .find(|o| weight_suffix(o.variable.name()) == wn)
                    .unwrap();
                assert_close(
                    &format!("{name}/{wn} after a training call"),
                    &mine.variable.read_untracked(),
                    &tensor(&w["value"]),
                    1e-4,
                    1e-6,
                );
            }
        }
        // from_config(get_config()) rebuilds an equal config.
        let again = registry::from_config(class, &got).unwrap();
        assert!(
            json_eq(&Value::Object(again.get_config()), &got),
            "{name}: config round trip"
        );
    }
}
