//! Runs an optimised graph: values live in slots that are released after their last read,
//! so buffers return to the allocator's cache as soon as they die and the next op of that
//! size reuses them; fused kernels write over a dying input's buffer when they own it.

use crate::graph::{Graph, NodeKind, Value};
use ferroflow_core::ops::conv::Padding;
use ferroflow_core::ops::conv_epilogue::ConvEpilogue;
use ferroflow_core::trace::OpKind;
use ferroflow_core::{DType, Error, PackedConvFilter, Result, Tensor, TensorId, Variable};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// A graph with its liveness precomputed.
pub struct Plan {
    graph: Graph,
    /// First slot of each node's outputs.
    base: Vec<usize>,
    /// For each node, the slots of values it reads for the last time.
    last_reads: Vec<Vec<usize>>,
    /// For each node, the slots of its outputs that nothing reads.
    unused: Vec<Vec<usize>>,
    slots: usize,
    /// For each node, variables whose value it reads for the last time before they are
    /// assigned again: the variable lets go of its buffer so the node may write over it.
    donations: Vec<Vec<Variable>>,
    peak_bytes: usize,
    total_bytes: usize,
    /// For each convolution (alone or a fused node's prologue) of one group whose filter
    /// is a constant or a variable: the filter packed for the packed kernel.
    packed: Vec<Packing>,
    /// For each depthwise convolution that runs together with the 1x1 convolution before
    /// it (see [`crate::bands`]), that convolution's node; the node itself is skipped.
    band_head: Vec<Option<usize>>,
    /// Whether the node is skipped: a 1x1 convolution run with its depthwise reader.
    in_band: Vec<bool>,
}

impl Plan {
    /// Plans `graph`.
    pub fn new(graph: Graph) -> Plan {
        let assigns = graph
            .nodes
            .iter()
            .any(|n| matches!(n.kind, NodeKind::AssignVariable(_)));
        let packed: Vec<Packing> = graph
            .nodes
            .iter()
            .map(|n| Packing::new(&graph, n, assigns))
            .collect();
        let band_head = if assigns {
            vec![None; graph.nodes.len()]
        } else {
            let is_packed: Vec<bool> = packed.iter().map(|p| !matches!(p, Packing::None)).collect();
            crate::bands::find(&graph, &is_packed)
        };
        let mut in_band = vec![false; graph.nodes.len()];
        for &h in band_head.iter().flatten() {
            in_band[h] = true;
        }
        let mut base = Vec::with_capacity(graph.nodes.len());
        let mut slots = 0;
        for n in &graph.nodes {
            base.push(slots);
            slots += n.outputs.len();
        }
        let slot = |v: Value| base[v.node] + v.output;
        let mut last = vec![usize::MAX; slots];
        let mut read = vec![false; slots];
        for (i, n) in graph.nodes.iter().enumerate() {
            // A banded pair's tail reads its head's inputs.
            let head = band_head[i].map(|h| &graph.nodes[h].inputs);
            for &v in n.inputs.iter().chain(head.into_iter().flatten()) {
                last[slot(v)] = i;
                read[slot(v)] = true;
            }
        }
        for &o in &graph.outputs {
            last[slot(o)] = usize::MAX;
            read[slot(o)] = true;
        }
        let mut last_reads = vec![Vec::new(); graph.nodes.len()];
        let mut unused = vec![Vec::new(); graph.nodes.len()];
        for (i, n) in graph.nodes.iter().enumerate() {
            for k in 0..n.outputs.len() {
                let s = base[i] + k;
                if !read[s] {
                    unused[i].push(s);
                } else if last[s] != usize::MAX {
                    last_reads[last[s]].push(s);
                }
            }
        }
        let donations = donations(&graph, &base, &last);
        let mut plan = Plan {
            graph,
            base,
            last_reads,
            unused,
            slots,
            donations,
            peak_bytes: 0,
            total_bytes: 0,
            packed,
            band_head,
            in_band,
        };
        plan.measure();
        plan
    }

    /// Peak bytes of live intermediate values under this plan, and the bytes all of them
    /// would take if none were released (inputs, constants and variables not counted).
    fn measure(&mut self) {
        let mut live = 0usize;
        let mut size = vec![0usize; self.slots];
        for (i, n) in self.graph.nodes.iter().enumerate() {
            let computed =
                matches!(n.kind, NodeKind::Op { .. } | NodeKind::Fused(_)) && !self.in_band[i];
            for (k, info) in n.outputs.iter().enumerate() {
                if computed {
                    size[self.base[i] + k] = info.bytes();
                    live += info.bytes();
                    self.total_bytes += info.bytes();
                }
            }
            self.peak_bytes = self.peak_bytes.max(live);
            for &s in self.last_reads[i].iter().chain(&self.unused[i]) {
                live -= size[s];
            }
        }
    }

    fn donate(&self, node: usize) {
        for v in &self.donations[node] {
            drop(v.release_for_update());
        }
    }

    /// The graph this plan runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// (peak live bytes of intermediates with buffer reuse, bytes without any reuse).
    pub fn memory(&self) -> (usize, usize) {
        (self.peak_bytes, self.total_bytes)
    }

    /// The (1x1 convolution, depthwise convolution) node pairs that run as one step, band
    /// by band of output rows (see [`crate::bands`]); each pair's time counts at its
    /// depthwise node.
    pub fn banded_pairs(&self) -> Vec<(usize, usize)> {
        let heads = self.band_head.iter().enumerate();
        heads.filter_map(|(t, h)| h.map(|h| (h, t))).collect()
    }

    /// Runs the plan on `args` (already checked against the graph's input facts).
    ///
    /// Unless a gradient tape records on this thread, the plan runs on a worker thread of
    /// the rayon pool: kernels that split their work then share it with the other workers
    /// directly, instead of handing every op over from the caller and waiting for it.
    pub fn run(&self, args: &[Tensor]) -> Result<Vec<Tensor>> {
        self.on_worker(|| self.run_timed(args, None))
    }

    /// Runs `f` on a worker thread of the rayon pool, with the other workers polling for
    /// its kernels' work (`core::on_pool_spinning`), when the plan is large enough to gain
    /// from it (handing a call over costs two thread wake-ups), unless a gradient tape
    /// records on this thread (tapes are thread-local).
    fn on_worker<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        if self.total_bytes < HOP_MIN_BYTES || ferroflow_core::autodiff::is_recording() {
            return f();
        }
        ferroflow_core::on_pool_spinning(f)
    }

    /// Runs the plan `runs` times and returns each node's mean time in microseconds.
    pub fn profile(&self, args: &[Tensor], runs: usize) -> Result<Vec<f64>> {
        let mut t = vec![0.0; self.graph.nodes.len()];
        for _ in 0..runs {
            self.on_worker(|| self.run_timed(args, Some(&mut t)))?;
        }
        Ok(t.into_iter()
            .map(|s| s * 1e6 / runs.max(1) as f64)
            .collect())
    }

    fn run_timed(&self, args: &[Tensor], mut times: Option<&mut [f64]>) -> Result<Vec<Tensor>> {
        let mut vals: Vec<Option<Tensor>> = vec![None; self.slots];
        let slot = |v: Value| self.base[v.node] + v.output;
        for (i, node) in self.graph.nodes.iter().enumerate() {
            if self.in_band[i] {
                continue;
            }
            let start = times.as_ref().map(|_| std::time::Instant::now());
            let dying = &self.last_reads[i];
            // A banded pair's tail reads its head's inputs, then its own after the image.
            let inputs: std::borrow::Cow<[Value]> = match self.band_head[i] {
                Some(h) => self.graph.nodes[h]
                    .inputs
                    .iter()
                    .chain(&node.inputs[1..])
                    .copied()
                    .collect(),
                None => (&node.inputs).into(),
            };
            let mut ins = Vec::with_capacity(inputs.len());
            for (k, &v) in inputs.iter().enumerate() {
                let s = slot(v);
                let last_here = dying.contains(&s) && !inputs[k + 1..].contains(&v);
                let t = if last_here {
                    vals[s].take()
                } else {
                    vals[s].clone()
                };
                ins.push(t.ok_or_else(|| {
                    Error::invalid("function", "value read before it was computed")
                })?);
            }
            let outs = match self.band_head[i] {
                Some(h) => self.run_band(h, i, ins)?,
                None => self.compute(i, args, ins)?,
            };
            for (k, t) in outs.into_iter().enumerate() {
                vals[self.base[i] + k] = Some(t);
            }
            for &s in &self.unused[i] {
                vals[s] = None;
            }
            if let (Some(t), Some(s)) = (times.as_deref_mut(), start) {
                t[i] += s.elapsed().as_secs_f64();
            }
        }
        self.graph
            .outputs
            .iter()
            .map(|&v| {
                vals[slot(v)]
                    .clone()
                    .ok_or_else(|| Error::invalid("function", "output was not computed"))
            })
            .collect()
    }

    /// Runs node `i` on its inputs `ins`.
    fn compute(&self, i: usize, args: &[Tensor], ins: Vec<Tensor>) -> Result<Vec<Tensor>> {
        Ok(match &self.graph.nodes[i].kind {
            NodeKind::Input(k) => vec![args[*k].clone()],
            NodeKind::Const(t) => vec![t.clone()],
            NodeKind::ReadVariable(v) => vec![v.value()],
            NodeKind::AssignVariable(v) => {
                v.assign(&ins[0])?;
                vec![]
            }
            NodeKind::Host(f) => vec![f()?],
            NodeKind::Op {
                kind: OpKind::Conv2d(spec),
                replay,
                ..
            } => {
                self.donate(i);
                match self.packed[i].filter(ins.get(1))? {
                    Some(f) => {
                        let padding = Padding::Explicit(spec.pads);
                        let ep = ConvEpilogue::default();
                        let (s, d) = (spec.strides, spec.dilations);
                        vec![ins[0].conv2d_packed(&f, s, padding, d, ep)?]
                    }
                    None => replay(ins)?,
                }
            }
            NodeKind::Op { replay, .. } => {
                self.donate(i);
                replay(ins)?
            }
            NodeKind::Fused(k) => {
                self.donate(i);
                let packed = self.packed[i].filter(ins.get(1))?;
                vec![run_fused(k, ins, packed.as_deref())?]
            }
        })
    }

    /// Runs the banded pair of the 1x1 convolution `head` and the depthwise convolution
    /// `tail` on `ins`: the head's inputs, then the tail's after the image.
    fn run_band(&self, head: usize, tail: usize, mut ins: Vec<Tensor>) -> Result<Vec<Tensor>> {
        let tail_ins = ins.split_off(self.graph.nodes[head].inputs.len());
        if let Some(packed) = self.packed[head].filter(ins.get(1))? {
            let (h, t) = (&self.graph.nodes[head], &self.graph.nodes[tail]);
            if let Some(y) = crate::bands::run(h, t, &ins, &tail_ins, &packed)? {
                return Ok(vec![y]);
            }
        }
        let mid = self.compute(head, &[], ins)?.remove(0);
        self.compute(tail, &[], std::iter::once(mid).chain(tail_ins).collect())
    }
}

/// Bytes of intermediates from which a plan runs on a worker thread.
const HOP_MIN_BYTES: usize = 1 << 20;

/// How a convolution node's filter reaches the packed kernel.
enum Packing {
    /// Not at all: no convolution, several groups, or no packed kernel on this CPU.
    None,
    /// A constant filter, packed once when the plan is made.
    Const(Arc<PackedConvFilter>),
    /// A variable's value, packed at the first call that reads it and kept while the
    /// variable holds that value (a tensor's contents never change under its id). Only in
    /// plans that assign no variables (inference): a kept value would stop a training
    /// step's update from writing over the variable's buffer.
    Variable(Mutex<Option<(TensorId, Arc<PackedConvFilter>)>>),
}

impl Packing {
    /// The packing for node `n` of `graph` (`assigns`: whether the graph assigns any
    /// variable).
    fn new(graph: &Graph, n: &crate::graph::Node, assigns: bool) -> Packing {
        let spec = match &n.kind {
            NodeKind::Op {
                kind: OpKind::Conv2d(spec),
                ..
            } => Some(*spec),
            NodeKind::Fused(k) => k.prologue.as_ref().and_then(|p| p.conv),
            _ => None,
        };
        let Some(filter) = n
            .inputs
            .get(1)
            .filter(|_| spec.is_some_and(|s| s.groups == 1))
        else {
            return Packing::None;
        };
        match &graph.nodes[filter.node].kind {
            NodeKind::Const(f) if f.rank() == 4 => match packed(f) {
                Ok(Some(p)) => Packing::Const(p),
                _ => Packing::None,
            },
            NodeKind::ReadVariable(v)
                if v.shape().len() == 4 && v.dtype() == DType::F32 && !assigns =>
            {
                Packing::Variable(Mutex::new(None))
            }
            _ => Packing::None,
        }
    }

    /// The packed form of `filter`, the node's filter operand at this call.
    fn filter(&self, filter: Option<&Tensor>) -> Result<Option<Arc<PackedConvFilter>>> {
        let (kept, f) = match (self, filter) {
            (Packing::Const(p), _) => return Ok(Some(p.clone())),
            (Packing::Variable(kept), Some(f)) => (kept, f),
            _ => return Ok(None),
        };
        let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, p)) = kept.as_ref().filter(|(id, _)| *id == f.id()) {
            return Ok(Some(p.clone()));
        }
        let p = packed(f)?;
        *kept = p.clone().map(|p| (f.id(), p));
        Ok(p)
    }
}

/// `filter` packed, shared by every plan that runs it (the plans for each batch size of a
/// function, or of a chunk of rows): packed once while any of them keeps it.
fn packed(filter: &Tensor) -> Result<Option<Arc<PackedConvFilter>>> {
    type Shared = HashMap<TensorId, Weak<PackedConvFilter>>;
    static SHARED: OnceLock<Mutex<Shared>> = OnceLock::new();
    let shared = SHARED.get_or_init(Default::default);
    let found = {
        let map = shared.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&filter.id()).and_then(Weak::upgrade)
    };
    if found.is_some() {
        return Ok(found);
    }
    let Some(p) = PackedConvFilter::new(filter)?.map(Arc::new) else {
        return Ok(None);
    };
    let mut map = shared.lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, w| w.strong_count() > 0);
    map.insert(filter.id(), Arc::downgrade(&p));
    Ok(Some(p))
}

/// Runs a fused node: its prologue first, then the kernel, written over the buffer of a
/// dying same-shaped input that it solely owns (the prologue's output, or any other). A
/// convolution prologue runs with `packed`, its filter packed, when there is one.
fn run_fused(
    k: &crate::fused::FusedKernel,
    mut ins: Vec<Tensor>,
    packed: Option<&PackedConvFilter>,
) -> Result<Tensor> {
    use crate::fused::Access;
    if let Some(spec) = k.prologue.as_ref().and_then(|p| p.conv) {
        if k.reduce.is_none() && k.access[0] == Access::Same {
            let rest = ins.split_off(2);
            let (s, padding, d) = (spec.strides, Padding::Explicit(spec.pads), spec.dilations);
            let conv = |ep: ConvEpilogue<'_>| match packed {
                Some(f) => ins[0].conv2d_packed(f, s, padding, d, ep),
                None => ins[0].conv2d_fused(&ins[1], s, padding, d, ep),
            };
            // A per-channel affine map and an activation go to the convolution's own
            // epilogue.
            let cout = ins[1].shape().last().copied().unwrap_or(0);
            if let Some(aa) = k.affine_activation(&rest, cout) {
                return k.produced(conv(aa.epilogue())?);
            }
            return k.run_as_epilogue(&rest, |tile| conv(ConvEpilogue::tiled(tile)));
        }
    }
    if let Some(p) = &k.prologue {
        let rest = ins.split_off(p.arity);
        let first = (p.replay)(ins)?.remove(0);
        ins = std::iter::once(first).chain(rest).collect();
    }
    if k.reduce.is_none() {
        for idx in 0..ins.len() {
            if k.access[idx] != Access::Same {
                continue;
            }
            let t = std::mem::replace(&mut ins[idx], Tensor::scalar(0.0f32));
            match t.try_into_vec::<f32>() {
                Ok(buf) => return k.run(&ins, Some((idx, buf))),
                Err(t) => ins[idx] = t,
            }
        }
    }
    k.run(&ins, None)
}

/// Variables each node may take the buffer of: the node reads the variable's value for the
/// last time, the value is an in-place-capable op's input, and the variable is assigned
/// later with no read of it in between.
fn donations(g: &Graph, base: &[usize], last: &[usize]) -> Vec<Vec<Variable>> {
    let mut out = vec![Vec::new(); g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        let in_place = match &n.kind {
            NodeKind::Op { name, .. } => *name == "adam_update",
            NodeKind::Fused(k) => k.reduce.is_none(),
            _ => false,
        };
        if !in_place {
            continue;
        }
        for v in &n.inputs {
            let NodeKind::ReadVariable(var) = &g.nodes[v.node].kind else {
                continue;
            };
            if last[base[v.node] + v.output] != i
                || n.inputs.iter().filter(|&&w| w == *v).count() > 1
            {
                continue;
            }
            let later = &g.nodes[i + 1..];
            let next_touch = later.iter().find(|m| match &m.kind {
                NodeKind::ReadVariable(w) | NodeKind::AssignVariable(w) => w.same_as(var),
                NodeKind::Host(_) => true,
                _ => false,
            });
            if matches!(
                next_touch.map(|m| &m.kind),
                Some(NodeKind::AssignVariable(_))
            ) {
                out[i].push(var.clone());
            }
        }
    }
    out
}
