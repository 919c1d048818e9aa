//! Builds a [`Graph`] from what a closure does while it runs eagerly under a tracer.

use crate::graph::{Graph, NodeKind, Value, ValueInfo};
use ferroflow_core::trace::{HostFn, OpCall, Tracer};
use ferroflow_core::{Tensor, TensorId, Variable};
use std::collections::HashMap;

/// The [`Tracer`] that records into a [`Graph`].
pub(crate) struct GraphTracer {
    pub(crate) graph: Graph,
    /// Tensor identities (never reused in a process) and the values they stand for.
    known: HashMap<TensorId, Value>,
    /// Each assigned variable with its value before the trace first assigned it.
    pub(crate) assigned: Vec<(Variable, Tensor)>,
}

impl GraphTracer {
    /// A tracer whose graph starts with one input node per argument.
    pub(crate) fn new(args: &[Tensor]) -> GraphTracer {
        let mut t = GraphTracer {
            graph: Graph::default(),
            known: HashMap::new(),
            assigned: Vec::new(),
        };
        for (i, a) in args.iter().enumerate() {
            let n = t
                .graph
                .push(NodeKind::Input(i), vec![], vec![ValueInfo::of(a)]);
            t.known.insert(a.id(), Value::of(n));
        }
        t
    }

    /// The value a tensor stands for; a tensor the trace has not seen is a constant.
    pub(crate) fn value_of(&mut self, t: &Tensor) -> Value {
        if let Some(&v) = self.known.get(&t.id()) {
            return v;
        }
        let n = self
            .graph
            .push(NodeKind::Const(t.clone()), vec![], vec![ValueInfo::of(t)]);
        self.known.insert(t.id(), Value::of(n));
        Value::of(n)
    }
}

impl Tracer for GraphTracer {
    fn op(&mut self, call: OpCall, inputs: &[&Tensor], outputs: &[&Tensor]) {
        // An op built from recorded ops (or returning an input) adds nothing.
        if outputs.iter().any(|o| self.known.contains_key(&o.id())) {
            return;
        }
        let ins: Vec<Value> = inputs.iter().map(|t| self.value_of(t)).collect();
        let n = self.graph.push(
            NodeKind::Op {
                name: call.name,
                attrs: call.attrs,
                kind: call.kind,
                replay: call.replay,
            },
            ins,
            outputs.iter().map(|t| ValueInfo::of(t)).collect(),
        );
        for (i, o) in outputs.iter().enumerate() {
            self.known.insert(o.id(), Value { node: n, output: i });
        }
    }

    fn read_variable(&mut self, var: &Variable, value: &Tensor) {
        if self.known.contains_key(&value.id()) {
            return;
        }
        let n = self.graph.push(
            NodeKind::ReadVariable(var.clone()),
            vec![],
            vec![ValueInfo::of(value)],
        );
        self.known.insert(value.id(), Value::of(n));
    }

    fn assign_variable(
        &mut self,
        var: &Variable,
        value: &Tensor,
        stored: &Tensor,
        previous: &Tensor,
    ) {
        if !self.assigned.iter().any(|(v, _)| v.same_as(var)) {
            self.assigned.push((var.clone(), previous.clone()));
        }
        let v = self.value_of(value);
        self.graph
            .push(NodeKind::AssignVariable(var.clone()), vec![v], vec![]);
        self.known.insert(stored.id(), v);
    }

    fn host_value(&mut self, value: &Tensor, f: HostFn) {
        let n = self
            .graph
            .push(NodeKind::Host(f), vec![], vec![ValueInfo::of(value)]);
        self.known.insert(value.id(), Value::of(n));
    }
}
