//! Constant folding: ops whose inputs are all constants run once, at trace time.

use crate::graph::{Graph, NodeKind, Value, ValueInfo};

/// Largest folded result kept as a constant (bigger results stay computed).
const MAX_FOLD_BYTES: usize = 16 << 20;

/// Moves constants to the front (so later passes may read them from anywhere) and
/// replaces every pure single-output op whose inputs are constants by its value.
/// Returns how many ops were folded.
pub fn fold_constants(g: &mut Graph) -> usize {
    hoist_constants(g);
    let mut folded = 0;
    for i in 0..g.nodes.len() {
        let node = &g.nodes[i];
        if !node.kind.is_pure_op()
            || node.outputs.len() != 1
            || node.outputs[0].bytes() > MAX_FOLD_BYTES
        {
            continue;
        }
        let NodeKind::Op { replay, .. } = &node.kind else {
            continue;
        };
        let consts: Option<Vec<_>> = node
            .inputs
            .iter()
            .map(|v| match &g.nodes[v.node].kind {
                NodeKind::Const(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        let Some(consts) = consts else { continue };
        // An op that fails on its constants is left to fail at run time, as eagerly.
        if let Ok(mut out) = replay(consts) {
            if out.len() == 1 && ValueInfo::of(&out[0]) == node.outputs[0] {
                // A folded view (a transposed weight, say) is gathered once here rather
                // than by its reader on every call.
                let t = out.remove(0).contiguous();
                g.nodes[i].kind = NodeKind::Const(t);
                g.nodes[i].inputs.clear();
                folded += 1;
            }
        }
    }
    folded
}

/// Reorders nodes so that constants come first, keeping everything else in order.
fn hoist_constants(g: &mut Graph) {
    let is_const = |k: &NodeKind| matches!(k, NodeKind::Const(_));
    if g.nodes
        .iter()
        .skip_while(|n| is_const(&n.kind))
        .all(|n| !is_const(&n.kind))
    {
        return;
    }
    let order: Vec<usize> = (0..g.nodes.len())
        .filter(|&i| is_const(&g.nodes[i].kind))
        .chain((0..g.nodes.len()).filter(|&i| !is_const(&g.nodes[i].kind)))
        .collect();
    let mut position = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        position[old] = new;
    }
    let mut old_nodes: Vec<Option<crate::graph::Node>> =
        std::mem::take(&mut g.nodes).into_iter().map(Some).collect();
    let remap = |v: &mut Value| v.node = position[v.node];
    for &old in &order {
        let mut n = old_nodes[old].take().expect("each node moves once");
        n.inputs.iter_mut().for_each(remap);
        g.nodes.push(n);
    }
    g.outputs.iter_mut().for_each(remap);
}
