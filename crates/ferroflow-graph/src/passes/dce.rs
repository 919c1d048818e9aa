//! Dead-code elimination: drop nodes whose values nothing needs.

use crate::graph::{Graph, NodeKind};

/// Removes every node that neither produces a needed value nor has a side effect
/// (variable assignments stay). Returns how many nodes were removed.
pub fn eliminate_dead_code(g: &mut Graph) -> usize {
    let n = g.nodes.len();
    let mut live = vec![false; n];
    for o in &g.outputs {
        live[o.node] = true;
    }
    for i in (0..n).rev() {
        let node = &g.nodes[i];
        if !node.kind.is_removable() || matches!(node.kind, NodeKind::Input(_)) {
            live[i] = true;
        }
        if live[i] {
            for v in &node.inputs {
                live[v.node] = true;
            }
        }
    }
    let removed = live.iter().filter(|&&l| !l).count();
    if removed > 0 {
        g.retain(&live);
    }
    removed
}
