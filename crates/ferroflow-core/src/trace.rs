//! The hook through which `function` (in `ferroflow-graph`) records a graph.
//!
//! Tracing runs a closure eagerly while a [`Tracer`] is installed on the thread. Every
//! primitive op reports its application (what it is, its inputs and outputs, and how to
//! replay it on other inputs); variable reads and assignments and call-time host values
//! are reported too. Composite ops need no hook: their primitives record themselves, and an
//! op whose output an inner primitive already reported is ignored by the tracer. With no
//! tracer installed the cost of a hook is one thread-local check.

use crate::ops::binary::BinaryOp;
use crate::ops::compare::CmpOp;
use crate::ops::reduce::ReduceOp;
use crate::ops::unary::UnaryOp;
use crate::{DType, Result, Tensor, Variable};
use std::cell::{Cell, RefCell};
use std::sync::Arc;

/// Re-runs an op on new input values (the op's attributes are captured). Inputs come by
/// value, so an op may write over an input buffer it solely owns.
pub type Replay = Arc<dyn Fn(Vec<Tensor>) -> Result<Vec<Tensor>> + Send + Sync>;

/// Computes a call-time value on the host (a learning rate from a step counter).
pub type HostFn = Arc<dyn Fn() -> Result<Tensor> + Send + Sync>;

/// What graph passes need to know about an op; everything else is [`OpKind::Other`].
#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    /// Elementwise unary arithmetic.
    Unary(UnaryOp),
    /// Elementwise binary arithmetic with broadcasting.
    Binary(BinaryOp),
    /// Elementwise comparison with broadcasting (bool output).
    Compare(CmpOp),
    /// Elementwise logic on bool tensors.
    Logic(crate::LogicOp),
    /// `where(cond, x, y)` with broadcasting.
    Select,
    /// Conversion to a dtype.
    Cast(DType),
    /// `matmul` with its transpose flags.
    MatMul {
        /// Transpose the left operand.
        transpose_a: bool,
        /// Transpose the right operand.
        transpose_b: bool,
    },
    /// A reshape (the output shape is the attribute).
    Reshape,
    /// An axis permutation.
    Transpose(Vec<usize>),
    /// A broadcast view.
    BroadcastTo,
    /// A reduction over the given axes (normalised, ascending).
    Reduce {
        /// The reduction.
        op: ReduceOp,
        /// The reduced axes.
        axes: Vec<usize>,
        /// Whether reduced axes stay as size 1.
        keepdims: bool,
    },
    /// Draws random numbers: never folded or merged.
    Random,
    /// Talks to other workers (starts or finishes a collective): never folded or merged,
    /// run where it was traced.
    Collective,
    /// A 2-D convolution of an NHWC input with an HWIO filter (`[kh, kw, cin/groups,
    /// cout]`).
    Conv2d(ConvSpec),
    /// The transpose of a 2-D convolution: NHWC input, filter `[kh, kw, cout, cin]`; the
    /// spec is that of the convolution it transposes (its input is this op's output).
    Conv2dTranspose(ConvSpec),
    /// Max or average pooling over NHWC windows (an average counts only real elements).
    Pool2d {
        /// Max (true) or average (false).
        max: bool,
        /// Window height and width.
        ksize: (usize, usize),
        /// The geometry (dilations 1, groups 1).
        spec: ConvSpec,
    },
    /// Softmax (or log-softmax) over the last axis.
    Softmax {
        /// Log-softmax.
        log: bool,
    },
    /// Concatenation along an axis.
    Concat(usize),
    /// A slice starting at `begin`; its sizes are the output's.
    Slice {
        /// First index per axis.
        begin: Vec<usize>,
    },
    /// Gathers slices along an axis by an index tensor (`tf.gather`).
    Gather(usize),
    /// `clip(x, lo, hi)` with broadcasting bounds.
    Clip,
    /// Returns its input (a copy or a gradient boundary).
    Identity,
    /// Output index `(i0, i1, ...)` takes input `(maps[0][i0], maps[1][i1], ...)`, or
    /// `fill` where an entry is `None`: pad, tile, reverse and upsampling.
    Remap {
        /// One index map per axis.
        maps: Arc<Vec<Vec<Option<usize>>>>,
        /// The padding value.
        fill: f64,
    },
    /// Any other op (replayed as is).
    Other,
}

/// The geometry of a 2-D window op over an NHWC input, with the padding made explicit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvSpec {
    /// Strides (height, width).
    pub strides: (usize, usize),
    /// Dilations (height, width).
    pub dilations: (usize, usize),
    /// Zero padding: top, left, bottom, right (TF's SAME puts the odd one after).
    pub pads: [usize; 4],
    /// Channel groups (`cin` for a depthwise convolution).
    pub groups: usize,
}

impl ConvSpec {
    /// The spec of a window op of `kernel` size over `input` (h, w) giving `output`, with
    /// leading pads `before`: the trailing pads are what the last window reaches past the
    /// input (never negative).
    pub fn new(
        input: (usize, usize),
        output: (usize, usize),
        kernel: (usize, usize),
        strides: (usize, usize),
        dilations: (usize, usize),
        before: (usize, usize),
        groups: usize,
    ) -> ConvSpec {
        let after = |i: usize, o: usize, k: usize, s: usize, d: usize, b: usize| {
            (o.saturating_sub(1) * s + (k.saturating_sub(1)) * d + 1).saturating_sub(i + b)
        };
        ConvSpec {
            strides,
            dilations,
            pads: [
                before.0,
                before.1,
                after(
                    input.0,
                    output.0,
                    kernel.0,
                    strides.0,
                    dilations.0,
                    before.0,
                ),
                after(
                    input.1,
                    output.1,
                    kernel.1,
                    strides.1,
                    dilations.1,
                    before.1,
                ),
            ],
            groups,
        }
    }
}

impl OpKind {
    /// Whether the op's result depends only on its inputs (may be folded or merged).
    pub fn is_pure(&self) -> bool {
        !matches!(self, OpKind::Random | OpKind::Collective)
    }
}

/// One op application as the tracer sees it.
pub struct OpCall {
    /// The op's name (`matmul`, `add`, `conv2d`...).
    pub name: &'static str,
    /// Its attributes as text, for dumps and for telling equal applications apart.
    pub attrs: String,
    /// What passes may know about it.
    pub kind: OpKind,
    /// How to run it again on other inputs.
    pub replay: Replay,
}

/// Receives what a traced closure does. Implemented by `ferroflow-graph`.
pub trait Tracer: std::any::Any {
    /// An op produced `outputs` from `inputs`.
    fn op(&mut self, call: OpCall, inputs: &[&Tensor], outputs: &[&Tensor]);
    /// `var` was read and gave `value`.
    fn read_variable(&mut self, var: &Variable, value: &Tensor);
    /// `value` was assigned to `var`, which held `previous` and now holds `stored` (same
    /// values as `value`, new identity).
    fn assign_variable(
        &mut self,
        var: &Variable,
        value: &Tensor,
        stored: &Tensor,
        previous: &Tensor,
    );
    /// `value` was computed on the host by `f`, which must run again at every call.
    fn host_value(&mut self, value: &Tensor, f: HostFn);
}

thread_local! {
    static TRACERS: RefCell<Vec<Box<dyn Tracer>>> = const { RefCell::new(Vec::new()) };
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    static SUPPRESSED: Cell<usize> = const { Cell::new(0) };
}

/// Whether a tracer is recording on this thread.
pub fn is_tracing() -> bool {
    DEPTH.with(Cell::get) > 0 && SUPPRESSED.with(Cell::get) == 0
}

/// Hides the ops run while the guard lives from the tracer: an op built from other ops
/// that must be replayed as one unit (a random draw followed by a cast) reports itself
/// after the guard drops.
pub(crate) fn suppress() -> Suppressed {
    SUPPRESSED.with(|s| s.set(s.get() + 1));
    Suppressed(())
}

/// Guard returned by [`suppress`].
pub(crate) struct Suppressed(());

impl Drop for Suppressed {
    fn drop(&mut self) {
        SUPPRESSED.with(|s| s.set(s.get() - 1));
    }
}

/// Runs `f` with `tracer` installed (innermost tracer wins) and hands the tracer back.
pub fn trace<T: Tracer, R>(tracer: T, f: impl FnOnce() -> R) -> (R, T) {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            DEPTH.with(|d| d.set(d.get() - 1));
        }
    }
    TRACERS.with(|t| t.borrow_mut().push(Box::new(tracer)));
    DEPTH.with(|d| d.set(d.get() + 1));
    let r = {
        let _pop = Pop;
        f()
    };
    let tracer: Box<dyn std::any::Any> = TRACERS
        .with(|t| t.borrow_mut().pop())
        .expect("pushed above");
    let tracer = tracer.downcast::<T>().expect("the tracer pushed above");
    (r, *tracer)
}

fn with_tracer(f: impl FnOnce(&mut dyn Tracer)) {
    TRACERS.with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            if let Some(tr) = t.last_mut() {
                f(tr.as_mut());
            }
        }
    });
}

/// Hands one op application to the tracer (when tracing).
fn emit(
    name: &'static str,
    kind: OpKind,
    attrs: impl FnOnce() -> String,
    inputs: &[&Tensor],
    outputs: &[&Tensor],
    replay: impl FnOnce() -> Replay,
) {
    if !is_tracing() {
        return;
    }
    let call = OpCall {
        name,
        attrs: attrs(),
        kind,
        replay: replay(),
    };
    with_tracer(|t| t.op(call, inputs, outputs));
}

/// Reports an op with one output. `attrs` is only evaluated while tracing.
pub fn record(
    name: &'static str,
    kind: OpKind,
    attrs: impl FnOnce() -> String,
    inputs: &[&Tensor],
    output: &Tensor,
    replay: impl Fn(&[Tensor]) -> Result<Tensor> + Send + Sync + 'static,
) {
    emit(name, kind, attrs, inputs, &[output], || {
        Arc::new(move |x: Vec<Tensor>| Ok(vec![replay(&x)?]))
    });
}

/// Reports an op with several outputs.
pub fn record_many(
    name: &'static str,
    kind: OpKind,
    attrs: impl FnOnce() -> String,
    inputs: &[&Tensor],
    outputs: &[&Tensor],
    replay: impl Fn(&[Tensor]) -> Result<Vec<Tensor>> + Send + Sync + 'static,
) {
    emit(name, kind, attrs, inputs, outputs, || {
        Arc::new(move |x: Vec<Tensor>| replay(&x))
    });
}

/// Reports an op whose replay takes its inputs by value (to update buffers in place).
pub fn record_owned(
    name: &'static str,
    kind: OpKind,
    attrs: impl FnOnce() -> String,
    inputs: &[&Tensor],
    outputs: &[&Tensor],
    replay: impl Fn(Vec<Tensor>) -> Result<Vec<Tensor>> + Send + Sync + 'static,
) {
    emit(name, kind, attrs, inputs, outputs, || Arc::new(replay));
}

/// Runs `f` on `inputs` as one op: the ops inside it are hidden from a tracer, which
/// records a single application (`name`, with `attrs` telling applications apart) that
/// calls `f` again on each run's inputs. For host-side work a graph cannot express (string
/// processing, table lookups) whose result must follow the inputs and any state `f` reads.
pub fn opaque(
    name: &'static str,
    attrs: impl FnOnce() -> String,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>> + Send + Sync + 'static,
) -> Result<Vec<Tensor>> {
    if !is_tracing() {
        return f(inputs);
    }
    let out = {
        let _hidden = suppress();
        f(inputs)?
    };
    let ins: Vec<&Tensor> = inputs.iter().collect();
    let outs: Vec<&Tensor> = out.iter().collect();
    record_many(name, OpKind::Other, attrs, &ins, &outs, f);
    Ok(out)
}

pub(crate) fn variable_read(var: &Variable, value: &Tensor) {
    if is_tracing() {
        with_tracer(|t| t.read_variable(var, value));
    }
}

pub(crate) fn variable_assigned(
    var: &Variable,
    value: &Tensor,
    stored: &Tensor,
    previous: impl FnOnce() -> Tensor,
) {
    if is_tracing() {
        let previous = previous();
        with_tracer(|t| t.assign_variable(var, value, stored, &previous));
    }
}

/// A value computed on the host at call time: `f()` now, and inside a traced function
/// `f()` again at every call (like `tf.function`'s call-time captures). Use it for values
/// such as a learning rate derived from a step counter, which must not freeze into a
/// constant when a closure is traced.
pub fn host_value(f: impl Fn() -> Result<Tensor> + Send + Sync + 'static) -> Result<Tensor> {
    let t = {
        let _hidden = suppress();
        f()?
    };
    if is_tracing() {
        let f: HostFn = Arc::new(f);
        with_tracer(|tr| tr.host_value(&t, f));
    }
    Ok(t)
}

/// [`record`] for an op of kind [`OpKind::Other`].
pub(crate) fn record_other(
    name: &'static str,
    attrs: impl FnOnce() -> String,
    inputs: &[&Tensor],
    output: &Tensor,
    replay: impl Fn(&[Tensor]) -> Result<Tensor> + Send + Sync + 'static,
) {
    record(name, OpKind::Other, attrs, inputs, output, replay)
}
