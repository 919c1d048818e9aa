//! Common-subexpression elimination: identical pure ops on identical inputs run once.

use crate::graph::{Graph, NodeKind, Value};
use ferroflow_core::autodiff::VariableId;
use std::collections::HashMap;

/// Constants up to this many elements are compared by value.
const SMALL_CONST: usize = 64;

#[derive(PartialEq, Eq, Hash)]
enum Key {
    Op(&'static str, String, String, Vec<Value>),
    Const(String, Vec<usize>, Vec<u8>),
    Read(VariableId, usize),
}

/// Merges duplicate pure ops, equal small constants, and repeated reads of a variable
/// between two of its assignments. Returns how many nodes were merged away.
pub fn eliminate_common_subexpressions(g: &mut Graph) -> usize {
    let mut seen: HashMap<Key, usize> = HashMap::new();
    let mut subst: HashMap<Value, Value> = HashMap::new();
    let mut assigns: HashMap<VariableId, usize> = HashMap::new();
    let resolve = |subst: &HashMap<Value, Value>, v: Value| *subst.get(&v).unwrap_or(&v);
    let mut merged = 0;
    for i in 0..g.nodes.len() {
        let inputs: Vec<Value> = g.nodes[i]
            .inputs
            .iter()
            .map(|&v| resolve(&subst, v))
            .collect();
        g.nodes[i].inputs = inputs.clone();
        let key = match &g.nodes[i].kind {
            NodeKind::Op {
                name, attrs, kind, ..
            } if kind.is_pure() => Key::Op(name, attrs.clone(), format!("{kind:?}"), inputs),
            NodeKind::Const(t) if t.numel() <= SMALL_CONST => {
                Key::Const(t.dtype().to_string(), t.shape().to_vec(), t.to_le_bytes())
            }
            NodeKind::ReadVariable(v) => {
                let id = v.id();
                Key::Read(id, *assigns.get(&id).unwrap_or(&0))
            }
            NodeKind::AssignVariable(v) => {
                *assigns.entry(v.id()).or_insert(0) += 1;
                continue;
            }
            _ => continue,
        };
        match seen.get(&key) {
            Some(&first) => {
                for k in 0..g.nodes[i].outputs.len() {
                    subst.insert(
                        Value { node: i, output: k },
                        Value {
                            node: first,
                            output: k,
                        },
                    );
                }
                merged += 1;
            }
            None => {
                seen.insert(key, i);
            }
        }
    }
    g.substitute(&subst);
    merged
}
