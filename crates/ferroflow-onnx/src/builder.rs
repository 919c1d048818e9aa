//! Accumulates an ONNX graph's nodes and initializers with unique names.

use crate::proto::attribute_proto::AttributeType;
use crate::proto::{AttributeProto, NodeProto, TensorProto};
use std::collections::HashSet;

/// Nodes and initializers under construction.
pub struct Builder {
    /// The opset being written.
    pub opset: i64,
    /// Nodes in topological order.
    pub nodes: Vec<NodeProto>,
    /// Weights and constants.
    pub initializers: Vec<TensorProto>,
    names: HashSet<String>,
}

impl Builder {
    /// An empty graph for `opset`; `reserved` names (inputs, outputs) are never generated.
    pub fn new(opset: i64, reserved: impl IntoIterator<Item = String>) -> Builder {
        Builder {
            opset,
            nodes: Vec::new(),
            initializers: Vec::new(),
            names: reserved.into_iter().collect(),
        }
    }

    /// A name not used yet, built from `hint`.
    pub fn fresh(&mut self, hint: &str) -> String {
        let mut name = hint.to_string();
        let mut i = 1;
        while !self.names.insert(name.clone()) {
            name = format!("{hint}_{i}");
            i += 1;
        }
        name
    }

    /// Adds a node of `op` writing `output` (a name from [`Builder::fresh`] or reserved).
    pub fn node_to(&mut self, op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) {
        let name = self.fresh(&format!("{op}_{}", self.nodes.len()));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: Some(name),
            op_type: Some(op.to_string()),
            attribute: attrs,
            ..Default::default()
        });
    }

    /// Adds a node of `op` with one new output and returns the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.node_to(op, inputs, &out, attrs);
        out
    }

    /// Adds an initializer (its name is made unique from `hint`) and returns its name.
    pub fn initializer(&mut self, hint: &str, mut t: TensorProto) -> String {
        let name = self.fresh(hint);
        t.name = Some(name.clone());
        self.initializers.push(t);
        name
    }

    /// An int64 vector constant.
    pub fn int64s(&mut self, hint: &str, values: &[i64]) -> String {
        self.initializer(hint, crate::tensor::int64s(hint, values))
    }
}

/// An integer attribute.
pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

/// An integer-list attribute.
pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A float attribute.
pub fn float(name: &str, v: f64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v as f32),
        ..Default::default()
    }
}

/// A string attribute.
pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}
