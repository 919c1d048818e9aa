//! A node's attributes by name, with ONNX's defaults.

use crate::proto::{AttributeProto, GraphProto, NodeProto};
use ferroflow_core::{Error, Result, Tensor};

/// The attributes of one node.
pub struct Attrs<'a>(&'a NodeProto);

impl<'a> Attrs<'a> {
    /// The attributes of `node`.
    pub fn of(node: &'a NodeProto) -> Attrs<'a> {
        Attrs(node)
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.0
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    /// Whether the attribute is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// An integer attribute, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).and_then(|a| a.i).unwrap_or(default)
    }

    /// A float attribute, or `default`.
    pub fn float(&self, name: &str, default: f64) -> f64 {
        self.get(name).and_then(|a| a.f).map_or(default, f64::from)
    }

    /// An integer-list attribute, if present.
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }

    /// A float-list attribute, if present.
    pub fn floats(&self, name: &str) -> Option<Vec<f32>> {
        self.get(name).map(|a| a.floats.clone())
    }

    /// A string attribute, or `default`.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).and_then(|a| a.s.as_ref()).map_or_else(
            || default.to_string(),
            |s| String::from_utf8_lossy(s).into_owned(),
        )
    }

    /// A string-list attribute (empty when absent).
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|a| {
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A tensor attribute, if present.
    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        self.get(name)
            .and_then(|a| a.t.as_ref())
            .map(crate::tensor::from_proto)
            .transpose()
    }

    /// A graph attribute (a branch or loop body).
    pub fn graph(&self, name: &str) -> Result<&'a GraphProto> {
        self.get(name).and_then(|a| a.g.as_ref()).ok_or_else(|| {
            Error::invalid(
                "onnx",
                format!(
                    "node {} has no graph attribute '{name}'",
                    super::node_label(self.0)
                ),
            )
        })
    }
}
