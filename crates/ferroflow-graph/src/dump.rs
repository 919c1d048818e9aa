//! Readable dumps of a graph: text (one line per node) and Graphviz DOT.

use crate::graph::{Graph, NodeKind, Value, ValueInfo};
use std::fmt::Write;

fn name(g: &Graph, v: Value) -> String {
    if g.nodes[v.node].outputs.len() > 1 {
        format!("%{}.{}", v.node, v.output)
    } else {
        format!("%{}", v.node)
    }
}

fn ty(info: &ValueInfo) -> String {
    format!("{}{:?}", info.dtype, info.shape)
}

fn label(g: &Graph, i: usize) -> String {
    match &g.nodes[i].kind {
        NodeKind::Const(t) if t.numel() == 1 => format!("const {}", t.to_f64_vec()[0]),
        k => k.name(),
    }
}

/// One line per node: `%5 = matmul(transpose_a=false, ...) %1, %4 : float32[32, 256]`.
pub fn to_text(g: &Graph, title: &str) -> String {
    let mut s = format!(
        "function {title} ({} ops, {} nodes)\n",
        g.op_count(),
        g.nodes.len()
    );
    for (i, n) in g.nodes.iter().enumerate() {
        let args: Vec<String> = n.inputs.iter().map(|&v| name(g, v)).collect();
        let outs: Vec<String> = (0..n.outputs.len())
            .map(|k| name(g, Value { node: i, output: k }))
            .collect();
        let types: Vec<String> = n.outputs.iter().map(ty).collect();
        let lhs = if outs.is_empty() {
            String::new()
        } else {
            format!("{} = ", outs.join(", "))
        };
        let rhs = if types.is_empty() {
            String::new()
        } else {
            format!(" : {}", types.join(", "))
        };
        let _ = writeln!(s, "  {lhs}{} {}{rhs}", label(g, i), args.join(", "));
    }
    let outs: Vec<String> = g.outputs.iter().map(|&v| name(g, v)).collect();
    let _ = writeln!(s, "  return {}", outs.join(", "));
    s
}

/// A Graphviz digraph: nodes labelled with their op and output type, edges for values.
pub fn to_dot(g: &Graph, title: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut s = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n",
        esc(title)
    );
    for (i, n) in g.nodes.iter().enumerate() {
        let shape = match n.kind {
            NodeKind::Input(_) => "shape=invhouse, ",
            NodeKind::Const(_) => "shape=ellipse, ",
            NodeKind::ReadVariable(_) | NodeKind::AssignVariable(_) => "shape=cylinder, ",
            NodeKind::Fused(_) => "style=filled, fillcolor=lightblue, ",
            _ => "",
        };
        let types: Vec<String> = n.outputs.iter().map(ty).collect();
        let _ = writeln!(
            s,
            "  n{i} [{shape}label=\"{}\\n{}\"];",
            esc(&label(g, i)),
            esc(&types.join(", "))
        );
        for v in &n.inputs {
            let _ = writeln!(s, "  n{} -> n{i};", v.node);
        }
    }
    for (k, v) in g.outputs.iter().enumerate() {
        let _ = writeln!(
            s,
            "  out{k} [shape=house, label=\"output {k}\"];\n  n{} -> out{k};",
            v.node
        );
    }
    s.push_str("}\n");
    s
}
