//! Keras 3 operations called on symbolic tensors (`x + 3.0`, `1.0 - x`, `ops.multiply(a,
//! b)`) in functional configs, as Keras writes them: nodes of module `keras.src.ops.numpy`
//! with their constants among the call's arguments. MobileNetV3's hard sigmoid is made of
//! them.

use ferroflow_core::Tensor;
use ferroflow_keras::layer::LayerExt;
use ferroflow_keras::models::serialize::{layer_json, model_from_json};
use serde_json::{json, Value};

fn tensor(history: &str, shape: Value) -> Value {
    json!({"class_name": "__keras_tensor__",
           "config": {"shape": shape, "dtype": "float32", "keras_history": [history, 0, 0]}})
}

fn op(class: &str, name: &str, args: Value) -> Value {
    json!({"module": "keras.src.ops.numpy", "class_name": class, "config": {"name": name},
           "registered_name": class, "name": name,
           "inbound_nodes": [{"args": args, "kwargs": {}}]})
}

/// `y = ((1 - relu(x + 3)) * x) / 2 + x` with a keras.layers.Add merge at the end.
fn config() -> Value {
    let s = json!([null, 4]);
    json!({"class_name": "Functional", "config": {"name": "ops", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "name": "x",
         "config": {"batch_shape": [null, 4], "dtype": "float32", "name": "x"}, "inbound_nodes": []},
        op("Add", "add", json!([tensor("x", s.clone()), 3.0])),
        {"module": "keras.layers", "class_name": "ReLU", "name": "relu",
         "config": {"name": "relu", "trainable": true, "dtype": "float32", "max_value": null,
                    "negative_slope": 0.0, "threshold": 0.0},
         "inbound_nodes": [{"args": [tensor("add", s.clone())], "kwargs": {}}]},
        op("Subtract", "subtract", json!([1.0, tensor("relu", s.clone())])),
        op("Multiply", "multiply", json!([tensor("subtract", s.clone()), tensor("x", s.clone())])),
        op("TrueDivide", "true_divide", json!([tensor("multiply", s.clone()), 2])),
        {"module": "keras.layers", "class_name": "Add", "name": "sum",
         "config": {"name": "sum", "trainable": true, "dtype": "float32"},
         "inbound_nodes": [{"args": [[tensor("true_divide", s.clone()), tensor("x", s.clone())]],
                            "kwargs": {}}]},
    ], "input_layers": [["x", 0, 0]], "output_layers": [["sum", 0, 0]]}})
}

fn expected(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| (1.0 - (v + 3.0).max(0.0)) * v / 2.0 + v)
        .collect()
}

#[test]
fn operation_nodes_run_with_their_constants() {
    let model = model_from_json(&config()).unwrap();
    let xs = vec![-5.0f32, -1.0, 0.5, 2.0, 3.0, -3.5, 0.0, 7.0];
    let x = Tensor::from_vec(xs.clone(), &[2, 4]).unwrap();
    let y = model.predict(vec![x], 8).unwrap().remove(0);
    assert_eq!(y.shape(), &[2, 4]);
    assert_eq!(y.to_vec::<f32>().unwrap(), expected(&xs));
}

#[test]
fn operation_nodes_are_written_back_as_keras_writes_them() {
    let model = model_from_json(&config()).unwrap();
    let written = layer_json(model.network().as_ref());
    let layers = written["config"]["layers"].as_array().unwrap();
    let subtract = layers.iter().find(|l| l["name"] == "subtract").unwrap();
    assert_eq!(subtract["module"], "keras.src.ops.numpy");
    assert_eq!(subtract["class_name"], "Subtract");
    assert_eq!(subtract["config"], json!({"name": "subtract"}));
    let args = subtract["inbound_nodes"][0]["args"].as_array().unwrap();
    assert_eq!(args[0], json!(1.0));
    assert_eq!(args[1]["config"]["keras_history"], json!(["relu", 0, 0]));
    // The merge layer keeps its list argument.
    let sum = layers.iter().find(|l| l["name"] == "sum").unwrap();
    assert_eq!(sum["module"], "keras.layers");
    assert!(sum["inbound_nodes"][0]["args"][0].is_array());
    // And the written config rebuilds the same model.
    let again = model_from_json(&written).unwrap();
    let xs = vec![1.5f32, -2.0, 4.0, -0.25];
    let y = again
        .predict(vec![Tensor::from_vec(xs.clone(), &[1, 4]).unwrap()], 8)
        .unwrap()
        .remove(0);
    assert_eq!(y.to_vec::<f32>().unwrap(), expected(&xs));
}

#[test]
fn unsupported_operations_and_arguments_are_errors_naming_them() {
    let s = json!([null, 4]);
    let mut cfg = config();
    cfg["config"]["layers"][1] = op("Arctan2", "add", json!([tensor("x", s.clone()), 3.0]));
    let e = model_from_json(&cfg).err().unwrap().to_string();
    assert!(
        e.contains("Arctan2") && e.contains("keras.src.ops.numpy"),
        "{e}"
    );
    let mut cfg = config();
    cfg["config"]["layers"][1] = op("Add", "add", json!([tensor("x", s.clone()), "three"]));
    let e = model_from_json(&cfg).err().unwrap().to_string();
    assert!(
        e.contains("'add'") && e.contains("tensors or numbers"),
        "{e}"
    );
    let mut cfg = config();
    cfg["config"]["layers"][1] = op("Add", "add", json!([2.0, 3.0]));
    let e = model_from_json(&cfg).err().unwrap().to_string();
    assert!(e.contains("no tensor argument"), "{e}");
}

#[test]
fn the_operation_is_a_layer_without_weights() {
    let model = model_from_json(&config()).unwrap();
    let ops: Vec<_> = model
        .network()
        .sublayers()
        .into_iter()
        .filter(|l| l.as_operation().is_some())
        .collect();
    assert_eq!(ops.len(), 4);
    assert!(ops.iter().all(|l| l.weights().is_empty()));
}
