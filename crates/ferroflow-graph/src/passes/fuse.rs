//! Elementwise fusion: trees of f32 unary/binary ops (with broadcasting) whose
//! intermediates have one consumer become one [`FusedKernel`]; a trailing sum/max/min over
//! leading or trailing axes joins the loop, and a `matmul`/`conv2d` feeding the tree runs
//! as its prologue so bias and activation are applied to its buffer in place.

use crate::fused::{Access, FusedKernel, FusedReduce, Instr, Prologue};
use crate::graph::{Graph, Node, NodeKind, Value};
use ferroflow_core::trace::OpKind;
use ferroflow_core::{BinaryOp, DType, ReduceOp, UnaryOp};
use std::collections::HashMap;
use std::sync::Arc;

fn fusable(n: &Node) -> bool {
    let NodeKind::Op { kind, .. } = &n.kind else {
        return false;
    };
    let ok = match kind {
        OpKind::Unary(op) => !matches!(op, UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round),
        OpKind::Binary(op) => !matches!(op, BinaryOp::FloorDiv | BinaryOp::FloorMod),
        _ => false,
    };
    ok && n.outputs.len() == 1 && n.outputs[0].dtype == DType::F32
}

/// Fuses what it can. Returns (ops absorbed, kernels created).
pub fn fuse_elementwise(g: &mut Graph) -> (usize, usize) {
    let uses = g.use_counts();
    let single = |v: Value| uses.get(&v) == Some(&1);
    // Each group's nodes (ascending), keyed by its root, the last of them.
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..g.nodes.len() {
        if !fusable(&g.nodes[i]) {
            continue;
        }
        let domain = &g.nodes[i].outputs[0].shape;
        let mut members = vec![i];
        for &v in &g.nodes[i].inputs {
            if single(v) && &g.info(v).shape == domain && !g.outputs.contains(&v) {
                if let Some(grp) = groups.remove(&v.node) {
                    members.extend(grp);
                }
            }
        }
        members.sort_unstable();
        members.dedup();
        groups.insert(i, members);
    }
    let mut absorbed = 0;
    let mut kernels = 0;
    let mut remove = vec![false; g.nodes.len()];
    // Roots in order; reductions consuming a root.
    let mut roots: Vec<usize> = groups.keys().copied().collect();
    roots.sort_unstable();
    let consumer_of: HashMap<Value, usize> = {
        let mut m = HashMap::new();
        for (j, n) in g.nodes.iter().enumerate() {
            for &v in &n.inputs {
                m.insert(v, j);
            }
        }
        m
    };
    for root in roots {
        let grp = &groups[&root];
        let root_v = Value::of(root);
        let domain = g.nodes[root].outputs[0].shape.clone();
        // A reduction of the root joins the loop.
        let mut reduce = None;
        let mut top = root;
        if single(root_v) && !g.outputs.contains(&root_v) {
            if let Some(&r) = consumer_of.get(&root_v) {
                if let NodeKind::Op {
                    kind: OpKind::Reduce { op, axes, .. },
                    ..
                } = &g.nodes[r].kind
                {
                    let rank = domain.len();
                    let leading = !axes.is_empty() && axes.iter().enumerate().all(|(k, &a)| a == k);
                    let trailing = !axes.is_empty()
                        && axes
                            .iter()
                            .rev()
                            .enumerate()
                            .all(|(k, &a)| a == rank - 1 - k);
                    if matches!(op, ReduceOp::Sum | ReduceOp::Max | ReduceOp::Min)
                        && (leading || trailing)
                    {
                        let split = if leading {
                            axes.len()
                        } else {
                            rank - axes.len()
                        };
                        reduce = Some(FusedReduce {
                            op: *op,
                            leading,
                            split,
                        });
                        top = r;
                    }
                }
            }
        }
        // External inputs in order of first use.
        let member_set: std::collections::HashSet<usize> = grp.iter().copied().collect();
        let mut ext: Vec<Value> = Vec::new();
        for &m in grp {
            for &v in &g.nodes[m].inputs {
                if !member_set.contains(&v.node) && !ext.contains(&v) {
                    ext.push(v);
                }
            }
        }
        // A matmul or conv feeding the tree, read once and shaped like the domain.
        let mut prologue = None;
        if reduce.is_none() {
            if let Some(pos) = ext.iter().position(|&v| {
                let p = &g.nodes[v.node];
                let is_producer = matches!(
                    &p.kind,
                    NodeKind::Op {
                        kind: OpKind::MatMul { .. },
                        ..
                    }
                ) || matches!(&p.kind, NodeKind::Op { name: "conv2d", .. });
                is_producer
                    && single(v)
                    && g.info(v).shape == domain
                    && g.info(v).dtype == DType::F32
                    && !g.outputs.contains(&v)
            }) {
                let v = ext.remove(pos);
                ext.insert(0, v);
                prologue = Some(v.node);
            }
        }
        if grp.len() < 2 && reduce.is_none() && prologue.is_none() {
            continue;
        }
        // The program.
        let mut reg: HashMap<Value, usize> = ext.iter().enumerate().map(|(k, &v)| (v, k)).collect();
        let mut program = Vec::new();
        let mut names = Vec::new();
        for &m in grp {
            let NodeKind::Op { kind, name, .. } = &g.nodes[m].kind else {
                unreachable!()
            };
            let ins: Vec<usize> = g.nodes[m].inputs.iter().map(|v| reg[v]).collect();
            program.push(match kind {
                OpKind::Unary(op) => Instr::Unary(*op, ins[0]),
                OpKind::Binary(op) => Instr::Binary(*op, ins[0], ins[1]),
                _ => unreachable!("only fusable ops are members"),
            });
            names.push((*name).to_string());
            reg.insert(Value::of(m), ext.len() + program.len() - 1);
        }
        let access = ext
            .iter()
            .map(|&v| Access::of(&g.info(v).shape, &domain))
            .collect();
        let out_shape = g.nodes[top].outputs[0].shape.clone();
        let mut inputs = ext.clone();
        let pro = prologue.map(|p| {
            let NodeKind::Op {
                name,
                attrs,
                replay,
                kind,
            } = &g.nodes[p].kind
            else {
                unreachable!()
            };
            inputs.splice(0..1, g.nodes[p].inputs.clone());
            remove[p] = true;
            absorbed += 1;
            Prologue {
                label: if attrs.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}({attrs})")
                },
                replay: replay.clone(),
                arity: g.nodes[p].inputs.len(),
                conv: match kind {
                    OpKind::Conv2d(spec) if g.nodes[p].inputs.len() == 2 => Some(*spec),
                    _ => None,
                },
            }
        });
        let kernel = FusedKernel {
            prologue: pro,
            domain,
            access,
            program,
            reduce,
            out_shape,
            names,
        };
        for &m in grp {
            remove[m] = true;
        }
        absorbed += grp.len() + usize::from(top != root);
        remove[top] = false;
        let outputs = g.nodes[top].outputs.clone();
        g.nodes[top] = Node {
            kind: NodeKind::Fused(Arc::new(kernel)),
            inputs,
            outputs,
        };
        kernels += 1;
    }
    if kernels > 0 {
        let keep: Vec<bool> = remove.iter().map(|r| !r).collect();
        g.retain(&keep);
    }
    (absorbed, kernels)
}
