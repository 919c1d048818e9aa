//! When each value of a graph run eagerly dies: the values a node reads for the last time
//! (counting reads from inside its subgraphs), so that the eager run (and the trace that
//! compiles a model) holds only live tensors instead of every intermediate at once.

use crate::proto::GraphProto;
use std::collections::{HashMap, HashSet};

/// For each node of `g`, the names of values produced in `g` that no later node (nor any
/// subgraph of one) reads and that are not outputs of `g`: they can be let go once the
/// node has run. Values from the outer scope, inputs and initializers are never listed.
pub(crate) fn dying_after(g: &GraphProto) -> Vec<Vec<String>> {
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, node) in g.node.iter().enumerate() {
        for name in node.output.iter().filter(|n| !n.is_empty()) {
            last.insert(name, i);
        }
    }
    for (i, node) in g.node.iter().enumerate() {
        let mut reads: HashSet<&str> = node.input.iter().map(String::as_str).collect();
        for a in &node.attribute {
            for sub in a.g.iter().chain(&a.graphs) {
                subgraph_reads(sub, &mut reads);
            }
        }
        for name in reads {
            if let Some(l) = last.get_mut(name) {
                *l = (*l).max(i);
            }
        }
    }
    let kept: HashSet<&str> = g.output.iter().filter_map(|o| o.name.as_deref()).collect();
    let mut dying = vec![Vec::new(); g.node.len()];
    for (name, i) in last {
        if !kept.contains(name) {
            dying[i].push(name.to_string());
        }
    }
    dying
}

/// Every name the nodes of `g` and of its nested subgraphs read.
fn subgraph_reads<'a>(g: &'a GraphProto, reads: &mut HashSet<&'a str>) {
    for node in &g.node {
        reads.extend(node.input.iter().map(String::as_str));
        for a in &node.attribute {
            for sub in a.g.iter().chain(&a.graphs) {
                subgraph_reads(sub, reads);
            }
        }
    }
    reads.extend(g.output.iter().filter_map(|o| o.name.as_deref()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{AttributeProto, NodeProto, ValueInfoProto};

    fn node(ins: &[&str], outs: &[&str]) -> NodeProto {
        NodeProto {
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: outs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn graph(nodes: Vec<NodeProto>, outputs: &[&str]) -> GraphProto {
        GraphProto {
            node: nodes,
            output: outputs
                .iter()
                .map(|s| ValueInfoProto {
                    name: Some(s.to_string()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn values_die_after_their_last_reader_including_readers_inside_subgraphs() {
        // a = f(x); b = g(a); u = unread(b); c = If(b) { then: h(a) }; y = k(c, b)
        let branch = graph(vec![node(&["a"], &["t"])], &["t"]);
        let mut cond = node(&["b"], &["c"]);
        cond.attribute.push(AttributeProto {
            g: Some(branch),
            ..Default::default()
        });
        let g = graph(
            vec![
                node(&["x"], &["a"]),
                node(&["a"], &["b"]),
                node(&["b"], &["u"]),
                cond,
                node(&["c", "b"], &["y"]),
            ],
            &["y"],
        );
        let mut dying = dying_after(&g);
        dying.iter_mut().for_each(|d| d.sort());
        // `a` lives until the If whose branch reads it; the unread `u` dies where it is
        // made; the input `x` and the output `y` are never released.
        let want: Vec<Vec<&str>> = vec![vec![], vec![], vec!["u"], vec!["a"], vec!["b", "c"]];
        assert_eq!(dying, want);
    }
}
