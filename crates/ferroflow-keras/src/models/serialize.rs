//! Model configs in Keras 3's JSON shape: writing (`serialize_keras_object`) and rebuilding
//! Sequential and Functional models from them.

use super::functional::Functional;
use super::sequential::Sequential;
use super::symbolic::{connect, Input, KerasTensor};
use crate::layer::{Layer, LayerExt, LayerRef};
use crate::layers::array_operation::ArrayOperation;
use crate::layers::operation::{self, Operation};
use crate::layers::{registry, InputLayer};
use ferroflow_core::{Error, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The serialised form of a layer: module, class, config, build config.
pub fn layer_json(layer: &dyn Layer) -> Value {
    let class = layer.class_name();
    let (module, registered) = match class {
        "Sequential" => ("keras", Value::Null),
        "Functional" => ("keras.src.models.functional", Value::from("Functional")),
        _ if layer.keras_module() == operation::MODULE => (operation::MODULE, Value::from(class)),
        _ => (layer.keras_module(), Value::Null),
    };
    let mut m = serde_json::Map::new();
    m.insert("module".into(), Value::from(module));
    m.insert("class_name".into(), Value::from(class));
    m.insert("config".into(), Value::Object(layer.get_config()));
    m.insert("registered_name".into(), registered);
    if class != "InputLayer" && layer.keras_module() != operation::MODULE {
        if let Some(specs) = layer.base().built_specs() {
            m.insert("build_config".into(), layer.build_config(specs));
        } else if class == "Functional" {
            m.insert("build_config".into(), json!({ "input_shape": null }));
        }
    }
    Value::Object(m)
}

fn bad(msg: String) -> Error {
    Error::invalid("model config", msg)
}

/// Rebuilds a Sequential model from its config.
pub fn sequential_from_config(config: &Value) -> Result<Sequential> {
    let name = config.get("name").and_then(Value::as_str);
    let seq = Sequential::new(name);
    let layers = config
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("Sequential config has no 'layers' list".into()))?;
    let mut has_input = false;
    for l in layers {
        let layer = registry::from_json(l)?;
        has_input |= layer.class_name() == "InputLayer";
        seq.add(layer)?;
    }
    if !has_input {
        if let Some(shape) = config.get("build_input_shape").and_then(Value::as_array) {
            let dims = shape
                .iter()
                .map(|d| d.as_u64().map(|x| x as usize))
                .collect();
            seq.build_for(crate::layer::TensorSpec::new(
                dims,
                ferroflow_core::DType::F32,
            ))?;
        }
    }
    if let Some(false) = config.get("trainable").and_then(Value::as_bool) {
        seq.set_trainable(false);
    }
    Ok(seq)
}

/// `[layer_name, node_index, tensor_index]`.
fn history(v: &Value) -> Result<(String, usize, usize)> {
    let a = v
        .as_array()
        .filter(|a| a.len() == 3)
        .ok_or_else(|| bad(format!("bad keras_history {v}")))?;
    let name = a[0]
        .as_str()
        .ok_or_else(|| bad(format!("bad keras_history {v}")))?;
    let n = a[1]
        .as_u64()
        .ok_or_else(|| bad(format!("bad keras_history {v}")))?;
    let t = a[2]
        .as_u64()
        .ok_or_else(|| bad(format!("bad keras_history {v}")))?;
    Ok((name.to_string(), n as usize, t as usize))
}

/// Collects the `__keras_tensor__` references of a node's args, in order.
fn tensor_refs(v: &Value, out: &mut Vec<(String, usize, usize)>) -> Result<()> {
    match v {
        Value::Array(a) => a.iter().try_for_each(|x| tensor_refs(x, out)),
        Value::Object(o)
            if o.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") =>
        {
            let h = o
                .get("config")
                .and_then(|c| c.get("keras_history"))
                .ok_or_else(|| bad("keras tensor without keras_history".into()))?;
            out.push(history(h)?);
            Ok(())
        }
        Value::Object(_) => Err(bad(format!("unsupported node argument {v}"))),
        _ => Ok(()),
    }
}

/// Rebuilds a Functional model from its config (layers with inbound nodes).
pub fn functional_from_config(config: &Value) -> Result<Functional> {
    let layers = config
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("Functional config has no 'layers' list".into()))?;
    let mut by_name: HashMap<String, LayerRef> = HashMap::new();
    let mut order: Vec<(String, Vec<Value>)> = Vec::new();
    let mut produced: HashMap<(String, usize), Vec<KerasTensor>> = HashMap::new();
    for entry in layers {
        let class = entry
            .get("class_name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = entry
            .get("name")
            .or_else(|| entry.get("config").and_then(|c| c.get("name")))
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("layer without a name: {entry}")))?
            .to_string();
        if class == "InputLayer" {
            let il = Arc::new(InputLayer::from_config(
                entry.get("config").unwrap_or(&Value::Null),
            )?);
            produced.insert((name.clone(), 0), vec![Input::from_layer(il.clone())]);
            by_name.insert(name.clone(), il);
            continue;
        }
        let module = entry.get("module").and_then(Value::as_str);
        let layer: LayerRef = if module == Some(operation::MODULE) {
            match ArrayOperation::from_entry(class, entry)? {
                Some(op) => Arc::new(op),
                None => Arc::new(Operation::from_entry(entry)?),
            }
        } else {
            registry::from_json(entry)?
        };
        let nodes = entry
            .get("inbound_nodes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        by_name.insert(name.clone(), layer);
        order.push((name, nodes));
    }
    // Connect nodes in order, deferring a node until the tensors it reads exist.
    let mut next: Vec<usize> = vec![0; order.len()];
    loop {
        let mut progress = false;
        let mut pending = false;
        for (li, (name, nodes)) in order.iter().enumerate() {
            while next[li] < nodes.len() {
                let node = &nodes[next[li]];
                let mut refs = Vec::new();
                tensor_refs(node.get("args").unwrap_or(&Value::Null), &mut refs)?;
                let inputs: Option<Vec<KerasTensor>> = refs
                    .iter()
                    .map(|(n, k, t)| {
                        produced
                            .get(&(n.clone(), *k))
                            .and_then(|v| v.get(*t))
                            .cloned()
                    })
                    .collect();
                let Some(inputs) = inputs else {
                    pending = true;
                    break;
                };
                let outs = connect(by_name[name].clone(), &inputs)?;
                produced.insert((name.clone(), next[li]), outs);
                next[li] += 1;
                progress = true;
            }
        }
        if !pending {
            break;
        }
        if !progress {
            return Err(bad(
                "the model's layers reference tensors that no layer produces".into(),
            ));
        }
    }
    let pick = |key: &str| -> Result<Vec<KerasTensor>> {
        let list = config
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("no '{key}'")))?;
        // A single output may be written as one history instead of a list of them.
        let items: Vec<Value> = if list.len() == 3 && list[0].is_string() {
            vec![Value::Array(list.clone())]
        } else {
            list.clone()
        };
        items
            .iter()
            .map(|h| {
                let (n, k, t) = history(h)?;
                produced
                    .get(&(n.clone(), k))
                    .and_then(|v| v.get(t))
                    .cloned()
                    .ok_or_else(|| bad(format!("'{key}' names unknown tensor {h}")))
            })
            .collect()
    };
    let f = Functional::new(
        &pick("input_layers")?,
        &pick("output_layers")?,
        config.get("name").and_then(Value::as_str),
    )?;
    if let Some(false) = config.get("trainable").and_then(Value::as_bool) {
        f.set_trainable(false);
    }
    Ok(f)
}

/// Rebuilds a model from its serialised form (`{"class_name": "Sequential" | "Functional",
/// "config": ...}`), as `keras.models.model_from_json` does.
pub fn model_from_json(v: &Value) -> Result<super::Model> {
    let class = v.get("class_name").and_then(Value::as_str).unwrap_or("");
    let config = v.get("config").unwrap_or(&Value::Null);
    let net: Arc<dyn super::Network> = match class {
        "Sequential" => Arc::new(sequential_from_config(config)?),
        "Functional" | "Model" => Arc::new(functional_from_config(config)?),
        other => {
            return Err(bad(format!(
                "'{other}' is not a model class (Sequential, Functional)"
            )))
        }
    };
    Ok(super::Model::from_network(net))
}
