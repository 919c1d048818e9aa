//! Algebraic simplification: identities (x·1, x+0, x−0, x/1), transpose of transpose,
//! reshape chains and no-op reshapes/broadcasts.

use crate::graph::{Graph, NodeKind, Value};
use ferroflow_core::trace::OpKind;
use ferroflow_core::{BinaryOp, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// Whether every element of `t` equals `v`.
fn all_equal(t: &Tensor, v: f64) -> bool {
    t.numel() <= 4096 && t.to_f64_vec().iter().all(|&x| x == v)
}

/// Applies the identities above. Returns how many nodes were bypassed or rewritten.
pub fn simplify(g: &mut Graph) -> usize {
    let mut subst: HashMap<Value, Value> = HashMap::new();
    let mut changed = 0;
    for i in 0..g.nodes.len() {
        let resolve = |v: Value| *subst.get(&v).unwrap_or(&v);
        let inputs: Vec<Value> = g.nodes[i].inputs.iter().map(|&v| resolve(v)).collect();
        g.nodes[i].inputs = inputs.clone();
        let NodeKind::Op { kind, .. } = &g.nodes[i].kind else {
            continue;
        };
        let out = g.nodes[i].outputs.first().cloned();
        let konst = |v: Value| match &g.nodes[v.node].kind {
            NodeKind::Const(t) => Some(t.clone()),
            _ => None,
        };
        let same_as_out = |v: Value| Some(g.info(v)) == out.as_ref();
        let bypass: Option<Value> = match kind {
            OpKind::Binary(op) => {
                let (a, b) = (inputs[0], inputs[1]);
                let is = |v: Value, x: f64| konst(v).is_some_and(|t| all_equal(&t, x));
                match op {
                    BinaryOp::Mul if is(b, 1.0) && same_as_out(a) => Some(a),
                    BinaryOp::Mul if is(a, 1.0) && same_as_out(b) => Some(b),
                    BinaryOp::Add if is(b, 0.0) && same_as_out(a) => Some(a),
                    BinaryOp::Add if is(a, 0.0) && same_as_out(b) => Some(b),
                    BinaryOp::Sub if is(b, 0.0) && same_as_out(a) => Some(a),
                    BinaryOp::Div if is(b, 1.0) && same_as_out(a) => Some(a),
                    _ => None,
                }
            }
            OpKind::Reshape | OpKind::BroadcastTo if same_as_out(inputs[0]) => Some(inputs[0]),
            _ => None,
        };
        if let Some(v) = bypass {
            subst.insert(Value::of(i), v);
            changed += 1;
            continue;
        }
        // Chains: the producer is the same kind of view.
        let Some(&src) = inputs.first() else {
            continue;
        };
        let producer = &g.nodes[src.node];
        match (kind.clone(), &producer.kind) {
            (
                OpKind::Reshape,
                NodeKind::Op {
                    kind: OpKind::Reshape,
                    ..
                },
            ) => {
                // reshape(reshape(x)) = reshape(x): the outer replay reshapes any input.
                g.nodes[i].inputs[0] = producer.inputs[0];
                changed += 1;
            }
            (
                OpKind::Transpose(outer),
                NodeKind::Op {
                    kind: OpKind::Transpose(inner),
                    ..
                },
            ) => {
                let x = producer.inputs[0];
                let composed: Vec<usize> = outer.iter().map(|&p| inner[p]).collect();
                if composed.iter().enumerate().all(|(k, &p)| k == p) {
                    subst.insert(Value::of(i), x);
                } else {
                    let perm = composed.clone();
                    g.nodes[i].kind = NodeKind::Op {
                        name: "transpose",
                        attrs: format!("perm={composed:?}"),
                        kind: OpKind::Transpose(composed),
                        replay: Arc::new(move |t: Vec<Tensor>| Ok(vec![t[0].transpose(&perm)?])),
                    };
                    g.nodes[i].inputs[0] = x;
                }
                changed += 1;
            }
            _ => {}
        }
    }
    g.substitute(&subst);
    changed
}
