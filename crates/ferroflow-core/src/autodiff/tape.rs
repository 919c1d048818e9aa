//! [`GradientTape`]: records ops on watched tensors and walks them backwards.

use super::gradient::Gradient;
use super::record::{pause_recording, Backward, Node, RecordingPause, TapeState, TAPES};
use super::variable::{Variable, VariableId};
use crate::{Error, Result, Tensor, TensorId};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// What [`GradientTape::gradient`] returns for a source the target does not depend on
/// (`tf.UnconnectedGradients`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnconnectedGradients {
    /// `None` (TF's default).
    #[default]
    None,
    /// A zero tensor of the source's shape.
    Zero,
}

/// Something a gradient can be taken with respect to: a [`Tensor`] or a [`Variable`].
pub trait Source {
    /// The recorded tensor ids whose gradients sum to this source's gradient.
    #[doc(hidden)]
    fn tape_ids(&self, reads: &HashMap<VariableId, Vec<TensorId>>) -> Vec<TensorId>;
    /// A tensor with the source's shape and dtype (for zero gradients).
    #[doc(hidden)]
    fn like(&self) -> Tensor;
}

impl Source for Tensor {
    fn tape_ids(&self, _: &HashMap<VariableId, Vec<TensorId>>) -> Vec<TensorId> {
        vec![self.id()]
    }
    fn like(&self) -> Tensor {
        self.clone()
    }
}

impl Source for Variable {
    fn tape_ids(&self, reads: &HashMap<VariableId, Vec<TensorId>>) -> Vec<TensorId> {
        reads.get(&self.id()).cloned().unwrap_or_default()
    }
    fn like(&self) -> Tensor {
        self.read_untracked()
    }
}

impl<S: Source + ?Sized> Source for &S {
    fn tape_ids(&self, reads: &HashMap<VariableId, Vec<TensorId>>) -> Vec<TensorId> {
        (**self).tape_ids(reads)
    }
    fn like(&self) -> Tensor {
        (**self).like()
    }
}

/// Records operations for automatic differentiation, like `tf.GradientTape`.
///
/// Recording starts when the tape is created and lasts until it is dropped (or, for a
/// non-persistent tape, until [`GradientTape::gradient`] is called). Ops whose inputs are
/// watched tensors — or trainable [`Variable`]s read while recording — are recorded.
/// Tapes are per thread; several can record at once, which gives higher derivatives.
///
/// ```
/// use ferroflow_core::{GradientTape, Tensor};
/// let x = Tensor::scalar(3.0f32);
/// let tape = GradientTape::new();
/// tape.watch(&x);
/// let y = x.mul(&x)?;
/// let dy = tape.gradient(&y, &[&x])?;
/// assert_eq!(dy[0].as_ref().unwrap().to_dense()?.to_scalar::<f32>()?, 6.0);
/// # Ok::<(), ferroflow_core::Error>(())
/// ```
pub struct GradientTape {
    state: Rc<RefCell<TapeState>>,
}

impl Default for GradientTape {
    fn default() -> Self {
        Self::new()
    }
}

impl GradientTape {
    /// A non-persistent tape that auto-watches trainable variables it sees read.
    pub fn new() -> Self {
        Self::with_options(false, true)
    }

    /// A persistent tape: `gradient` may be called any number of times.
    pub fn persistent() -> Self {
        Self::with_options(true, true)
    }

    /// A tape with TF's two options (`persistent`, `watch_accessed_variables`).
    pub fn with_options(persistent: bool, watch_accessed_variables: bool) -> Self {
        let state = Rc::new(RefCell::new(TapeState::new(
            persistent,
            watch_accessed_variables,
        )));
        TAPES.with(|t| t.borrow_mut().push(state.clone()));
        GradientTape { state }
    }

    /// Marks `t` as a source whose uses are recorded. Integer and bool tensors are
    /// accepted and get no gradient, as in TF.
    pub fn watch(&self, t: &Tensor) {
        self.state.borrow_mut().watched.insert(t.id());
    }

    /// Watches a variable's current value (also works for non-trainable variables).
    pub fn watch_variable(&self, v: &Variable) {
        let value = v.read_untracked();
        let mut s = self.state.borrow_mut();
        s.watched.insert(value.id());
        s.note_variable_read(v, value.id());
    }

    /// Variables read while recording (watched automatically or explicitly), in first-read order.
    pub fn watched_variables(&self) -> Vec<Variable> {
        self.state.borrow().read_variables.clone()
    }

    /// Pauses recording on every tape of this thread until the guard drops
    /// (`with tape.stop_recording():`).
    pub fn stop_recording(&self) -> RecordingPause {
        pause_recording()
    }

    /// Forgets everything recorded so far and keeps recording.
    pub fn reset(&self) {
        let mut s = self.state.borrow_mut();
        let (p, w) = (s.persistent, s.watch_accessed_variables);
        *s = TapeState::new(p, w);
    }

    /// Gradients of `target` with respect to each source (`tape.gradient(target, sources)`).
    ///
    /// A non-scalar target is differentiated as the sum of its elements, as in TF.
    /// Sources the target does not depend on, and integer sources, get `None`.
    pub fn gradient<S: Source>(
        &self,
        target: &Tensor,
        sources: &[S],
    ) -> Result<Vec<Option<Gradient>>> {
        self.gradient_with(target, sources, None, UnconnectedGradients::None)
    }

    /// [`GradientTape::gradient`] with `output_gradients` (the upstream gradient of the
    /// target, same shape) and the policy for unconnected sources.
    pub fn gradient_with<S: Source>(
        &self,
        target: &Tensor,
        sources: &[S],
        output_gradients: Option<&Tensor>,
        unconnected: UnconnectedGradients,
    ) -> Result<Vec<Option<Gradient>>> {
        self.gradient_streamed(
            target,
            sources,
            output_gradients,
            unconnected,
            &mut |_, g| Ok(g),
        )
    }

    /// [`GradientTape::gradient_with`] that hands each source's gradient to `ready` as
    /// soon as the backward pass has finished it (sources the last layers read come first),
    /// while the rest of the pass still runs; what `ready` returns is that source's
    /// result. A data-parallel trainer starts reducing a gradient across workers there,
    /// overlapping communication with the remaining backward computation.
    pub fn gradient_streamed<S: Source>(
        &self,
        target: &Tensor,
        sources: &[S],
        output_gradients: Option<&Tensor>,
        unconnected: UnconnectedGradients,
        ready: &mut dyn FnMut(usize, Gradient) -> Result<Gradient>,
    ) -> Result<Vec<Option<Gradient>>> {
        let (nodes, source_ids) = {
            let mut s = self.state.borrow_mut();
            if s.used && !s.persistent {
                return Err(Error::invalid(
                    "GradientTape::gradient",
                    "a non-persistent GradientTape can only compute one set of gradients; \
                     use GradientTape::persistent() to call gradient more than once",
                ));
            }
            s.used = true;
            let ids: Vec<Vec<TensorId>> =
                sources.iter().map(|x| x.tape_ids(&s.var_reads)).collect();
            let nodes = if s.persistent {
                s.nodes.clone()
            } else {
                // The tape stops recording and gives up its record (and the activations the
                // record keeps alive) as the backward pass consumes it.
                s.recording = false;
                s.watched.clear();
                s.produced.clear();
                std::mem::take(&mut s.nodes)
            };
            (nodes, ids)
        };
        if let Some(g) = output_gradients {
            if g.shape() != target.shape() || g.dtype() != target.dtype() {
                return Err(Error::invalid(
                    "GradientTape::gradient",
                    format!(
                        "output_gradients has shape {:?} ({}) but the target has shape {:?} ({})",
                        g.shape(),
                        g.dtype(),
                        target.shape(),
                        target.dtype()
                    ),
                ));
            }
        }
        // This tape must not record its own backward pass; outer tapes still do.
        let was_recording = std::mem::replace(&mut self.state.borrow_mut().recording, false);
        let mut out: Vec<Option<Option<Gradient>>> = vec![None; sources.len()];
        let mut finish = |grads: &mut HashMap<TensorId, Gradient>, s: usize| -> Result<()> {
            if out[s].is_some() {
                return Ok(());
            }
            let like = sources[s].like();
            let mut acc: Option<Gradient> = None;
            if like.dtype().is_float() {
                for id in &source_ids[s] {
                    if let Some(g) = grads.remove(id) {
                        acc = Some(match acc {
                            None => g,
                            Some(a) => a.add(&g)?,
                        });
                    }
                }
            }
            if acc.is_none() && unconnected == UnconnectedGradients::Zero {
                acc = Some(Gradient::Dense(like.zeros_like()?));
            }
            out[s] = Some(acc.map(|g| ready(s, g)).transpose()?);
            Ok(())
        };
        let result = backprop(nodes, target, &source_ids, output_gradients, &mut finish);
        if self.state.borrow().persistent {
            self.state.borrow_mut().recording = was_recording;
        } else {
            self.stop();
        }
        let mut grads = result?;
        for s in 0..sources.len() {
            finish(&mut grads, s)?;
        }
        Ok(out.into_iter().map(Option::flatten).collect())
    }

    /// Stops recording (the end of a `with tf.GradientTape() as tape:` block in language
    /// bindings); gradients of what was recorded can still be taken.
    pub fn stop(&self) {
        TAPES.with(|t| t.borrow_mut().retain(|s| !Rc::ptr_eq(s, &self.state)));
    }
}

impl Drop for GradientTape {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Called with the gradients so far and a source whose gradient is complete.
type Finished<'a> = dyn FnMut(&mut HashMap<TensorId, Gradient>, usize) -> Result<()> + 'a;

/// Sources whose gradient is complete once the backward pass has processed node `i`: the
/// node that first (in forward order) reads one of their tensors.
fn completions(nodes: &[Node], source_ids: &[Vec<TensorId>]) -> HashMap<usize, Vec<usize>> {
    let mut first_read: HashMap<TensorId, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for id in n.inputs.iter().flatten() {
            first_read.entry(*id).or_insert(i);
        }
    }
    let mut at: HashMap<usize, Vec<usize>> = HashMap::new();
    for (s, ids) in source_ids.iter().enumerate() {
        if let Some(i) = ids.iter().filter_map(|id| first_read.get(id)).min() {
            at.entry(*i).or_default().push(s);
        }
    }
    at
}

/// Walks `nodes` backwards from `target`, returning the gradient of every tensor on a path
/// from a source to the target. `finished(grads, s)` is called as soon as source `s`'s
/// gradient is complete (it may take it out of `grads`).
fn backprop(
    mut nodes: Vec<Node>,
    target: &Tensor,
    source_ids: &[Vec<TensorId>],
    output_gradients: Option<&Tensor>,
    finished: &mut Finished<'_>,
) -> Result<HashMap<TensorId, Gradient>> {
    let mut grads: HashMap<TensorId, Gradient> = HashMap::new();
    if !target.dtype().is_float() {
        return Ok(grads);
    }
    let sources: HashSet<TensorId> = source_ids.iter().flatten().copied().collect();
    // Forward sweep: which tensors depend on a source.
    let mut relevant = sources.clone();
    for n in &nodes {
        if n.inputs.iter().flatten().any(|i| relevant.contains(i)) {
            relevant.insert(n.output);
        }
    }
    if !relevant.contains(&target.id()) {
        return Ok(grads);
    }
    let complete_after = completions(&nodes, source_ids);
    let seed = match output_gradients {
        Some(g) => g.clone(),
        None => target.ones_like()?,
    };
    grads.insert(target.id(), Gradient::Dense(seed));
    while let Some(node) = nodes.pop() {
        let index = nodes.len();
        let result = backprop_node(node, &relevant, &sources, &mut grads);
        result?;
        for &s in complete_after.get(&index).into_iter().flatten() {
            finished(&mut grads, s)?;
        }
    }
    Ok(grads)
}

/// One node of the backward pass: its inputs' gradients from its output's.
fn backprop_node(
    node: Node,
    relevant: &HashSet<TensorId>,
    sources: &HashSet<TensorId>,
    grads: &mut HashMap<TensorId, Gradient>,
) -> Result<()> {
    {
        if !relevant.contains(&node.output) {
            return Ok(());
        }
        let upstream = if sources.contains(&node.output) {
            grads.get(&node.output).cloned()
        } else {
            grads.remove(&node.output)
        };
        let Some(upstream) = upstream else {
            return Ok(());
        };
        let upstream = upstream.to_dense()?;
        let needs: Vec<bool> = node
            .inputs
            .iter()
            .map(|i| i.is_some_and(|i| relevant.contains(&i)))
            .collect();
        let input_grads: Vec<Option<Gradient>> = match &node.backward {
            Backward::Dense(f) => f(&upstream, &needs)?
                .into_iter()
                .map(|g| g.map(Gradient::Dense))
                .collect(),
            Backward::Sparse(f) => f(&upstream, &needs)?,
        };
        for ((id, need), g) in node.inputs.iter().zip(&needs).zip(input_grads) {
            let (Some(id), true, Some(g)) = (id, *need, g) else {
                continue;
            };
            let merged = match grads.remove(id) {
                None => g,
                Some(prev) => prev.add(&g)?,
            };
            grads.insert(*id, merged);
        }
    }
    Ok(())
}
