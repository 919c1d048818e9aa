//! [`Function`] (`tf.function`): traces a closure per input signature into a graph,
//! optimises it, and runs the optimised plan on later calls.

use crate::executor::Plan;
use crate::graph::{Graph, ValueInfo};
use crate::passes::{optimize, OptLevel, PassStats};
use crate::row_split::{rows, same_but_rows, Rows};
use crate::signature::{check, TensorSpec};
use crate::tracer::GraphTracer;
use ferroflow_core::{DType, Error, Result, Tensor};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// One traced and optimised specialisation of a function (`ConcreteFunction`).
pub struct ConcreteFunction {
    name: String,
    inputs: Vec<ValueInfo>,
    traced: Graph,
    plan: Plan,
    /// Unfused plan used while a gradient tape records, so the tape sees every op.
    tape_plan: Plan,
    stats: PassStats,
    /// How the traced function treats the rows of its inputs, when it keeps them apart
    /// (so that a large batch may run as chunks of rows).
    rows: Option<Rows>,
    /// For each chunk size tried: whether that chunk's function is this one with only
    /// the rows changed.
    chunk_checks: Mutex<HashMap<usize, bool>>,
    /// Set when a chunk's function could not be traced or differs: batches run whole.
    chunks_refused: AtomicBool,
}

impl ConcreteFunction {
    /// Runs `f` eagerly on `args` while recording it and optimises the recording at
    /// `level`; then, as `tf.function` does, undoes the trace's variable assignments and
    /// random draws and runs the plan, so even the first call gives the compiled results.
    /// Returns the function and those results.
    pub fn trace(
        name: &str,
        f: impl FnOnce(&[Tensor]) -> Result<Vec<Tensor>>,
        args: &[Tensor],
        level: OptLevel,
    ) -> Result<(ConcreteFunction, Vec<Tensor>)> {
        let rng = ferroflow_core::random::snapshot();
        let (res, mut tracer) = ferroflow_core::trace::trace(GraphTracer::new(args), || f(args));
        let outs = res.map_err(|e| e.context(format!("tracing '{name}'")))?;
        let out_values = outs.iter().map(|t| tracer.value_of(t)).collect();
        let mut traced = tracer.graph;
        traced.outputs = out_values;
        let (full, stats) = optimize(traced.clone(), level);
        let (basic, _) = optimize(traced.clone(), level.min_basic());
        let cf = ConcreteFunction {
            name: name.to_string(),
            inputs: args.iter().map(ValueInfo::of).collect(),
            rows: rows(&traced),
            traced,
            plan: Plan::new(full),
            tape_plan: Plan::new(basic),
            stats,
            chunk_checks: Mutex::new(HashMap::new()),
            chunks_refused: AtomicBool::new(false),
        };
        for (var, before) in tracer.assigned.iter().rev() {
            var.assign(before)?;
        }
        ferroflow_core::random::rewind_to(rng);
        drop(outs);
        let outs = cf.call(args)?;
        Ok((cf, outs))
    }

    /// Runs the plan. While a gradient tape records, the unfused plan runs instead, op by
    /// op through the eager kernels, so gradients through the call equal eager ones.
    pub fn call(&self, args: &[Tensor]) -> Result<Vec<Tensor>> {
        if args.len() != self.inputs.len()
            || args
                .iter()
                .zip(&self.inputs)
                .any(|(a, i)| ValueInfo::of(a) != *i)
        {
            let got: Vec<String> = args
                .iter()
                .map(|a| format!("{}{:?}", a.dtype(), a.shape()))
                .collect();
            let want: Vec<String> = self
                .inputs
                .iter()
                .map(|i| format!("{}{:?}", i.dtype, i.shape))
                .collect();
            return Err(Error::invalid(
                "function",
                format!(
                    "'{}' was traced for [{}], called with [{}]",
                    self.name,
                    want.join(", "),
                    got.join(", ")
                ),
            ));
        }
        if ferroflow_core::autodiff::is_recording() {
            self.tape_plan.run(args)
        } else {
            self.plan.run(args)
        }
    }

    /// The first dimension of the first input this function was traced for.
    pub fn input_rows(&self) -> Option<usize> {
        self.inputs.first()?.shape.first().copied()
    }

    /// The rows of each chunk that a call on `args` (this function's input shapes) may run
    /// as: when every op keeps the rows of the inputs' first dimension apart and the
    /// batch's activations would outgrow the caches (`ferroflow_core::row_chunks`).
    /// `None` when the batch runs whole, and always while a gradient tape records.
    pub fn row_chunks(&self, args: &[Tensor]) -> Option<Vec<usize>> {
        let rows = self.rows.as_ref()?;
        if self.chunks_refused.load(Ordering::Relaxed)
            || ferroflow_core::autodiff::is_recording()
            || args.iter().any(|a| a.shape().first() != Some(&rows.batch))
        {
            return None;
        }
        let threads = ferroflow_core::num_threads();
        ferroflow_core::row_chunks::chunk_plan(rows.batch, rows.row_bytes, threads)
    }

    /// Runs `args` as chunks of `sizes` rows (from [`ConcreteFunction::row_chunks`]),
    /// chunk `j` by `functions[k]` where `functions[k]` was traced for chunks of
    /// `sizes[j]` rows, and joins the outputs. Each chunk function is first checked to be
    /// this one with only the rows changed (once per size); when one is not, or the
    /// pieces do not fit, the batch runs whole. The results equal a whole call's.
    pub fn call_in_chunks(
        &self,
        args: &[Tensor],
        sizes: &[usize],
        functions: &[&ConcreteFunction],
    ) -> Result<Vec<Tensor>> {
        let Some(rows) = &self.rows else {
            return self.call(args);
        };
        let function_for = |n: usize| {
            functions
                .iter()
                .copied()
                .find(|f| f.input_rows() == Some(n))
        };
        let fits = sizes.iter().sum::<usize>() == rows.batch
            && sizes.iter().all(|&n| {
                function_for(n).is_some_and(|f| {
                    *self
                        .chunk_checks
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(n)
                        .or_insert_with(|| same_but_rows(&self.traced, rows, &f.traced, n))
                })
            });
        if !fits {
            self.refuse_row_chunks();
            return self.call(args);
        }
        let chunks = ferroflow_core::row_chunks::chunks_of(args, sizes)?;
        let run = |j: usize| match function_for(sizes[j]) {
            Some(f) => f.call(&chunks[j]),
            None => Err(Error::invalid("function", "a chunk lost its function")),
        };
        let threads = ferroflow_core::num_threads();
        let outs = if threads >= 2 && chunks.len() < threads {
            // Too few chunks for one per thread: each runs on all threads.
            (0..chunks.len()).map(run).collect::<Result<Vec<_>>>()?
        } else {
            ferroflow_core::row_chunks::run_across(chunks.len(), threads, run)?
        };
        ferroflow_core::row_chunks::join_rows(&outs)
    }

    /// From now on, runs every batch whole ([`ConcreteFunction::row_chunks`] gives
    /// `None`): for a caller whose trace of a chunk's shape failed (a closure that fixes
    /// its batch size).
    pub fn refuse_row_chunks(&self) {
        self.chunks_refused.store(true, Ordering::Relaxed);
    }

    /// The graph as traced, before optimisation.
    pub fn traced_graph(&self) -> &Graph {
        &self.traced
    }

    /// The optimised graph that runs.
    pub fn graph(&self) -> &Graph {
        self.plan.graph()
    }

    /// What the passes did.
    pub fn stats(&self) -> &PassStats {
        &self.stats
    }

    /// (peak bytes of live intermediates with buffer reuse, bytes without reuse).
    pub fn memory(&self) -> (usize, usize) {
        self.plan.memory()
    }

    /// The (1x1 convolution, depthwise convolution) node pairs of the optimised graph
    /// that run as one step, band by band (their time counts at the depthwise node).
    pub fn banded_pairs(&self) -> Vec<(usize, usize)> {
        self.plan.banded_pairs()
    }

    /// Runs the optimised plan `runs` times on `args` and returns a table of its nodes by
    /// mean time (microseconds), slowest first, with their share of the total.
    pub fn profile(&self, args: &[Tensor], runs: usize) -> Result<String> {
        let times = self.plan.profile(args, runs)?;
        let g = self.graph();
        let total: f64 = times.iter().sum();
        let mut rows: Vec<(usize, f64)> = times.iter().copied().enumerate().collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut s = format!("profile of '{}': {total:.1} us per call\n", self.name);
        let pairs = self.plan.banded_pairs();
        for (i, t) in rows.into_iter().filter(|r| r.1 > 0.0) {
            let pct = 100.0 * t / total.max(1e-12);
            let with = match pairs.iter().find(|p| p.1 == i) {
                Some((h, _)) => format!(" (banded with %{h})"),
                None => String::new(),
            };
            s.push_str(&format!(
                "{t:>10.1} us {pct:>5.1}%  %{i} {}{with}\n",
                g.nodes[i].kind.name()
            ));
        }
        Ok(s)
    }

    /// Text dump of the graph before (`optimized = false`) or after optimisation.
    pub fn dump(&self, optimized: bool) -> String {
        let g = if optimized {
            self.graph()
        } else {
            &self.traced
        };
        let title = format!(
            "'{}' ({})",
            self.name,
            if optimized { "optimized" } else { "traced" }
        );
        crate::dump::to_text(g, &title)
    }

    /// Graphviz DOT of the graph before or after optimisation.
    pub fn dot(&self, optimized: bool) -> String {
        let g = if optimized {
            self.graph()
        } else {
            &self.traced
        };
        crate::dump::to_dot(g, &self.name)
    }
}

impl OptLevel {
    fn min_basic(self) -> OptLevel {
        match self {
            OptLevel::Full => OptLevel::Basic,
            other => other,
        }
    }
}

type CacheKey = Vec<(Vec<usize>, DType)>;

/// What a concrete function is specialised on: each argument's shape and dtype.
fn cache_key(args: &[Tensor]) -> CacheKey {
    args.iter()
        .map(|a| (a.shape().to_vec(), a.dtype()))
        .collect()
}

/// A closure compiled per input signature, like `tf.function`.
///
/// The first call with a new combination of argument shapes and dtypes runs the closure
/// eagerly while recording every op, variable read and assignment into a graph; the
/// graph is optimised and cached, and later calls with the same signature run the plan
/// without calling the closure. Variables are captured by reference: reads and
/// assignments are graph nodes, so a whole training step compiles as one graph.
/// Values the closure computes on the host from outside state must come through
/// [`ferroflow_core::trace::host_value`], or they are frozen at trace time (as Python
/// values are in `tf.function`).
///
/// ```
/// use ferroflow_core::{Tensor, Variable};
/// use ferroflow_graph::function;
/// let w = Variable::new(Tensor::scalar(2.0f32));
/// let w2 = w.clone();
/// let mut f = function(move |x: &[Tensor]| Ok(vec![x[0].mul(&w2.value())?.add_scalar(1.0)?]));
/// let y = f.call(&[Tensor::scalar(3.0f32)])?;
/// assert_eq!(y[0].to_scalar::<f32>()?, 7.0);
/// w.assign(&Tensor::scalar(10.0f32))?;
/// assert_eq!(f.call(&[Tensor::scalar(3.0f32)])?[0].to_scalar::<f32>()?, 31.0);
/// assert_eq!(f.tracing_count(), 1);
/// # Ok::<(), ferroflow_core::Error>(())
/// ```
pub struct Function<F> {
    f: F,
    name: String,
    level: OptLevel,
    signature: Option<Vec<TensorSpec>>,
    cache: HashMap<CacheKey, ConcreteFunction>,
    tracing_count: usize,
}

/// Wraps `f` as a [`Function`] with every optimisation on (`jit_compile=True`).
pub fn function<F>(f: F) -> Function<F>
where
    F: FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
{
    Function {
        f,
        name: "function".into(),
        level: OptLevel::Full,
        signature: None,
        cache: HashMap::new(),
        tracing_count: 0,
    }
}

impl<F> Function<F>
where
    F: FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
{
    /// Names the function (in errors and dumps).
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// `jit_compile=True` (the default) fuses kernels and reuses buffers; `false` keeps
    /// every op's eager kernel and only folds, simplifies and merges.
    pub fn jit_compile(mut self, on: bool) -> Self {
        self.level = if on { OptLevel::Full } else { OptLevel::Basic };
        self
    }

    /// Sets the optimisation level directly.
    pub fn opt_level(mut self, level: OptLevel) -> Self {
        self.level = level;
        self
    }

    /// Restricts the accepted arguments (`input_signature`): calls that do not fit are an
    /// error. Plans are still specialised per concrete shape: each new size on a `None`
    /// axis traces once.
    pub fn input_signature(mut self, specs: Vec<TensorSpec>) -> Self {
        self.signature = Some(specs);
        self
    }

    /// How many times the closure has been traced (`experimental_get_tracing_count`).
    pub fn tracing_count(&self) -> usize {
        self.tracing_count
    }

    /// Calls the function. Inside another function's trace the closure simply runs, so
    /// its ops join the outer graph.
    pub fn call(&mut self, args: &[Tensor]) -> Result<Vec<Tensor>> {
        if let Some(specs) = &self.signature {
            check(&self.name, specs, args)?;
        }
        if ferroflow_core::trace::is_tracing() {
            return (self.f)(args);
        }
        let key = cache_key(args);
        let Some(cf) = self.cache.get(&key) else {
            let (cf, outs) = ConcreteFunction::trace(&self.name, &mut self.f, args, self.level)?;
            self.tracing_count += 1;
            self.cache.insert(key, cf);
            return Ok(outs);
        };
        let Some(sizes) = cf.row_chunks(args) else {
            return cf.call(args);
        };
        // A large batch runs as chunks of rows: the functions of the chunks' shapes,
        // traced on first use (internal traces, not counted in `tracing_count`).
        let mut keys = Vec::new();
        for chunk in ferroflow_core::row_chunks::chunks_of(args, &sizes)? {
            let k = cache_key(&chunk);
            if !self.cache.contains_key(&k) {
                match ConcreteFunction::trace(&self.name, &mut self.f, &chunk, self.level) {
                    Ok((f, _)) => {
                        self.cache.insert(k.clone(), f);
                    }
                    // A closure that only runs at its batch size: the batch runs whole.
                    Err(_) => {
                        let cf = self
                            .cache
                            .get(&key)
                            .ok_or_else(|| Error::invalid("function", "no concrete function"))?;
                        cf.refuse_row_chunks();
                        return cf.call(args);
                    }
                }
            }
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let functions: Vec<&ConcreteFunction> =
            keys.iter().filter_map(|k| self.cache.get(k)).collect();
        match self.cache.get(&key) {
            Some(cf) => cf.call_in_chunks(args, &sizes, &functions),
            None => Err(Error::invalid("function", "no concrete function")),
        }
    }

    /// Runs the closure itself, op by op, without tracing or the cache (what
    /// `tf.config.run_functions_eagerly(True)` does).
    pub fn call_eagerly(&mut self, args: &[Tensor]) -> Result<Vec<Tensor>> {
        if let Some(specs) = &self.signature {
            check(&self.name, specs, args)?;
        }
        (self.f)(args)
    }

    /// The concrete function for `args`' signature, tracing (and so running the closure
    /// once) if there is none yet.
    pub fn concrete_function(&mut self, args: &[Tensor]) -> Result<&ConcreteFunction> {
        let key = cache_key(args);
        if !self.cache.contains_key(&key) {
            self.call(args)?;
        }
        self.cache
            .get(&key)
            .ok_or_else(|| Error::invalid("function", "no concrete function"))
    }
}
