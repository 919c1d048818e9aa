//! Runs a TFLite model on ferroflow's CPU kernels.
//!
//! Float ops run directly. FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, the pools, ADD,
//! LOGISTIC, TANH and requantising QUANTIZE between int8 tensors run on the integers
//! (`crate::int8`: int32 accumulation, LiteRT's requantisation, tables). Other ops on quantised tensors dequantise them with their own
//! scale and zero point, run in float, and round their outputs back to their parameters;
//! quantised weights of those ops (and of dynamic-range models) are dequantised once when
//! the interpreter is built; dynamic-range kernels quantise their float input on each
//! call as LiteRT does (`crate::hybrid`).

use crate::custom::{CustomOp, CustomOps};
use crate::hybrid::InputQuantization;
use crate::int8::NativeOp;
use crate::ir::{
    Activation, CompareKind, ElementType, LiteModel, LiteTensor, LogicalKind, Op, Padding,
    Quantization, ReduceKind, UnaryKind,
};
use crate::kernels;
use crate::pad_fold::PadFold;
use crate::profile::OpProfile;
use crate::swish::Swish;
use ferroflow_core::ops::conv::Padding as CorePadding;
use ferroflow_core::ops::conv_epilogue::ConvEpilogue;
use ferroflow_core::ops::remap::PadMode;
use ferroflow_core::ops::slice::SliceArg;
use ferroflow_core::{Axes, DType, Error, PackedConvFilter, Result, ResultExt, Tensor, UnaryOp};
use std::path::Path;
use std::time::Instant;

/// A loaded model, ready to run (`tf.lite.Interpreter`).
pub struct Interpreter {
    /// What errors call the model (its file name, or `tflite model`).
    name: String,
    model: LiteModel,
    /// Constant tensors as ferroflow tensors (quantised ones dequantised to float).
    consts: Vec<Option<Tensor>>,
    /// Per op: its filter in ferroflow's layout, when constant.
    filters: Vec<Option<Tensor>>,
    /// Per op: a float convolution's constant filter packed for the packed kernel (when
    /// the CPU has one and the op has no int8 kernel).
    packed: Vec<Option<PackedConvFilter>>,
    /// Per op: whether it was computed at load (all its inputs are constants).
    folded: Vec<bool>,
    /// Per op: fused into a later op, so it does not run (unless every tensor is kept).
    fused_away: Vec<bool>,
    /// Per op: the depthwise convolution this pointwise one runs with, band by band
    /// (`bands::find`); that op then does not run (unless every tensor is kept).
    banded: Vec<Option<usize>>,
    /// Per op: a depthwise convolution run by an earlier pointwise one (`banded`).
    band_tail: Vec<bool>,
    /// Per op: the zero PAD folded into this VALID convolution as explicit padding (that
    /// PAD then does not run, unless every tensor is kept).
    pad_fold: Vec<Option<PadFold>>,
    /// Kernels of custom ops.
    custom: CustomOps,
    /// Most multiply-adds one operator may do (`InterpreterBuilder::max_op_macs`).
    max_op_macs: Option<usize>,
    /// The file's other subgraphs (WHILE conditions and bodies), file index - 1.
    subgraphs: Vec<Interpreter>,
    /// Threads of its own (`with_threads`); `None`: the shared rayon pool.
    pool: Option<std::sync::Arc<OwnPool>>,
    /// Per tensor: an op output computed at load and kept as float although the tensor
    /// is quantised.
    folded_float: Vec<bool>,
    /// Multiply-adds of the matmuls and convolutions per batch row (the static shapes have
    /// batch 1): a measure of the work of a call.
    macs_per_row: usize,
    /// Per op: its int8 kernel with packed weights, when it runs on integers.
    native: Vec<Option<NativeOp>>,
    /// Per op: how a dynamic-range kernel quantises its float input on each call.
    hybrid: Vec<Option<InputQuantization>>,
    /// Per op: the swish a MUL computes in one pass (its LOGISTIC is then skipped).
    swish: Vec<Option<Swish>>,
    /// Per op: a convolution's epilogue activation in place of its fused one (the swish
    /// of a later MUL).
    epilogue_act: Vec<Option<UnaryOp>>,
    /// How a large batch runs as chunks of rows, or `None` when some operator may mix
    /// rows.
    row_split: Option<crate::row_split::RowSplit>,
    /// Per op: the intermediate tensors it is the last op to read, released once it has
    /// run (so the allocator hands their buffers, still in cache, to the next ops, and a
    /// call holds only the live activations).
    release: Vec<Vec<usize>>,
}

/// The builtin's name (`CONV_2D`...), for errors.
fn op_name(op: &Op) -> &'static str {
    crate::write::builtin(op).variant_name().unwrap_or("op")
}

/// Where a (sub)graph runs: the model's subgraphs, and how deep in WHILE loops.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    graphs: &'a [Interpreter],
    depth: usize,
    /// Run the fusions planned at load (off when every tensor's own value is wanted).
    fuse: bool,
}

/// Most WHILE loops nested in one another.
const MAX_WHILE_DEPTH: usize = 16;
/// Most iterations of one WHILE loop (a recurrent layer runs one per time step).
const MAX_WHILE_ITERATIONS: usize = 1 << 20;

/// Builds an [`Interpreter`] with kernels for custom ops besides the built-in ones.
#[derive(Clone, Default)]
pub struct InterpreterBuilder {
    custom: CustomOps,
    max_op_macs: Option<usize>,
}

impl InterpreterBuilder {
    /// Registers `kernel` for the custom op named `name` (a closure
    /// `|inputs, options, outputs| -> Result<Vec<Tensor>>` or a [`CustomOp`]).
    pub fn custom_op(mut self, name: impl Into<String>, kernel: impl CustomOp + 'static) -> Self {
        self.custom.register(name, std::sync::Arc::new(kernel));
        self
    }

    /// Refuses any operator that would do more than `macs` multiply-adds, counted from
    /// the shapes of its inputs before it runs, with an error naming the operator: a bound
    /// on the work an untrusted file can ask of one call (a convolution whose filter is an
    /// input, shapes grown by TILE or RESIZE), also for the operators folded at load.
    /// Unlimited by default.
    pub fn max_op_macs(mut self, macs: usize) -> Self {
        self.max_op_macs = Some(macs);
        self
    }

    /// Reads and validates a `.tflite` file.
    pub fn from_file(self, path: impl AsRef<Path>) -> Result<Interpreter> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        let me = self.from_bytes(&bytes).map_err(|e| match e {
            Error::Format { msg, .. } => Error::Format {
                path: path.display().to_string(),
                msg,
            },
            other => other,
        })?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Ok(me.with_name(name.unwrap_or_default()))
    }

    /// Parses and validates `.tflite` bytes. A file that uses tensor types or operators
    /// ferroflow cannot run is an error listing all of them.
    pub fn from_bytes(self, bytes: &[u8]) -> Result<Interpreter> {
        match crate::read::from_bytes(bytes) {
            Ok(model) => self.build(model),
            Err(e) => Err(unsupported_parts(bytes).unwrap_or(e)),
        }
    }

    /// Prepares `model` to run.
    pub fn build(self, model: LiteModel) -> Result<Interpreter> {
        Interpreter::with_options(model, self)
    }
}

/// Multiply-adds per call from which a call runs on a rayon worker thread (below, the
/// handoff costs more than the kernels gain from a second thread).
const HOP_MIN_MACS: usize = 4 << 20;

fn err(op: &'static str, msg: impl Into<String>) -> Error {
    Error::invalid(op, msg)
}

/// The threads of an interpreter's own (`Interpreter::with_threads`).
struct OwnPool {
    threads: rayon::ThreadPool,
    /// Held by the call whose idle threads poll for work (one call at a time).
    spinning: std::sync::atomic::AtomicBool,
}

impl Interpreter {
    /// Reads and validates a `.tflite` file (builtin custom ops only; see [`Self::builder`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder().from_file(path)
    }

    /// Runs calls on `n` threads of the interpreter's own (LiteRT's `num_threads`; 1 runs
    /// every kernel on one thread); 0 returns to the shared pool, which small calls leave
    /// on the calling thread.
    pub fn with_threads(mut self, n: usize) -> Result<Self> {
        self.pool = match n {
            0 => None,
            n => Some(std::sync::Arc::new(OwnPool {
                threads: rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("ferroflow-lite-{i}"))
                    .build()
                    .map_err(|e| err("tflite", format!("cannot start {n} threads: {e}")))?,
                spinning: Default::default(),
            })),
        };
        Ok(self)
    }

    /// Names the model in errors (`model 'NAME': input ...`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Parses and validates `.tflite` bytes. A file that uses tensor types or operators
    /// ferroflow cannot run is an error listing all of them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::builder().from_bytes(bytes)
    }

    /// Prepares `model` to run.
    pub fn new(model: LiteModel) -> Result<Self> {
        Self::builder().build(model)
    }

    /// An interpreter with kernels for an application's custom ops (TFLite's op resolver):
    /// `Interpreter::builder().custom_op("Name", kernel).from_file(path)`.
    pub fn builder() -> InterpreterBuilder {
        InterpreterBuilder::default()
    }

    fn with_options(model: LiteModel, options: InterpreterBuilder) -> Result<Self> {
        let custom = &options.custom;
        let missing: Vec<&str> = model
            .ops
            .iter()
            .filter_map(|op| match &op.op {
                Op::Custom { name, .. } if custom.get(name).is_none() => Some(name.as_str()),
                _ => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            return Err(Error::Format {
                path: "tflite model".into(),
                msg: format!(
                    "ferroflow cannot run this model yet: it uses custom op(s) {} with no kernel \
                     (an application registers one with Interpreter::builder().custom_op(name, kernel))",
                    missing
                        .iter()
                        .map(|n| format!("'{n}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let consts = model
            .tensors
            .iter()
            .map(|t| t.data.as_ref().map(|_| constant(t)).transpose())
            .collect::<Result<Vec<_>>>()?;
        let macs_per_row = crate::profile::static_macs(&model);
        let subgraphs = model
            .subgraphs
            .iter()
            .enumerate()
            .map(|(i, sub)| {
                let mut sub = sub.clone();
                sub.subgraphs.clear();
                Interpreter::with_options(sub, options.clone())
                    .with_context(|| format!("preparing subgraph {}", i + 1))
            })
            .collect::<Result<Vec<_>>>()?;
        let n_ops = model.ops.len();
        let mut me = Interpreter {
            subgraphs,
            pool: None,
            row_split: None,
            name: "tflite model".into(),
            folded: vec![false; model.ops.len()],
            fused_away: Vec::new(),
            banded: Vec::new(),
            band_tail: Vec::new(),
            pad_fold: Vec::new(),
            folded_float: vec![false; model.tensors.len()],
            model,
            consts,
            filters: Vec::new(),
            packed: Vec::new(),
            macs_per_row,
            custom: custom.clone(),
            max_op_macs: options.max_op_macs,
            native: Vec::new(),
            hybrid: Vec::new(),
            swish: Vec::new(),
            // Sized now: constant folding runs convolutions before the swish pass.
            epilogue_act: vec![None; n_ops],
            release: Vec::new(),
        };
        me.fold_constants()?;
        me.swish = crate::swish::find(&me.model, &me.folded);
        me.fused_away = vec![false; me.model.ops.len()];
        for sw in me.swish.iter().flatten() {
            me.fused_away[sw.logistic] = true;
            if let Some(p) = sw.in_producer {
                me.epilogue_act[p] = Some(UnaryOp::Silu);
            }
        }
        me.filters = (0..me.model.ops.len())
            .map(|i| me.prepare_filter(i))
            .collect::<Result<_>>()?;
        me.native = (0..me.model.ops.len())
            .map(|k| {
                (!me.folded[k])
                    .then(|| NativeOp::prepare(&me.model, k))
                    .flatten()
            })
            .collect();
        me.hybrid = (0..me.model.ops.len())
            .map(|k| InputQuantization::of_op(&me.model, k))
            .collect();
        me.packed = (0..me.model.ops.len())
            .map(|k| me.pack_filter(k))
            .collect::<Result<_>>()?;
        let packed: Vec<bool> = me.packed.iter().map(Option::is_some).collect();
        let const_filter: Vec<bool> = me.filters.iter().map(Option::is_some).collect();
        let skip: Vec<bool> = (0..n_ops)
            .map(|k| {
                me.folded[k] || me.fused_away[k] || me.native[k].is_some() || me.hybrid[k].is_some()
            })
            .collect();
        me.pad_fold = crate::pad_fold::find(&me.model, &me.consts, &skip);
        for fold in me.pad_fold.iter().flatten() {
            me.fused_away[fold.pad_op] = true;
        }
        let first_inputs: Vec<Option<usize>> = (0..n_ops)
            .map(|k| (!me.fused_away[k]).then(|| me.first_input(k)).flatten())
            .collect();
        me.banded = crate::bands::find(&me.model, &first_inputs, &packed, &const_filter, &skip);
        me.release = me.last_reads();
        me.band_tail = vec![false; n_ops];
        for &j in me.banded.iter().flatten() {
            me.band_tail[j] = true;
        }
        me.row_split = crate::row_split::row_split(&me.model, &me.consts, &me.folded);
        Ok(me)
    }

    /// Per op, the tensors computed by ops of this graph (not constants, inputs or
    /// outputs) that it is the last op to read.
    fn last_reads(&self) -> Vec<Vec<usize>> {
        let m = &self.model;
        let mut computed = vec![false; m.tensors.len()];
        for (k, op) in m.ops.iter().enumerate() {
            if !self.folded[k] && !self.fused_away[k] {
                for &o in op.outputs.iter().filter(|&&o| o >= 0) {
                    if let Some(c) = computed.get_mut(o as usize) {
                        *c = true;
                    }
                }
            }
        }
        for &o in &m.outputs {
            computed[o] = false;
        }
        let mut last = vec![None; m.tensors.len()];
        for (k, op) in m.ops.iter().enumerate() {
            let folded = self.pad_fold[k].map(|f| f.input as i32);
            for &t in op.inputs.iter().chain(&folded) {
                if t >= 0 && computed.get(t as usize) == Some(&true) {
                    last[t as usize] = Some(k);
                }
            }
        }
        let mut release = vec![Vec::new(); m.ops.len()];
        for (t, k) in last.into_iter().enumerate() {
            if let Some(k) = k {
                release[k].push(t);
            }
        }
        release
    }

    /// The model being run.
    pub fn model(&self) -> &LiteModel {
        &self.model
    }

    /// The input tensors' descriptions, in order.
    pub fn inputs(&self) -> Vec<&LiteTensor> {
        self.model
            .inputs
            .iter()
            .map(|&i| &self.model.tensors[i])
            .collect()
    }

    /// The output tensors' descriptions, in order.
    pub fn outputs(&self) -> Vec<&LiteTensor> {
        self.model
            .outputs
            .iter()
            .map(|&i| &self.model.tensors[i])
            .collect()
    }

    /// Converts constant filters to ferroflow's layouts once.
    fn prepare_filter(&self, i: usize) -> Result<Option<Tensor>> {
        let op = &self.model.ops[i];
        let w = match op.inputs.get(1) {
            Some(&w) if w >= 0 => w as usize,
            _ => return Ok(None),
        };
        match &self.consts[w] {
            Some(filter) => self.filter_layout(i, filter),
            None => Ok(None),
        }
    }

    /// Op `k`'s constant filter packed, when it is a float convolution that runs.
    fn pack_filter(&self, k: usize) -> Result<Option<PackedConvFilter>> {
        let runs_in_float = !self.folded[k] && self.native[k].is_none();
        match (&self.model.ops[k].op, &self.filters[k]) {
            (Op::Conv2d { .. }, Some(f)) if runs_in_float => PackedConvFilter::new(f),
            _ => Ok(None),
        }
    }

    /// Op `k`'s filter: prepared at load when constant, else laid out now from `vals`.
    fn filter(&self, k: usize, vals: &[Option<Tensor>]) -> Result<Tensor> {
        if let Some(Some(f)) = self.filters.get(k) {
            return Ok(f.clone());
        }
        let w = self.required(k, 1, vals)?;
        self.filter_layout(k, &w)?
            .ok_or_else(|| err("tflite", format!("operator {k} has no filter of rank 4")))
    }

    /// `filter` (op `i`'s second input) in ferroflow's layout for the op.
    fn filter_layout(&self, i: usize, filter: &Tensor) -> Result<Option<Tensor>> {
        let op = &self.model.ops[i];
        Ok(match &op.op {
            // [units, depth] -> [depth, units], for products of many rows
            Op::FullyConnected { .. } if filter.rank() == 2 && filter.dtype() == DType::F32 => {
                Some(filter.t()?.contiguous())
            }
            // [out, kh, kw, in] -> [kh, kw, in, out]
            Op::Conv2d { .. } if filter.rank() == 4 => {
                Some(filter.transpose(&[1, 2, 3, 0])?.contiguous())
            }
            // [out, kh, kw, in] -> [kh, kw, out, in]
            Op::TransposeConv { .. } if filter.rank() == 4 => {
                Some(filter.transpose(&[1, 2, 0, 3])?.contiguous())
            }
            // [1, kh, kw, in * m] -> [kh, kw, in, m]
            Op::DepthwiseConv2d { .. } if filter.rank() == 4 => {
                let x = op.inputs.first().copied().unwrap_or(-1);
                let cin = self
                    .model
                    .tensors
                    .get(x.max(0) as usize)
                    .and_then(|t| t.shape.last().copied())
                    .unwrap_or(0) as usize;
                let f = filter.shape();
                if cin == 0 || !f[3].is_multiple_of(cin) {
                    return Err(err(
                        "DEPTHWISE_CONV_2D",
                        format!("filter {f:?} does not fit {cin} input channels"),
                    ));
                }
                Some(filter.reshape(&[
                    f[1] as isize,
                    f[2] as isize,
                    cin as isize,
                    (f[3] / cin) as isize,
                ])?)
            }
            _ => None,
        })
    }

    /// Runs the model on `inputs` (one per model input, dtype and shape as the model's,
    /// any size where the shape signature has -1) and returns its outputs.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if let Some(outputs) = self.run_in_chunks(inputs)? {
            return Ok(outputs);
        }
        let vals = self.run_on_pool(inputs, false, None)?;
        self.outputs_of(vals)
    }

    /// The rows of each chunk that [`Interpreter::run`] cuts a batch of `batch` rows into
    /// (when its activations would outgrow the caches, and every operator keeps rows
    /// apart), or `None` when the batch runs whole.
    pub fn row_chunks(&self, batch: usize) -> Option<Vec<usize>> {
        self.row_split?.sizes(batch, self.threads())
    }

    /// The threads a call runs on: its own pool's, else the shared pool's.
    fn threads(&self) -> usize {
        match &self.pool {
            Some(pool) => pool.threads.current_num_threads(),
            None => ferroflow_core::num_threads(),
        }
    }

    /// Runs a batch whose activations are too large for the caches as chunks of rows
    /// (`row_split`), one chunk per thread when there are enough of them (else one chunk
    /// after another, each on all threads), and joins their outputs; `None` when the
    /// batch runs whole.
    fn run_in_chunks(&self, inputs: &[Tensor]) -> Result<Option<Vec<Tensor>>> {
        let (Some(split), Some(batch)) = (
            self.row_split,
            inputs.first().and_then(|x| x.shape().first().copied()),
        ) else {
            return Ok(None);
        };
        if inputs.len() != self.model.inputs.len()
            || inputs.iter().any(|x| x.shape().first() != Some(&batch))
        {
            return Ok(None);
        }
        let threads = self.threads();
        let Some(sizes) = split.sizes(batch, threads) else {
            return Ok(None);
        };
        for (x, &i) in inputs.iter().zip(&self.model.inputs) {
            check_input(&self.name, &self.model.tensors[i], x)?;
        }
        let chunks = ferroflow_core::row_chunks::chunks_of(inputs, &sizes)?;
        let alone = |j: usize| {
            let vals = self.run_all_here(&chunks[j], self.root(), true, false, None)?;
            self.outputs_of(vals)
        };
        let outs: Vec<Vec<Tensor>> = if threads >= 2 && chunks.len() < threads {
            // Too few chunks for one per thread: each runs on all threads.
            chunks
                .iter()
                .map(|chunk| self.outputs_of(self.run_on_pool(chunk, false, None)?))
                .collect::<Result<_>>()?
        } else {
            let across = || ferroflow_core::row_chunks::run_across(chunks.len(), threads, alone);
            match &self.pool {
                Some(pool) => pool.threads.install(across)?,
                None => across()?,
            }
        };
        ferroflow_core::row_chunks::join_rows(&outs).map(Some)
    }

    /// Runs the model like [`Interpreter::run`] and also returns each operator's wall
    /// time and work, in execution order (operators folded at load or fused into a later
    /// one are left out). The batch runs whole, never in chunks of rows.
    pub fn run_profiled(&self, inputs: &[Tensor]) -> Result<(Vec<Tensor>, Vec<OpProfile>)> {
        let mut profile = Vec::with_capacity(self.model.ops.len());
        let vals = self.run_on_pool(inputs, false, Some(&mut profile))?;
        Ok((self.outputs_of(vals)?, profile))
    }

    /// The model outputs among all tensor values.
    fn outputs_of(&self, vals: Vec<Option<Tensor>>) -> Result<Vec<Tensor>> {
        self.model
            .outputs
            .iter()
            .map(|&o| {
                vals[o]
                    .clone()
                    .ok_or_else(|| err("tflite", format!("output tensor {o} was never computed")))
            })
            .collect()
    }

    /// Runs the model and returns the value of every tensor (constants, inputs and every
    /// intermediate; LiteRT's `experimental_preserve_all_tensors`), indexed like
    /// `model().tensors`. The fusions planned at load (swish) are off, so each tensor
    /// holds its own value.
    pub fn run_all(&self, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        self.run_on_pool(inputs, true, None)
    }

    /// Runs the main graph where its size calls for; `keep_all`: keep every intermediate
    /// (else each is released after the last op that reads it); `profile`: where to record
    /// each operator's time and work.
    fn run_on_pool(
        &self,
        inputs: &[Tensor],
        keep_all: bool,
        profile: Option<&mut Vec<OpProfile>>,
    ) -> Result<Vec<Option<Tensor>>> {
        // Like a compiled plan, a model of some size runs on a rayon worker, so its
        // kernels share work with the other workers without a handoff per op.
        let batch = inputs
            .first()
            .and_then(|x| x.shape().first().copied())
            .unwrap_or(1);
        // Fusions leave some tensors unmade (or holding a later op's value): off when every
        // tensor is kept.
        let ctx = Ctx {
            fuse: !keep_all,
            ..self.root()
        };
        let here = || self.run_all_here(inputs, ctx, true, keep_all, profile);
        if let Some(pool) = &self.pool {
            if pool.threads.current_num_threads() == 1 {
                // One thread: the calling one, as LiteRT runs it (no handoff to a worker).
                return ferroflow_core::on_calling_thread(here);
            }
            // Its idle threads poll for work through the call, as LiteRT's do.
            return pool
                .threads
                .install(|| ferroflow_core::with_workers_spinning(&pool.spinning, here));
        }
        if self.macs_per_row.saturating_mul(batch) >= HOP_MIN_MACS {
            return ferroflow_core::on_pool_spinning(here);
        }
        here()
    }

    /// The context of a run from the main subgraph.
    fn root(&self) -> Ctx<'_> {
        Ctx {
            graphs: &self.subgraphs,
            depth: 0,
            fuse: true,
        }
    }

    /// Runs this (sub)graph; `checked`: the inputs are checked against its declared
    /// shapes and types (loop values of a WHILE body may change shape); `keep_all` and
    /// `profile` as for [`Interpreter::run_on_pool`].
    fn run_all_here(
        &self,
        inputs: &[Tensor],
        ctx: Ctx<'_>,
        checked: bool,
        keep_all: bool,
        mut profile: Option<&mut Vec<OpProfile>>,
    ) -> Result<Vec<Option<Tensor>>> {
        let m = &self.model;
        if inputs.len() != m.inputs.len() {
            let names: Vec<&str> = self.inputs().iter().map(|t| t.name.as_str()).collect();
            return Err(Error::ModelInput {
                model: self.name.clone(),
                msg: format!(
                    "takes {} input(s) ({}), got {}",
                    m.inputs.len(),
                    names.join(", "),
                    inputs.len()
                ),
            });
        }
        let mut vals: Vec<Option<Tensor>> = self.consts.clone();
        for (x, &i) in inputs.iter().zip(&m.inputs) {
            if checked {
                check_input(&self.name, &m.tensors[i], x)?;
            }
            vals[i] = Some(x.clone());
        }
        for (k, op) in m.ops.iter().enumerate() {
            if self.folded[k] || (ctx.fuse && (self.fused_away[k] || self.band_tail[k])) {
                continue;
            }
            let context = || {
                format!(
                    "running operator {k} ({}) of model '{}'",
                    op_name(&op.op),
                    self.name
                )
            };
            self.check_work(k, &vals).with_context(context)?;
            let start = profile.is_some().then(Instant::now);
            let native = match self.swish[k].as_ref().filter(|_| ctx.fuse) {
                Some(sw) => Some(self.run_swish(sw, &vals).with_context(context)?),
                None => self.run_native(k, &vals).with_context(context)?,
            };
            let int8 = native.as_ref().is_some_and(|y| y.dtype() == DType::I8);
            if let Some(j) = self.banded[k].filter(|_| ctx.fuse && native.is_none()) {
                let y = self.run_banded(k, j, &vals).with_context(context)?;
                self.store(j, vec![y], &mut vals)?;
            } else if let Some(y) = native {
                vals[op.outputs[0] as usize] = Some(y);
            } else {
                let ys = self.run_op(k, &vals, ctx).with_context(context)?;
                self.store(k, ys, &mut vals)?;
            }
            if let (Some(profile), Some(start)) = (profile.as_deref_mut(), start) {
                profile.push(self.op_profile(k, &vals, start.elapsed().as_secs_f64(), int8));
            }
            if !keep_all {
                for &t in &self.release[k] {
                    vals[t] = None;
                }
            }
        }
        Ok(vals)
    }

    /// Multiply-adds op `k` does on the inputs it has in `vals` (a folded PAD's output
    /// counted with the shape it would have).
    fn call_macs(&self, k: usize, vals: &[Option<Tensor>]) -> usize {
        let fold = self.folded_pad(k, true);
        crate::profile::op_macs(&self.model, k, |t| match (vals.get(t)?, fold) {
            (Some(v), _) => Some(v.shape().to_vec()),
            (None, Some(f)) if f.output == t => {
                f.padded_shape(vals.get(f.input)?.as_ref()?.shape())
            }
            _ => None,
        })
    }

    /// The PAD folded into op `k`, when fusions run (`fuse`).
    fn folded_pad(&self, k: usize, fuse: bool) -> Option<PadFold> {
        self.pad_fold.get(k).copied().flatten().filter(|_| fuse)
    }

    /// The tensor op `k` reads as its first input when fusions run: a folded PAD's input
    /// in place of its output.
    fn first_input(&self, k: usize) -> Option<usize> {
        match self.folded_pad(k, true) {
            Some(f) => Some(f.input),
            None => self.model.ops[k]
                .inputs
                .first()
                .and_then(|&t| usize::try_from(t).ok()),
        }
    }

    /// The padding convolution `k` runs with: a folded PAD's as explicit padding when
    /// fusions run (`fuse`), else its own.
    fn conv_padding(&self, k: usize, own: Padding, fuse: bool) -> CorePadding {
        match self.folded_pad(k, fuse) {
            Some(f) => CorePadding::Explicit(f.pads),
            None => pad(own),
        }
    }

    /// An error if op `k` would do more multiply-adds on `vals` than the interpreter allows.
    fn check_work(&self, k: usize, vals: &[Option<Tensor>]) -> Result<()> {
        let Some(limit) = self.max_op_macs else {
            return Ok(());
        };
        match self.call_macs(k, vals) {
            macs if macs > limit => Err(err(
                op_name(&self.model.ops[k].op),
                format!("would do {macs} multiply-adds, over this interpreter's limit of {limit}"),
            )),
            _ => Ok(()),
        }
    }

    /// Op `k`'s profile entry, once it has run in `seconds`.
    fn op_profile(&self, k: usize, vals: &[Option<Tensor>], seconds: f64, int8: bool) -> OpProfile {
        let op = &self.model.ops[k];
        OpProfile {
            index: k,
            op: op_name(&op.op),
            seconds,
            macs: self.call_macs(k, vals) as u64,
            output_shape: vals[op.outputs[0] as usize]
                .as_ref()
                .map_or_else(Vec::new, |y| y.shape().to_vec()),
            int8,
        }
    }

    /// The output of depthwise op `j`, computed with pointwise op `k` band by band.
    fn run_banded(&self, k: usize, j: usize, vals: &[Option<Tensor>]) -> Result<Tensor> {
        let (
            Op::Conv2d { act: a1, .. },
            Op::DepthwiseConv2d {
                window, act: a2, ..
            },
        ) = (&self.model.ops[k].op, &self.model.ops[j].op)
        else {
            return Err(err(
                "tflite",
                format!("operators {k} and {j} are not a band pair"),
            ));
        };
        let (Some(Some(pw)), Some(Some(dw))) = (self.packed.get(k), self.filters.get(j)) else {
            return Err(err(
                "tflite",
                format!("operators {k} and {j} lost their filters"),
            ));
        };
        let x = self.required(k, 0, vals)?;
        let (b1, b2) = (self.input(k, 2, vals)?, self.input(j, 2, vals)?);
        let (ep1, _) = epilogue(b1.as_ref(), *a1, self.epilogue_act[k]);
        let (ep2, rest) = epilogue(b2.as_ref(), *a2, self.epilogue_act[j]);
        let y = x.pointwise_then_depthwise(
            pw,
            ep1,
            dw,
            window.stride,
            self.conv_padding(j, window.padding, true),
            window.dilation,
            ep2,
        )?;
        apply(y, rest)
    }

    /// The output of a MUL that computes swish `sw` (in the tensor's own type).
    fn run_swish(&self, sw: &Swish, vals: &[Option<Tensor>]) -> Result<Tensor> {
        let t = vals[sw.input]
            .as_ref()
            .ok_or_else(|| err("MUL", "the swish input is missing"))?;
        match (&sw.table, sw.in_producer) {
            (Some(table), _) => Tensor::from_vec(
                crate::int8::table::lookup(table, &t.data::<i8>()?),
                t.shape(),
            ),
            // The convolution applied swish.
            (None, Some(_)) => apply(t.clone(), sw.act),
            (None, None) => apply(t.silu()?, sw.act),
        }
    }

    /// Op `k`'s int8 result from its int8 kernel, when it has one and its input holds int8
    /// values (`None`: run it in float).
    fn run_native(&self, k: usize, vals: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        let Some(Some(native)) = self.native.get(k) else {
            return Ok(None);
        };
        // Every activation input must hold int8 values (a constant folded at load is
        // kept in float).
        let mut inputs = Vec::with_capacity(native.activations());
        for &t in &self.model.ops[k].inputs[..native.activations()] {
            match &vals[t as usize] {
                Some(v) if v.dtype() == DType::I8 && !self.folded_float[t as usize] => {
                    inputs.push(v)
                }
                _ => return Ok(None),
            }
        }
        native.run(&inputs)
    }

    /// Runs this subgraph (a WHILE condition or body) on `inputs`; its outputs.
    fn run_sub(&self, inputs: &[Tensor], ctx: Ctx<'_>) -> Result<Vec<Tensor>> {
        let vals = self.run_all_here(inputs, ctx, false, false, None)?;
        self.outputs_of(vals)
    }

    /// Stores op `k`'s results in its output tensors, converted to their types.
    fn store(&self, k: usize, ys: Vec<Tensor>, vals: &mut [Option<Tensor>]) -> Result<()> {
        let op = &self.model.ops[k];
        if ys.len() != op.outputs.len() {
            return Err(err(
                "tflite",
                format!(
                    "operator {k} gives {} results for its {} outputs",
                    ys.len(),
                    op.outputs.len()
                ),
            ));
        }
        for (y, &out) in ys.into_iter().zip(&op.outputs) {
            let out = out as usize;
            vals[out] = Some(to_output(&self.model.tensors[out], y)?);
        }
        Ok(())
    }

    /// Runs, once at load, every op whose inputs are all constants (float16 and sparse
    /// weights decoded by `DEQUANTIZE`/`DENSIFY`, shape arithmetic on constants), keeping
    /// its results as constants.
    fn fold_constants(&mut self) -> Result<()> {
        for k in 0..self.model.ops.len() {
            let op = &self.model.ops[k];
            let constant_inputs = op
                .inputs
                .iter()
                .all(|&i| i < 0 || self.consts[i as usize].is_some());
            let control_flow = matches!(op.op, Op::While { .. });
            if op.inputs.iter().all(|&i| i < 0) || !constant_inputs || control_flow {
                continue;
            }
            let none = Ctx {
                graphs: &[],
                depth: 0,
                fuse: false,
            };
            let context = || {
                format!(
                    "folding constant operator {k} ({}) of model '{}'",
                    op_name(&op.op),
                    self.name
                )
            };
            self.check_work(k, &self.consts).with_context(context)?;
            let ys = self.run_op(k, &self.consts, none).with_context(context)?;
            let mut consts = std::mem::take(&mut self.consts);
            let stored = self.store(k, ys, &mut consts);
            self.consts = consts;
            stored?;
            self.folded[k] = true;
            // Kept dequantised, as constants with data are, so filters can be prepared
            // from them; `input` knows not to dequantise them again.
            for &o in &self.model.ops[k].outputs {
                let (o, meta) = (o as usize, &self.model.tensors[o as usize]);
                if is_quantized(meta) {
                    if let Some(v) = &self.consts[o] {
                        self.consts[o] = Some(dequantize(v, meta)?);
                    }
                    self.folded_float[o] = true;
                }
            }
        }
        Ok(())
    }

    /// Runs the model on float inputs and returns float outputs: inputs of a quantised
    /// model are quantised with the model's own scale and zero point (an int8 tensor is fed
    /// as it is), other inputs are cast to the model's input types, and quantised outputs
    /// are dequantised (what `ferroflow predict` does with `.tflite` files).
    pub fn run_float(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let metas = self.inputs();
        let fed = inputs
            .iter()
            .zip(metas.iter().map(Some).chain(std::iter::repeat(None)))
            .map(|(x, meta)| match meta {
                Some(m) if is_quantized(m) && x.dtype().is_float() => to_output(m, x.clone()),
                Some(m) if x.dtype() != core_dtype(m.dtype) => x.cast(core_dtype(m.dtype)),
                _ => Ok(x.clone()),
            })
            .collect::<Result<Vec<_>>>()?;
        let outs = self.run(&fed)?;
        outs.iter()
            .zip(self.outputs())
            .map(|(y, m)| {
                if is_quantized(m) {
                    dequantize(y, m)
                } else {
                    Ok(y.clone())
                }
            })
            .collect()
    }

    /// The value of input `j` of op `k`, dequantised to float when it is quantised.
    fn input(&self, k: usize, j: usize, vals: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        let Some(&t) = self.model.ops[k].inputs.get(j) else {
            return Ok(None);
        };
        if t < 0 {
            return Ok(None);
        }
        self.value(t as usize, vals).map(Some)
    }

    /// Tensor `t`'s value in `vals`, dequantised when the tensor is quantised (and not
    /// kept as float).
    fn value(&self, t: usize, vals: &[Option<Tensor>]) -> Result<Tensor> {
        let v = vals[t]
            .clone()
            .ok_or_else(|| err("tflite", format!("tensor {t} is read before it is written")))?;
        let meta = &self.model.tensors[t];
        if meta.data.is_none() && is_quantized(meta) && !self.folded_float[t] {
            return dequantize(&v, meta);
        }
        Ok(v)
    }

    /// Every input of op `k` (concatenations, packs).
    fn all_inputs(&self, k: usize, vals: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        (0..self.model.ops[k].inputs.len())
            .map(|j| self.required(k, j, vals))
            .collect()
    }

    fn required(&self, k: usize, j: usize, vals: &[Option<Tensor>]) -> Result<Tensor> {
        self.input(k, j, vals)?
            .ok_or_else(|| err("tflite", format!("input {j} is missing")))
    }

    /// Op `k`'s results, one per output.
    fn run_op(&self, k: usize, vals: &[Option<Tensor>], ctx: Ctx<'_>) -> Result<Vec<Tensor>> {
        let op = &self.model.ops[k];
        match &op.op {
            Op::While { cond, body } => {
                if ctx.depth >= MAX_WHILE_DEPTH {
                    return Err(err(
                        "WHILE",
                        format!("loops nested more than {MAX_WHILE_DEPTH} deep"),
                    ));
                }
                let graph = |g: usize| {
                    ctx.graphs
                        .get(g.wrapping_sub(1))
                        .ok_or_else(|| err("WHILE", format!("subgraph {g} is not in the model")))
                };
                let (c, b) = (graph(*cond)?, graph(*body)?);
                let inner = Ctx {
                    depth: ctx.depth + 1,
                    ..ctx
                };
                let mut state = self.all_inputs(k, vals)?;
                for _ in 0..=MAX_WHILE_ITERATIONS {
                    let go = c.run_sub(&state, inner)?;
                    let go = match &go[..] {
                        [g] if g.numel() == 1 => g.cast(DType::Bool)?.to_vec::<bool>()?[0],
                        _ => {
                            return Err(err(
                                "WHILE",
                                format!("condition subgraph {cond} gives no single boolean"),
                            ))
                        }
                    };
                    if !go {
                        return Ok(state);
                    }
                    let next = b.run_sub(&state, inner)?;
                    if next.len() != state.len() {
                        return Err(err(
                            "WHILE",
                            format!(
                                "body subgraph {body} gives {} values for {} loop values",
                                next.len(),
                                state.len()
                            ),
                        ));
                    }
                    state = next;
                }
                Err(err(
                    "WHILE",
                    format!("ran more than {MAX_WHILE_ITERATIONS} iterations"),
                ))
            }
            Op::Split { num, sized } => {
                let (x, axis) = if *sized {
                    (self.required(k, 0, vals)?, self.required(k, 2, vals)?)
                } else {
                    (self.required(k, 1, vals)?, self.required(k, 0, vals)?)
                };
                let axis = scalar_int("SPLIT", &axis)? as isize;
                let parts = if *sized {
                    let sizes: Vec<isize> = ints(&self.required(k, 1, vals)?)?
                        .into_iter()
                        .map(|v| v as isize)
                        .collect();
                    x.split(&sizes, axis)?
                } else {
                    x.split_even(*num, axis)?
                };
                if parts.len() != *num {
                    return Err(err(
                        "SPLIT",
                        format!("{} parts for num_splits {num}", parts.len()),
                    ));
                }
                Ok(parts.into_iter().map(|p| p.contiguous()).collect())
            }
            Op::Unpack { num, axis } => {
                let x = self.required(k, 0, vals)?;
                let parts = x.unstack(*axis as isize)?;
                if parts.len() != *num {
                    return Err(err(
                        "UNPACK",
                        format!("{} parts of {:?} for num {num}", parts.len(), x.shape()),
                    ));
                }
                Ok(parts.into_iter().map(|p| p.contiguous()).collect())
            }
            Op::Custom { name, options } => {
                let kernel = self
                    .custom
                    .get(name)
                    .ok_or_else(|| err("tflite", format!("custom op '{name}' has no kernel")))?;
                let inputs = (0..op.inputs.len())
                    .map(|j| self.input(k, j, vals))
                    .collect::<Result<Vec<_>>>()?;
                let outputs: Vec<&LiteTensor> = op
                    .outputs
                    .iter()
                    .map(|&o| &self.model.tensors[o as usize])
                    .collect();
                kernel.run(&inputs, options, &outputs)
            }
            _ => Ok(vec![self.run_single(k, vals, ctx.fuse)?]),
        }
    }

    /// The result of op `k`, which has one output (`fuse`: as [`Ctx::fuse`]).
    fn run_single(&self, k: usize, vals: &[Option<Tensor>], fuse: bool) -> Result<Tensor> {
        let op = &self.model.ops[k];
        let mut x = match self.folded_pad(k, fuse) {
            Some(f) => self.value(f.input, vals)?,
            None => self.required(k, 0, vals)?,
        };
        if let Some(Some(q)) = self.hybrid.get(k) {
            x = q.apply(&x)?;
        }
        Ok(match &op.op {
            Op::FullyConnected {
                act, keep_num_dims, ..
            } => {
                let w = self.required(k, 1, vals)?;
                if w.rank() != 2 {
                    return Err(err(
                        "FULLY_CONNECTED",
                        format!("weights of shape {:?}", w.shape()),
                    ));
                }
                let (units, depth) = (w.shape()[0], w.shape()[1]);
                if depth == 0 || x.numel() % depth != 0 {
                    return Err(Error::shapes(
                        "FULLY_CONNECTED",
                        "input does not fit the weights",
                        x.shape(),
                        w.shape(),
                    ));
                }
                let x2 = x.reshape(&[-1, depth as isize])?;
                let mut y = match self.filters.get(k) {
                    Some(Some(wt)) => x2.matmul_dense(&w, wt)?,
                    _ => x2.matmul_t(&w, false, true)?,
                };
                if let Some(b) = self.input(k, 2, vals)? {
                    y = y.add(&b)?;
                }
                if *keep_num_dims {
                    let mut shape: Vec<isize> = x.shape().iter().map(|&d| d as isize).collect();
                    let Some(last) = shape.last_mut() else {
                        return Err(err(
                            "FULLY_CONNECTED",
                            "keep_num_dims needs an input of rank 1 or more, got a scalar",
                        ));
                    };
                    *last = units as isize;
                    y = y.reshape(&shape)?;
                }
                apply(y, *act)?
            }
            Op::Conv2d { window, act } => {
                let b = self.input(k, 2, vals)?;
                let (ep, rest) = epilogue(b.as_ref(), *act, self.epilogue_act[k].filter(|_| fuse));
                let p = self.conv_padding(k, window.padding, fuse);
                let (s, d) = (window.stride, window.dilation);
                let y = match self.packed.get(k) {
                    Some(Some(w)) => x.conv2d_packed(w, s, p, d, ep)?,
                    _ => x.conv2d_fused(&self.filter(k, vals)?, s, p, d, ep)?,
                };
                apply(y, rest)?
            }
            Op::DepthwiseConv2d { window, act, .. } => {
                let w = self.filter(k, vals)?;
                let b = self.input(k, 2, vals)?;
                let (ep, rest) = epilogue(b.as_ref(), *act, self.epilogue_act[k].filter(|_| fuse));
                let y = x.depthwise_conv2d_fused(
                    &w,
                    window.stride,
                    self.conv_padding(k, window.padding, fuse),
                    window.dilation,
                    ep,
                )?;
                apply(y, rest)?
            }
            Op::Pool2d {
                max,
                window,
                filter,
                act,
            } => {
                let y = if *max {
                    x.max_pool2d(*filter, window.stride, pad(window.padding))?
                } else {
                    x.avg_pool2d(*filter, window.stride, pad(window.padding))?
                };
                apply(y, *act)?
            }
            Op::Reshape { new_shape } => {
                let target: Vec<i64> = match self.input(k, 1, vals)? {
                    Some(s) if s.numel() > 0 || new_shape.is_empty() => ints(&s)?,
                    _ => new_shape.iter().map(|&v| v as i64).collect(),
                };
                let shape: Vec<isize> = target.iter().map(|&v| v as isize).collect();
                x.reshape(&shape)?
            }
            Op::Softmax { beta } => {
                let z = if *beta == 1.0 {
                    x
                } else {
                    x.mul_scalar(*beta as f64)?
                };
                z.softmax(-1)?
            }
            Op::Concatenation { axis, act } => apply(
                Tensor::concat(&self.all_inputs(k, vals)?, *axis as isize)?,
                *act,
            )?,
            Op::Binary { kind, act } => {
                let b = self.required(k, 1, vals)?;
                apply(x.binary(kind.core(), &b)?, *act)?
            }
            Op::Unary(kind) => match kind {
                UnaryKind::Relu => x.relu()?,
                UnaryKind::Relu6 => x.relu6()?,
                UnaryKind::Logistic => x.sigmoid()?,
                UnaryKind::Tanh => x.tanh()?,
                UnaryKind::Exp => x.exp()?,
                UnaryKind::Log => x.log()?,
                UnaryKind::Sqrt => x.sqrt()?,
                UnaryKind::Rsqrt => x.rsqrt()?,
                UnaryKind::Abs => x.abs()?,
                UnaryKind::Neg => x.neg()?,
                UnaryKind::HardSwish => {
                    x.mul(&x.add_scalar(3.0)?.relu6()?.mul_scalar(1.0 / 6.0)?)?
                }
                UnaryKind::Elu => x.elu(1.0)?,
                UnaryKind::Sin => x.unary(UnaryOp::Sin)?,
                UnaryKind::Cos => x.unary(UnaryOp::Cos)?,
                UnaryKind::Floor => x.unary(UnaryOp::Floor)?,
                UnaryKind::Ceil => x.unary(UnaryOp::Ceil)?,
                UnaryKind::Round => x.unary(UnaryOp::Round)?,
                UnaryKind::Sign => x.unary(UnaryOp::Sign)?,
            },
            Op::Reduce { kind, keep_dims } => {
                let axes: Vec<isize> = ints(&self.required(k, 1, vals)?)?
                    .into_iter()
                    .map(|a| a as isize)
                    .collect();
                let axes = Axes::These(axes);
                match kind {
                    ReduceKind::Mean => x.mean(axes, *keep_dims)?,
                    ReduceKind::Sum => x.sum(axes, *keep_dims)?,
                    ReduceKind::Max => x.max(axes, *keep_dims)?,
                    ReduceKind::Min => x.min(axes, *keep_dims)?,
                    ReduceKind::Prod => x.prod(axes, *keep_dims)?,
                }
            }
            Op::Gather { axis } => {
                let idx = self.required(k, 1, vals)?;
                x.gather(&idx, *axis as isize)?
            }
            Op::Pad => {
                let p = ints(&self.required(k, 1, vals)?)?;
                let pairs = paddings("PAD", &x, &p)?;
                x.pad(&pairs, PadMode::Constant(0.0))?
            }
            Op::Transpose => {
                let perm: Vec<usize> = ints(&self.required(k, 1, vals)?)?
                    .into_iter()
                    .map(|v| v.max(0) as usize)
                    .collect();
                x.transpose(&perm)?.contiguous()
            }
            Op::Quantize => {
                if x.dtype().is_float() {
                    x
                } else {
                    x.cast(DType::F32)?
                }
            }
            // int8/int16 inputs arrive dequantised (see `input`); float16 is widened.
            Op::Dequantize => x.cast(DType::F32)?,
            Op::Cast => {
                let out = &self.model.tensors[op.outputs[0] as usize];
                x.cast(core_dtype(out.dtype))?
            }
            Op::Shape => {
                let dims: Vec<i32> = x.shape().iter().map(|&d| d as i32).collect();
                let n = dims.len();
                let out = &self.model.tensors[op.outputs[0] as usize];
                Tensor::from_vec(dims, &[n])?.cast(core_dtype(out.dtype))?
            }
            Op::StridedSlice {
                begin_mask,
                end_mask,
                ellipsis_mask,
                new_axis_mask,
                shrink_axis_mask,
                offset,
            } => {
                let begin = ints(&self.required(k, 1, vals)?)?;
                let end = ints(&self.required(k, 2, vals)?)?;
                let strides = match self.input(k, 3, vals)? {
                    Some(s) => ints(&s)?,
                    None => vec![1; begin.len()],
                };
                if end.len() != begin.len() || strides.len() != begin.len() {
                    return Err(err(
                        "STRIDED_SLICE",
                        format!("begin {begin:?}, end {end:?}, strides {strides:?}"),
                    ));
                }
                let bit = |mask: i32, i: usize| i < 32 && (mask >> i) & 1 == 1;
                let args: Vec<SliceArg> = (0..begin.len())
                    .map(|i| {
                        if bit(*ellipsis_mask, i) {
                            SliceArg::Ellipsis
                        } else if bit(*new_axis_mask, i) {
                            SliceArg::NewAxis
                        } else if bit(*shrink_axis_mask, i) {
                            SliceArg::Index(begin[i] as isize)
                        } else {
                            let b = (!bit(*begin_mask, i)).then_some(begin[i] as isize);
                            let e = if bit(*end_mask, i) {
                                None
                            } else if *offset {
                                Some((begin[i] + end[i]) as isize)
                            } else {
                                Some(end[i] as isize)
                            };
                            SliceArg::Range(b, e, strides[i] as isize)
                        }
                    })
                    .collect();
                x.strided_slice(&args)?.contiguous()
            }
            Op::Pack { axis } => Tensor::stack(&self.all_inputs(k, vals)?, *axis as isize)?,
            Op::ExpandDims => {
                let axis = ints(&self.required(k, 1, vals)?)?;
                let a = *axis
                    .first()
                    .ok_or_else(|| err("EXPAND_DIMS", "no axis given"))?;
                x.expand_dims(a as isize)?
            }
            Op::Squeeze { dims } => {
                let dims: Vec<isize> = if dims.is_empty() {
                    (0..x.rank())
                        .filter(|&d| x.shape()[d] == 1)
                        .map(|d| d as isize)
                        .collect()
                } else {
                    dims.iter().map(|&d| d as isize).collect()
                };
                x.squeeze(&dims)?
            }
            Op::Compare(kind) => {
                let b = self.required(k, 1, vals)?;
                match kind {
                    CompareKind::Less => x.less(&b)?,
                    CompareKind::LessEqual => x.less_equal(&b)?,
                    CompareKind::Greater => x.greater(&b)?,
                    CompareKind::GreaterEqual => x.greater_equal(&b)?,
                    CompareKind::Equal => x.equal(&b)?,
                    CompareKind::NotEqual => x.not_equal(&b)?,
                }
            }
            Op::Select => {
                let a = self.required(k, 1, vals)?;
                let b = self.required(k, 2, vals)?;
                Tensor::where_(&x, &a, &b)?
            }
            Op::BatchMatMul { adj_x, adj_y } => {
                let y = self.required(k, 1, vals)?;
                x.matmul_t(&y, *adj_x, *adj_y)?
            }
            Op::Prelu => kernels::prelu(&x, &self.required(k, 1, vals)?)?,
            Op::Densify => x,
            Op::SpaceToBatchNd | Op::BatchToSpaceNd => {
                let block = ints(&self.required(k, 1, vals)?)?;
                let pairs = ints(&self.required(k, 2, vals)?)?;
                if matches!(op.op, Op::SpaceToBatchNd) {
                    kernels::space_to_batch_nd(&x, &block, &pairs)?
                } else {
                    kernels::batch_to_space_nd(&x, &block, &pairs)?
                }
            }
            Op::Resize {
                bilinear,
                align_corners,
                half_pixel_centers,
            } => {
                let size = ints(&self.required(k, 1, vals)?)?;
                let [h, w] = size[..] else {
                    return Err(err(
                        "RESIZE",
                        format!("size {size:?} is not [height, width]"),
                    ));
                };
                if h < 1 || w < 1 {
                    return Err(err("RESIZE", format!("size {size:?} is not positive")));
                }
                kernels::resize(
                    &x,
                    (h as usize, w as usize),
                    *bilinear,
                    *align_corners,
                    *half_pixel_centers,
                )?
            }
            Op::DepthToSpace { block } => kernels::depth_to_space(&x, *block)?,
            Op::SpaceToDepth { block } => kernels::space_to_depth(&x, *block)?,
            Op::TransposeConv { window, act } => {
                // Inputs: output shape, filter [out, kh, kw, in], image, bias.
                let shape = ints(&x)?;
                let image = self.required(k, 2, vals)?;
                let [_, oh, ow, _] = shape[..] else {
                    return Err(err(
                        "TRANSPOSE_CONV",
                        format!("output shape {shape:?} is not NHWC"),
                    ));
                };
                let w = self.filter(k, vals)?;
                if oh < 1 || ow < 1 {
                    return Err(err(
                        "TRANSPOSE_CONV",
                        format!("output shape {shape:?} is not positive"),
                    ));
                }
                let (n, cout) = (image.shape().first().copied().unwrap_or(0), w.shape()[2]);
                kernels::check_output_size("TRANSPOSE_CONV", &[n, oh as usize, ow as usize, cout])?;
                let mut y = image.conv2d_transpose(
                    &w,
                    (oh as usize, ow as usize),
                    window.stride,
                    pad(window.padding),
                    (1, 1),
                )?;
                if let Some(b) = self.input(k, 3, vals)? {
                    y = y.add(&b)?;
                }
                apply(y, *act)?
            }
            Op::Logical(kind) => match kind {
                LogicalKind::And => x.logical_and(&self.required(k, 1, vals)?)?,
                LogicalKind::Or => x.logical_or(&self.required(k, 1, vals)?)?,
                LogicalKind::Not => x.logical_not()?,
            },
            Op::Reverse => {
                let axes: Vec<isize> = ints(&self.required(k, 1, vals)?)?
                    .into_iter()
                    .map(|a| a as isize)
                    .collect();
                x.reverse(&axes)?.contiguous()
            }
            Op::Split { .. } | Op::Unpack { .. } | Op::Custom { .. } | Op::While { .. } => {
                return Err(err("tflite", "an op with several outputs run as one"))
            }
            Op::Slice => {
                let begin = ints(&self.required(k, 1, vals)?)?;
                let size = ints(&self.required(k, 2, vals)?)?;
                if begin.len() != x.rank() || size.len() != x.rank() || begin.iter().any(|&b| b < 0)
                {
                    return Err(err(
                        "SLICE",
                        format!(
                            "begin {begin:?} and size {size:?} for shape {:?}",
                            x.shape()
                        ),
                    ));
                }
                let begin: Vec<usize> = begin.iter().map(|&b| b as usize).collect();
                let size: Vec<isize> = size.iter().map(|&s| s as isize).collect();
                x.slice(&begin, &size)?.contiguous()
            }
            Op::Tile => {
                let m = ints(&self.required(k, 1, vals)?)?;
                let multiples: Option<Vec<usize>> =
                    m.iter().map(|&t| usize::try_from(t).ok()).collect();
                let tiled: Option<Vec<usize>> = multiples
                    .as_ref()
                    .filter(|t| t.len() == x.rank())
                    .and_then(|t| {
                        x.shape()
                            .iter()
                            .zip(t)
                            .map(|(&d, &t)| d.checked_mul(t))
                            .collect()
                    });
                let (Some(multiples), Some(dims)) = (multiples, tiled) else {
                    return Err(err(
                        "TILE",
                        format!("multiples {m:?} for shape {:?}", x.shape()),
                    ));
                };
                kernels::check_remap_size("TILE", &dims)?;
                x.tile(&multiples)?
            }
            Op::GatherNd => x.gather_nd(&self.required(k, 1, vals)?)?,
            Op::ArgReduce { max } => {
                let axis = scalar_int("ARG_MAX", &self.required(k, 1, vals)?)? as isize;
                if *max {
                    x.argmax(axis)?
                } else {
                    x.argmin(axis)?
                }
            }
            Op::L2Normalization { act } => apply(kernels::l2_normalize(&x)?, *act)?,
            Op::LocalResponseNorm {
                radius,
                bias,
                alpha,
                beta,
            } => kernels::local_response_norm(&x, *radius, *bias, *alpha, *beta)?,
            Op::MirrorPad { symmetric } => {
                let p = ints(&self.required(k, 1, vals)?)?;
                let pairs = paddings("MIRROR_PAD", &x, &p)?;
                let mode = if *symmetric {
                    PadMode::Symmetric
                } else {
                    PadMode::Reflect
                };
                x.pad(&pairs, mode)?
            }
            Op::Cumsum { exclusive, reverse } => {
                let axis = scalar_int("CUMSUM", &self.required(k, 1, vals)?)? as isize;
                x.cumsum(axis, *exclusive, *reverse)?
            }
            Op::LeakyRelu { alpha } => x.leaky_relu(*alpha as f64)?,
            Op::Gelu { approximate } => {
                if *approximate {
                    x.gelu_tanh()?
                } else {
                    x.gelu()?
                }
            }
        })
    }
}

/// `x` rounded half away from zero (TFLite's rounding), in a form that vectorises (the
/// library `round` is a call per element).
#[inline(always)]
pub(crate) fn round_half_away(x: f32) -> f32 {
    let t = x.trunc();
    if (x - t).abs() >= 0.5 {
        t + x.signum()
    } else {
        t
    }
}

/// `r` saturated to int8 (NaN to -128), in a form that vectorises: a saturating float to
/// int cast must keep NaN apart, which LLVM does lane by lane.
#[inline(always)]
pub(crate) fn saturate_i8(r: f32) -> i8 {
    // The negated comparison also sends NaN to the lower bound.
    let r = if r >= -128.0 { r } else { -128.0 };
    let r = if r > 127.0 { 127.0 } else { r };
    // SAFETY: `r` is a number in [-128, 127], which i32 holds.
    unsafe { r.to_int_unchecked::<i32>() as i8 }
}

fn pad(p: Padding) -> CorePadding {
    match p {
        Padding::Same => CorePadding::Same,
        Padding::Valid => CorePadding::Valid,
    }
}

/// The elementwise op of a fused activation (`None`: no activation, or one without an op
/// of its own, `RELU_N1_TO_1`).
fn activation_op(act: Activation) -> Option<UnaryOp> {
    match act {
        Activation::Relu => Some(UnaryOp::Relu),
        Activation::Relu6 => Some(UnaryOp::Relu6),
        Activation::Tanh => Some(UnaryOp::Tanh),
        Activation::None | Activation::ReluN1To1 => None,
    }
}

/// A convolution's bias and fused activation as the kernel's epilogue, and what is left
/// to apply after it (an activation without an elementwise op of its own).
fn epilogue(
    bias: Option<&Tensor>,
    act: Activation,
    instead: Option<UnaryOp>,
) -> (ConvEpilogue<'_>, Activation) {
    let op = instead.or(activation_op(act));
    let rest = if op.is_some() { Activation::None } else { act };
    (ConvEpilogue::new(bias, op), rest)
}

fn apply(y: Tensor, act: Activation) -> Result<Tensor> {
    match (act, activation_op(act)) {
        (Activation::ReluN1To1, _) => y.clip_scalar(-1.0, 1.0),
        (_, Some(op)) => y.unary(op),
        (_, None) => Ok(y),
    }
}

fn ints(t: &Tensor) -> Result<Vec<i64>> {
    t.cast(DType::I64)?.to_vec::<i64>()
}

/// The one integer of a scalar or one-element tensor (an axis).
fn scalar_int(op: &'static str, t: &Tensor) -> Result<i64> {
    match ints(t)?[..] {
        [v] => Ok(v),
        ref other => Err(err(op, format!("expected one axis, got {other:?}"))),
    }
}

/// `paddings` (`[rank, 2]`, flattened) as (before, after) pairs, checked to be
/// non-negative and to give an output that fits (`kernels::check_remap_size`).
fn paddings(op: &'static str, x: &Tensor, p: &[i64]) -> Result<Vec<(usize, usize)>> {
    if p.len() != 2 * x.rank() || p.iter().any(|&v| v < 0) {
        return Err(err(op, format!("paddings {p:?} for rank {}", x.rank())));
    }
    let pairs: Vec<(usize, usize)> = p
        .chunks(2)
        .map(|c| (c[0] as usize, c[1] as usize))
        .collect();
    let padded: Option<Vec<usize>> = x
        .shape()
        .iter()
        .zip(&pairs)
        .map(|(&d, &(a, b))| d.checked_add(a)?.checked_add(b))
        .collect();
    let Some(dims) = padded else {
        return Err(err(
            op,
            format!("paddings {p:?} of {:?} are too large", x.shape()),
        ));
    };
    kernels::check_remap_size(op, &dims)?;
    Ok(pairs)
}

/// The ferroflow dtype of a TFLite element type (int16 computes as int32).
pub fn core_dtype(t: ElementType) -> DType {
    match t {
        ElementType::F32 => DType::F32,
        ElementType::I32 | ElementType::I16 => DType::I32,
        ElementType::I64 => DType::I64,
        ElementType::I8 => DType::I8,
        ElementType::U8 => DType::U8,
        ElementType::Bool => DType::Bool,
        ElementType::F16 => DType::F16,
    }
}

fn is_quantized(t: &LiteTensor) -> bool {
    t.quant.is_some()
        && matches!(
            t.dtype,
            ElementType::I8 | ElementType::U8 | ElementType::I16
        )
}

/// A constant's data as a ferroflow tensor; quantised constants (int8 weights, int32
/// biases with a scale) are dequantised to float.
fn constant(t: &LiteTensor) -> Result<Tensor> {
    let data = t.data.as_deref().unwrap_or_default();
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let raw = match t.dtype {
        ElementType::F32 => Tensor::from_vec(le::<4, f32>(data, f32::from_le_bytes), &shape)?,
        ElementType::I32 => Tensor::from_vec(le::<4, i32>(data, i32::from_le_bytes), &shape)?,
        ElementType::I64 => Tensor::from_vec(le::<8, i64>(data, i64::from_le_bytes), &shape)?,
        ElementType::I16 => Tensor::from_vec(
            le::<2, i16>(data, i16::from_le_bytes)
                .into_iter()
                .map(i32::from)
                .collect::<Vec<i32>>(),
            &shape,
        )?,
        ElementType::I8 => {
            Tensor::from_vec(data.iter().map(|&b| b as i8).collect::<Vec<i8>>(), &shape)?
        }
        ElementType::U8 => Tensor::from_vec(data.to_vec(), &shape)?,
        ElementType::Bool => {
            Tensor::from_vec(data.iter().map(|&b| b != 0).collect::<Vec<bool>>(), &shape)?
        }
        ElementType::F16 => Tensor::from_vec(
            le::<2, u16>(data, u16::from_le_bytes)
                .into_iter()
                .map(half::f16::from_bits)
                .collect::<Vec<half::f16>>(),
            &shape,
        )?,
    };
    match &t.quant {
        // int32 (int8 models) and int64 (16x8 models) biases carry a scale too.
        Some(q) if is_quantized(t) || matches!(t.dtype, ElementType::I32 | ElementType::I64) => {
            dequantize_with(&raw, q)
        }
        _ => Ok(raw),
    }
}

pub(crate) fn le<const N: usize, T>(data: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks of N bytes")))
        .collect()
}

/// `scale * (q - zero_point)`, per tensor or per channel.
fn dequantize(v: &Tensor, meta: &LiteTensor) -> Result<Tensor> {
    match &meta.quant {
        Some(q) => dequantize_with(v, q),
        None => v.cast(DType::F32),
    }
}

fn dequantize_with(v: &Tensor, q: &Quantization) -> Result<Tensor> {
    if q.scale.len() == 1 && v.dtype() == DType::I8 {
        // One pass: the common case of every int8 activation.
        let (s, z) = (q.scale[0], q.zero_point[0] as f32);
        let data = v.contiguous().to_vec::<i8>()?;
        let out: Vec<f32> = data.iter().map(|&x| (x as f32 - z) * s).collect();
        return Tensor::from_vec(out, v.shape());
    }
    let x = v.cast(DType::F32)?;
    if q.scale.len() == 1 {
        return x
            .add_scalar(-(q.zero_point[0] as f64))?
            .mul_scalar(q.scale[0] as f64);
    }
    let (scale, zp) = per_channel(q, v.rank())?;
    x.sub(&zp)?.mul(&scale)
}

/// Per-channel parameters as tensors broadcasting along `q.axis` of a rank-`rank` tensor.
fn per_channel(q: &Quantization, rank: usize) -> Result<(Tensor, Tensor)> {
    let mut shape = vec![1usize; rank];
    if q.axis >= rank {
        return Err(err(
            "tflite",
            format!("quantized dimension {} of a rank-{rank} tensor", q.axis),
        ));
    }
    shape[q.axis] = q.scale.len();
    let scale = Tensor::from_vec(q.scale.clone(), &shape)?;
    let zp = Tensor::from_vec(
        q.zero_point.iter().map(|&z| z as f32).collect::<Vec<f32>>(),
        &shape,
    )?;
    Ok((scale, zp))
}

/// Converts an op's float result to the output tensor's type: quantised outputs are
/// rounded (half away from zero) to their scale and zero point and saturated.
fn to_output(meta: &LiteTensor, y: Tensor) -> Result<Tensor> {
    if is_quantized(meta) {
        let q = meta.quant.as_ref().expect("quantised");
        let (lo, hi): (f32, f32) = match meta.dtype {
            ElementType::I8 => (-128.0, 127.0),
            ElementType::U8 => (0.0, 255.0),
            _ => (-32768.0, 32767.0),
        };
        let x = y.cast(DType::F32)?;
        if q.scale.len() == 1 && meta.dtype == ElementType::I8 {
            // One pass: round(x / scale) half away from zero, shift, saturate (TFLite's
            // affine quantisation).
            let (s, z) = (q.scale[0], q.zero_point[0] as f32);
            let data = x.contiguous().to_vec::<f32>()?;
            // From the core's buffer cache, to which the tensor returns it when dropped.
            let mut out = ferroflow_core::alloc::overwritable::<i8>(data.len());
            // On the best instruction set: in baseline x86-64 code `trunc` is a libm call
            // per element (this loop was half of an int8 EfficientNetV2B0's run).
            let out: Vec<i8> = ferroflow_core::with_best_isa(
                #[inline(always)]
                move || {
                    for (y, &v) in out.iter_mut().zip(&data) {
                        *y = saturate_i8(round_half_away(v / s) + z);
                    }
                    out
                },
            );
            return Tensor::from_vec(out, x.shape());
        }
        let q_f = if q.scale.len() == 1 {
            x.div(&Tensor::scalar(q.scale[0]))?
                .round()?
                .add_scalar(q.zero_point[0] as f64)?
        } else {
            let (scale, zp) = per_channel(q, x.rank())?;
            x.div(&scale)?.round()?.add(&zp)?
        };
        return q_f
            .clip_scalar(lo as f64, hi as f64)?
            .cast(core_dtype(meta.dtype));
    }
    let want = core_dtype(meta.dtype);
    if y.dtype() != want {
        return y.cast(want);
    }
    Ok(y)
}

/// The error for a file that uses what ferroflow cannot run, naming every such tensor
/// type and operator (`None` when the file has none: its error is something else).
fn unsupported_parts(bytes: &[u8]) -> Option<Error> {
    let v = crate::inspect::inspect(bytes).ok()?;
    let mut parts: Vec<String> = v["unsupported_tensor_types"]
        .as_array()?
        .iter()
        .filter_map(|t| t.as_str().map(|t| format!("tensors of type {t}")))
        .collect();
    for op in v["ops"].as_array()? {
        if let Some(reason) = op["reason"].as_str() {
            parts.push(format!(
                "{} x {} ({reason})",
                op["count"],
                op["op"].as_str()?
            ));
        }
    }
    (!parts.is_empty()).then(|| Error::Format {
        path: "tflite model".into(),
        msg: format!(
            "ferroflow cannot run this model yet: it uses {}",
            parts.join("; ")
        ),
    })
}

/// A TFLite shape as Keras writes shapes: `(None, 64)`, dynamic dimensions as `None`.
pub fn format_lite_dims(shape: &[i32], signature: &[i32]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .enumerate()
        .map(|(d, &v)| match signature.get(d) {
            Some(&-1) => "None".to_string(),
            _ => v.to_string(),
        })
        .collect();
    match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    }
}

fn check_input(model: &str, meta: &LiteTensor, x: &Tensor) -> Result<()> {
    let mismatch = |msg: String| Error::ModelInput {
        model: model.to_string(),
        msg,
    };
    let want = core_dtype(meta.dtype);
    if x.dtype() != want {
        return Err(mismatch(format!(
            "input '{}' expects {} ({}), got {}",
            meta.name,
            want,
            meta.dtype.name(),
            x.dtype()
        )));
    }
    let ok = x.rank() == meta.shape.len()
        && x.shape()
            .iter()
            .enumerate()
            .all(|(d, &v)| meta.signature.get(d) == Some(&-1) || meta.shape[d] as usize == v);
    if !ok {
        let got: Vec<i32> = x.shape().iter().map(|&d| d as i32).collect();
        return Err(mismatch(format!(
            "input '{}' expects shape {}, got {}",
            meta.name,
            format_lite_dims(&meta.shape, &meta.signature),
            format_lite_dims(&got, &[])
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::round_half_away;

    #[test]
    fn rounding_matches_round_half_away_from_zero() {
        let edge = [
            0.5f32,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.49999997,
            -0.49999997,
            1e7 + 0.5,
            0.0,
            -0.0,
        ];
        let sweep = (-4000..4000).map(|i| i as f32 * 0.0625 + 0.001 * (i % 7) as f32);
        for x in edge.into_iter().chain(sweep) {
            assert_eq!(round_half_away(x), x.round(), "{x}");
        }
    }
}
