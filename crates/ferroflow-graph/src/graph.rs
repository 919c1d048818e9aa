//! The graph IR: nodes in execution order, each producing typed values.

use crate::fused::FusedKernel;
use ferroflow_core::trace::{HostFn, OpKind, Replay};
use ferroflow_core::{DType, Tensor, Variable};
use std::sync::Arc;

/// One output of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value {
    /// Index of the producing node.
    pub node: usize,
    /// Which of its outputs.
    pub output: usize,
}

impl Value {
    /// The first output of `node`.
    pub fn of(node: usize) -> Value {
        Value { node, output: 0 }
    }
}

/// Static facts about a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ValueInfo {
    /// Concrete shape (plans are specialised per input shapes).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
}

impl ValueInfo {
    /// The facts of a tensor.
    pub fn of(t: &Tensor) -> ValueInfo {
        ValueInfo {
            shape: t.shape().to_vec(),
            dtype: t.dtype(),
        }
    }

    /// Bytes the value occupies.
    pub fn bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size_in_bytes()
    }
}

/// What a node does.
#[derive(Clone)]
pub enum NodeKind {
    /// The function's `i`-th argument.
    Input(usize),
    /// A value fixed at trace time (captured tensors, literals, folded results).
    Const(Tensor),
    /// Reads a variable's current value (ordered with its assignments).
    ReadVariable(Variable),
    /// Assigns its input to a variable; no outputs.
    AssignVariable(Variable),
    /// A value computed on the host at every call.
    Host(HostFn),
    /// A primitive op, replayed through its eager kernel.
    Op {
        /// The op's name.
        name: &'static str,
        /// Its attributes as text.
        attrs: String,
        /// What passes know about it.
        kind: OpKind,
        /// Runs it.
        replay: Replay,
    },
    /// A chain of elementwise ops (and optionally a reduction) run as one loop.
    Fused(Arc<FusedKernel>),
}

impl NodeKind {
    /// A short name for dumps.
    pub fn name(&self) -> String {
        match self {
            NodeKind::Input(i) => format!("input[{i}]"),
            NodeKind::Const(_) => "const".into(),
            NodeKind::ReadVariable(v) => format!("read_variable '{}'", v.name()),
            NodeKind::AssignVariable(v) => format!("assign_variable '{}'", v.name()),
            NodeKind::Host(_) => "host_value".into(),
            NodeKind::Op { name, attrs, .. } if attrs.is_empty() => (*name).to_string(),
            NodeKind::Op { name, attrs, .. } => format!("{name}({attrs})"),
            NodeKind::Fused(k) => k.describe(),
        }
    }

    /// Whether removing the node when its outputs are unused changes nothing observable.
    pub fn is_removable(&self) -> bool {
        !matches!(self, NodeKind::AssignVariable(_))
    }

    /// Whether the node is an elementary op that computes the same outputs from the same
    /// inputs every time.
    pub fn is_pure_op(&self) -> bool {
        match self {
            NodeKind::Op { kind, .. } => kind.is_pure(),
            NodeKind::Fused(_) => true,
            _ => false,
        }
    }
}

/// A node: its kind, its inputs, and the facts of its outputs.
#[derive(Clone)]
pub struct Node {
    /// What it does.
    pub kind: NodeKind,
    /// Values it reads.
    pub inputs: Vec<Value>,
    /// Facts of the values it produces.
    pub outputs: Vec<ValueInfo>,
}

/// A traced function: nodes in a valid execution order and the values it returns.
#[derive(Clone, Default)]
pub struct Graph {
    /// Nodes, each only reading values of earlier nodes.
    pub nodes: Vec<Node>,
    /// The function's results.
    pub outputs: Vec<Value>,
}

impl Graph {
    /// Appends a node and returns its index.
    pub fn push(&mut self, kind: NodeKind, inputs: Vec<Value>, outputs: Vec<ValueInfo>) -> usize {
        self.nodes.push(Node {
            kind,
            inputs,
            outputs,
        });
        self.nodes.len() - 1
    }

    /// Facts of a value.
    pub fn info(&self, v: Value) -> &ValueInfo {
        &self.nodes[v.node].outputs[v.output]
    }

    /// Number of nodes that compute something (ops and fused kernels).
    pub fn op_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Op { .. } | NodeKind::Fused(_)))
            .count()
    }

    /// How many times each value is read (graph outputs count as reads).
    pub fn use_counts(&self) -> std::collections::HashMap<Value, usize> {
        let mut uses = std::collections::HashMap::new();
        for n in &self.nodes {
            for &i in &n.inputs {
                *uses.entry(i).or_insert(0) += 1;
            }
        }
        for &o in &self.outputs {
            *uses.entry(o).or_insert(0) += 1;
        }
        uses
    }

    /// Keeps the nodes for which `keep` is true, renumbering values. Every kept node's
    /// inputs and every output must refer to kept nodes.
    pub fn retain(&mut self, keep: &[bool]) {
        let mut new_index = vec![usize::MAX; self.nodes.len()];
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (i, n) in std::mem::take(&mut self.nodes).into_iter().enumerate() {
            if keep[i] {
                new_index[i] = nodes.len();
                nodes.push(n);
            }
        }
        let map = |v: &mut Value| {
            debug_assert_ne!(
                new_index[v.node],
                usize::MAX,
                "a kept node reads a removed one"
            );
            v.node = new_index[v.node];
        };
        for n in &mut nodes {
            n.inputs.iter_mut().for_each(map);
        }
        self.outputs.iter_mut().for_each(map);
        self.nodes = nodes;
    }

    /// Replaces every read of a value in `subst` by its substitute (followed transitively).
    pub fn substitute(&mut self, subst: &std::collections::HashMap<Value, Value>) {
        if subst.is_empty() {
            return;
        }
        let resolve = |mut v: Value| {
            while let Some(&s) = subst.get(&v) {
                v = s;
            }
            v
        };
        for n in &mut self.nodes {
            for i in &mut n.inputs {
                *i = resolve(*i);
            }
        }
        for o in &mut self.outputs {
            *o = resolve(*o);
        }
    }
}
