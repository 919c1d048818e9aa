//! A model's description for tools (`ferroflow inspect`): its signature, layers,
//! parameters and training setup, as JSON.

use crate::layer::{Dims, LayerExt, LayerRef};
use crate::models::Model;
use serde_json::{json, Map, Value};

fn dims_json(d: &Dims) -> Value {
    Value::Array(
        d.iter()
            .map(|x| x.map_or(Value::Null, |v| json!(v)))
            .collect(),
    )
}

/// Counts layer classes of `layers` and of the models nested in them.
fn count_classes(layers: &[LayerRef], counts: &mut Vec<(String, usize)>) {
    for l in layers {
        let class = l.class_name().to_string();
        match counts.iter_mut().find(|(c, _)| *c == class) {
            Some(entry) => entry.1 += 1,
            None => counts.push((class, 1)),
        }
        if l.as_network().is_some() {
            count_classes(&l.sublayers(), counts);
        }
    }
}

impl Model {
    /// The model as JSON: `name`, `class`, `inputs` and `outputs` (name, dtype, shape with
    /// `null` for unknown dimensions), `layers` (per class, nested models' layers
    /// included), `parameters` (`count`, `trainable`, `non_trainable`, `bytes`) and
    /// `compiled` (optimizer, losses, metrics) when compiled.
    pub fn describe(&self) -> Value {
        let specs = self.input_specs().unwrap_or_default();
        let inputs: Vec<Value> = specs
            .iter()
            .zip(self.input_names())
            .map(|(s, n)| json!({"name": n, "dtype": s.dtype.to_string(), "shape": dims_json(&s.shape)}))
            .collect();
        let out_specs = self.net.compute_output_spec(&specs).unwrap_or_default();
        let outputs: Vec<Value> = self
            .output_names()
            .into_iter()
            .enumerate()
            .map(|(i, n)| match out_specs.get(i) {
                Some(s) => {
                    json!({"name": n, "dtype": s.dtype.to_string(), "shape": dims_json(&s.shape)})
                }
                None => json!({"name": n}),
            })
            .collect();
        let mut counts = Vec::new();
        count_classes(&self.layers(), &mut counts);
        let layers: Vec<Value> = counts
            .into_iter()
            .map(|(c, n)| json!({"class": c, "count": n}))
            .collect();
        let numel = |vs: Vec<ferroflow_core::Variable>| -> (usize, usize) {
            vs.iter().fold((0, 0), |(n, b), v| {
                let k = v.shape().iter().product::<usize>();
                (n + k, b + k * v.dtype().size_in_bytes())
            })
        };
        let (trainable, tb) = numel(self.net.trainable_variables());
        let (frozen, fb) = numel(self.net.non_trainable_variables());
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name()));
        m.insert("class".into(), json!(self.net.class_name()));
        m.insert("inputs".into(), Value::Array(inputs));
        m.insert("outputs".into(), Value::Array(outputs));
        m.insert("layers".into(), Value::Array(layers));
        m.insert(
            "parameters".into(),
            json!({"count": trainable + frozen, "trainable": trainable, "non_trainable": frozen, "bytes": tb + fb}),
        );
        if let Some(c) = &self.compiled {
            m.insert(
                "compiled".into(),
                json!({
                    "optimizer": c.optimizer.name(),
                    "losses": c.losses.iter().map(|l| l.name()).collect::<Vec<_>>(),
                    "metrics": c.metrics,
                }),
            );
        }
        Value::Object(m)
    }
}
