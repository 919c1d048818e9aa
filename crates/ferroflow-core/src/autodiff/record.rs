//! The record a tape keeps, and the hook every differentiable op calls to add to it.
//!
//! An op computes its output, then asks [`Recorder::new`] whether any recording tape
//! watches one of its inputs; only then does it build its backward closure (capturing the
//! tensors the rule needs) and hand it to [`Recorder::finish`]. With no tape active the
//! cost is one thread-local check.

use super::gradient::Gradient;
use super::variable::{Variable, VariableId};
use crate::{Result, Tensor, TensorId};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// A dense gradient rule: upstream gradient and which inputs need a gradient, to one
/// gradient per input (`None` where not needed or not defined).
pub(crate) type DenseRule = dyn Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>>;
/// A rule that may return [`Gradient::Sparse`] values (gather, embedding lookups).
pub(crate) type SparseRule = dyn Fn(&Tensor, &[bool]) -> Result<Vec<Option<Gradient>>>;

/// The gradient rule of one recorded op.
#[derive(Clone)]
pub(crate) enum Backward {
    Dense(Rc<DenseRule>),
    Sparse(Rc<SparseRule>),
}

/// One recorded op application.
#[derive(Clone)]
pub(crate) struct Node {
    pub(crate) output: TensorId,
    /// Input ids, `None` for inputs this tape does not track.
    pub(crate) inputs: Vec<Option<TensorId>>,
    pub(crate) backward: Backward,
}

/// Everything one tape knows.
pub(crate) struct TapeState {
    pub(crate) watched: HashSet<TensorId>,
    pub(crate) produced: HashSet<TensorId>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) recording: bool,
    pub(crate) persistent: bool,
    pub(crate) used: bool,
    pub(crate) watch_accessed_variables: bool,
    pub(crate) var_reads: HashMap<VariableId, Vec<TensorId>>,
    pub(crate) read_variables: Vec<Variable>,
}

impl TapeState {
    pub(crate) fn new(persistent: bool, watch_accessed_variables: bool) -> Self {
        TapeState {
            watched: HashSet::new(),
            produced: HashSet::new(),
            nodes: Vec::new(),
            recording: true,
            persistent,
            used: false,
            watch_accessed_variables,
            var_reads: HashMap::new(),
            read_variables: Vec::new(),
        }
    }

    pub(crate) fn note_variable_read(&mut self, v: &Variable, id: TensorId) {
        let reads = self.var_reads.entry(v.id()).or_default();
        if reads.is_empty() {
            self.read_variables.push(v.clone());
        }
        if !reads.contains(&id) {
            reads.push(id);
        }
    }
}

thread_local! {
    /// The tapes alive on this thread, innermost last.
    pub(crate) static TAPES: RefCell<Vec<Rc<RefCell<TapeState>>>> = const { RefCell::new(Vec::new()) };
    /// Nesting depth of [`pause_recording`] guards.
    static PAUSED: Cell<u32> = const { Cell::new(0) };
}

/// True when at least one tape on this thread could record.
pub(crate) fn any_recording() -> bool {
    PAUSED.with(|p| p.get() == 0) && TAPES.with(|t| !t.borrow().is_empty())
}

/// True when a [`crate::GradientTape`] on this thread is recording.
pub fn is_recording() -> bool {
    any_recording()
}

/// Stops every tape on this thread from recording until the guard drops.
pub fn pause_recording() -> RecordingPause {
    PAUSED.with(|p| p.set(p.get() + 1));
    RecordingPause(())
}

/// Guard returned by [`pause_recording`].
pub struct RecordingPause(());

impl Drop for RecordingPause {
    fn drop(&mut self) {
        PAUSED.with(|p| p.set(p.get() - 1));
    }
}

/// Tells the recording tapes that `v` was read as `value` (auto-watch of trainable variables).
pub(crate) fn notify_variable_read(v: &Variable, value: &Tensor) {
    if !any_recording() {
        return;
    }
    TAPES.with(|t| {
        for s in t.borrow().iter() {
            let mut s = s.borrow_mut();
            if s.recording && s.watch_accessed_variables && v.trainable() {
                s.watched.insert(value.id());
                s.note_variable_read(v, value.id());
            }
        }
    });
}

/// A tape's state as the thread's tape stack holds it.
pub(crate) type SharedTape = Rc<RefCell<TapeState>>;

/// The tapes an op's application must be recorded on.
pub(crate) struct Recorder {
    tapes: Vec<(SharedTape, Vec<Option<TensorId>>)>,
}

impl Recorder {
    /// `Some` when a recording tape watches one of `inputs` (float inputs only).
    pub(crate) fn new(inputs: &[&Tensor]) -> Option<Recorder> {
        if !any_recording() {
            return None;
        }
        TAPES.with(|t| {
            let mut tapes = Vec::new();
            for s in t.borrow().iter() {
                let st = s.borrow();
                if !st.recording {
                    continue;
                }
                let ids: Vec<Option<TensorId>> = inputs
                    .iter()
                    .map(|x| (x.dtype().is_float() && st.watched.contains(&x.id())).then(|| x.id()))
                    .collect();
                if ids.iter().any(Option::is_some) {
                    drop(st);
                    tapes.push((s.clone(), ids));
                }
            }
            (!tapes.is_empty()).then_some(Recorder { tapes })
        })
    }

    /// Records `output` as produced from the inputs with the dense gradient `rule`.
    pub(crate) fn finish(
        self,
        output: &Tensor,
        rule: impl Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + 'static,
    ) {
        self.push(output, Backward::Dense(Rc::new(rule)));
    }

    /// Records `output` with a rule that may produce sparse gradients.
    pub(crate) fn finish_sparse(
        self,
        output: &Tensor,
        rule: impl Fn(&Tensor, &[bool]) -> Result<Vec<Option<Gradient>>> + 'static,
    ) {
        self.push(output, Backward::Sparse(Rc::new(rule)));
    }

    fn push(self, output: &Tensor, backward: Backward) {
        if !output.dtype().is_float() {
            return;
        }
        let out = output.id();
        for (tape, inputs) in self.tapes {
            let mut s = tape.borrow_mut();
            // An op that returns one of its inputs, or a value an inner op already
            // recorded, adds nothing.
            if inputs.contains(&Some(out)) || !s.produced.insert(out) {
                continue;
            }
            s.watched.insert(out);
            s.nodes.push(Node {
                output: out,
                inputs,
                backward: backward.clone(),
            });
        }
    }
}
