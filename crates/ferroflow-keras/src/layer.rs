//! The [`Layer`] trait, the state every layer shares ([`LayerBase`]) and shared handles
//! ([`LayerRef`]).
//!
//! As in Keras, a layer creates its weights lazily from the first input shapes it sees
//! (`build`), is called on tensors (`call`), reports its config in Keras's `get_config`
//! shape, and can be frozen (`trainable = false`) or shared between several call sites.

use crate::config::{dtype_policy, Map};
use crate::constraints::Constraint;
use crate::initializers::Initializer;
use crate::regularizers::Regularizer;
use ferroflow_core::{DType, Error, Result, Tensor, Variable};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

thread_local! {
    /// Bytes of weights layers built on this thread may still create, while a model is
    /// rebuilt from a file's config (`None`: no limit).
    static WEIGHT_ALLOWANCE: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Runs `build` (rebuilding a model from the config of `file`, whose weights take
/// `weight_bytes`) with the weights its layers create limited to what such a file can
/// hold: a config that claims a terabyte-sized layer is an error before anything of that
/// size is allocated. Weights are stored uncompressed by Keras and ferroflow; the limit
/// leaves room for HDF5's compression filters (8x) and 16 MiB besides.
pub fn with_weight_allowance<T>(weight_bytes: u64, build: impl FnOnce() -> Result<T>) -> Result<T> {
    let allowance = weight_bytes.saturating_mul(8).saturating_add(16 << 20);
    let before = WEIGHT_ALLOWANCE.with(|a| a.replace(Some(allowance)));
    let out = build();
    WEIGHT_ALLOWANCE.with(|a| a.set(before));
    out
}

/// Takes the bytes of a new weight from the allowance, if one is set.
fn charge_weight(layer: &str, name: &str, shape: &[usize], dtype: DType) -> Result<()> {
    WEIGHT_ALLOWANCE.with(|a| {
        let Some(left) = a.get() else {
            return Ok(());
        };
        let bytes = shape
            .iter()
            .try_fold(dtype.size_in_bytes() as u64, |n, &d| n.checked_mul(d as u64));
        match bytes.and_then(|b| left.checked_sub(b)) {
            Some(rest) => {
                a.set(Some(rest));
                Ok(())
            }
            None => Err(Error::invalid(
                "load_model",
                format!(
                    "layer '{layer}' asks for a weight '{name}' of shape {shape:?}, more than the model file's weights can hold (the config and the weights do not match, or the file is corrupt)"
                ),
            )),
        }
    })
}

/// A static shape with unknown dimensions (`None`), like Keras's `(None, 28, 28, 1)`.
pub type Dims = Vec<Option<usize>>;

/// The shape and dtype of a tensor a layer will receive or produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Dimensions; the batch dimension is usually `None`.
    pub shape: Dims,
    /// Element type.
    pub dtype: DType,
}

impl TensorSpec {
    /// A spec from dims and dtype.
    pub fn new(shape: Dims, dtype: DType) -> Self {
        TensorSpec { shape, dtype }
    }

    /// The spec of a concrete tensor, with its first dimension (the batch) unknown.
    pub fn of_batch(t: &Tensor) -> Self {
        let mut shape: Dims = t.shape().iter().map(|&d| Some(d)).collect();
        if let Some(first) = shape.first_mut() {
            *first = None;
        }
        TensorSpec::new(shape, t.dtype())
    }
}

/// Formats dims like Keras: `(None, 28, 28, 1)`.
pub fn format_dims(d: &[Option<usize>]) -> String {
    let parts: Vec<String> = d
        .iter()
        .map(|x| x.map_or("None".to_string(), |v| v.to_string()))
        .collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

/// One weight of a layer with its regularizer and constraint.
#[derive(Clone)]
pub struct Weight {
    /// The variable (its name is the weight's path, `dense/kernel`).
    pub variable: Variable,
    /// Whether the optimiser updates it (`False` for BatchNorm's moving statistics).
    pub trainable: bool,
    /// Penalty added to the loss.
    pub regularizer: Option<Regularizer>,
    /// Projection applied after each optimiser step.
    pub constraint: Option<Constraint>,
}

/// The state every layer carries: name, trainable flag, weights, build status.
pub struct LayerBase {
    name: String,
    trainable: AtomicBool,
    weights: RwLock<Vec<Weight>>,
    built: OnceLock<Vec<TensorSpec>>,
    build_lock: Mutex<()>,
    nodes: AtomicUsize,
    /// The first invalid option a builder method was given (an unknown activation name):
    /// building the layer reports it, so builders can keep returning `Self`.
    invalid: Option<String>,
}

static NAME_COUNTS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

/// A fresh unique name from a prefix: `dense`, then `dense_1`, `dense_2`...
pub fn unique_name(prefix: &str) -> String {
    let mut guard = NAME_COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let counts = guard.get_or_insert_with(HashMap::new);
    let n = counts.entry(prefix.to_string()).or_insert(0);
    let name = if *n == 0 {
        prefix.to_string()
    } else {
        format!("{prefix}_{n}")
    };
    *n += 1;
    name
}

/// Forgets the names handed out so far (`keras.backend.clear_session()`).
pub fn clear_session() {
    let mut guard = NAME_COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    *guard = None;
}

/// Gives back a generated name if it was the last one handed out for its prefix, so that
/// `Dense::new(4).name("head")` does not use up `dense`.
fn release_name(name: &str) {
    let mut guard = NAME_COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let counts = guard.get_or_insert_with(HashMap::new);
    let (prefix, idx) = match name.rsplit_once('_') {
        Some((p, n)) if n.parse::<usize>().is_ok() && counts.contains_key(p) => {
            (p.to_string(), n.parse::<usize>().unwrap_or(0))
        }
        _ => (name.to_string(), 0),
    };
    if let Some(c) = counts.get_mut(&prefix) {
        if *c == idx + 1 {
            *c = idx;
        }
    }
}

/// Marks a user-chosen name as taken so generated names do not collide with it.
fn reserve_name(name: &str) {
    let mut guard = NAME_COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let counts = guard.get_or_insert_with(HashMap::new);
    let (prefix, idx) = match name.rsplit_once('_') {
        Some((p, n)) if n.parse::<usize>().is_ok() => (p, n.parse::<usize>().unwrap_or(0)),
        _ => (name, 0),
    };
    let e = counts.entry(prefix.to_string()).or_insert(0);
    *e = (*e).max(idx + 1);
}

/// `Conv2D` -> `conv2d`, `GlobalAveragePooling1D` -> `global_average_pooling1d`.
pub fn snake_case(class: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = class.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower = i > 0 && (chars[i - 1].is_ascii_lowercase());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl LayerBase {
    /// State for a layer of class `class`, named `name` or a unique name from the class.
    pub fn new(class: &str, name: Option<&str>) -> Self {
        let name = match name {
            Some(n) => {
                reserve_name(n);
                n.to_string()
            }
            None => unique_name(&snake_case(class)),
        };
        LayerBase {
            name,
            trainable: AtomicBool::new(true),
            weights: RwLock::new(Vec::new()),
            built: OnceLock::new(),
            build_lock: Mutex::new(()),
            nodes: AtomicUsize::new(0),
            invalid: None,
        }
    }

    /// The error for a layer used before it was built (its weights do not exist yet).
    pub fn not_built(&self) -> Error {
        Error::invalid(
            "Layer",
            format!(
                "layer '{}' is called before it was built: call it through apply, forward or a model",
                self.name
            ),
        )
    }

    /// Records an invalid option given to a builder method; the layer then fails to
    /// build (and so to be added, applied or called) with `msg`. The first one is kept.
    pub fn reject_option(&mut self, msg: impl Into<String>) {
        self.invalid.get_or_insert_with(|| msg.into());
    }

    /// State for a layer rebuilt from a config: its name (or a generated one) and its
    /// trainable flag.
    pub fn from_reader(class: &str, r: &crate::config::ConfigReader) -> Self {
        let base = LayerBase::new(class, r.name().as_deref());
        base.set_trainable(r.trainable());
        base
    }

    /// Renames the layer (a builder's `.name(...)`), giving back the generated name.
    pub fn set_name(&mut self, name: &str) {
        release_name(&self.name);
        reserve_name(name);
        self.name = name.to_string();
    }

    /// The layer's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the layer's weights are trained.
    pub fn trainable(&self) -> bool {
        self.trainable.load(Ordering::Relaxed)
    }

    /// Freezes (`false`) or unfreezes the layer.
    pub fn set_trainable(&self, on: bool) {
        self.trainable.store(on, Ordering::Relaxed);
    }

    /// The input specs the layer was built with, if built.
    pub fn built_specs(&self) -> Option<&[TensorSpec]> {
        self.built.get().map(Vec::as_slice)
    }

    /// Creates and registers a weight named `{layer}/{name}` (`add_weight`).
    pub fn add_weight(
        &self,
        name: &str,
        shape: &[usize],
        initializer: &Initializer,
        trainable: bool,
        regularizer: Option<Regularizer>,
        constraint: Option<Constraint>,
    ) -> Result<Variable> {
        self.add_weight_of(
            name,
            shape,
            DType::F32,
            initializer,
            trainable,
            regularizer,
            constraint,
        )
    }

    /// [`LayerBase::add_weight`] with a dtype other than float32 (counters).
    #[allow(clippy::too_many_arguments)]
    pub fn add_weight_of(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        initializer: &Initializer,
        trainable: bool,
        regularizer: Option<Regularizer>,
        constraint: Option<Constraint>,
    ) -> Result<Variable> {
        charge_weight(&self.name, name, shape, dtype)?;
        let value = initializer.init(shape, dtype)?;
        let variable = Variable::with_options(value, &format!("{}/{name}", self.name), trainable);
        self.weights
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Weight {
                variable: variable.clone(),
                trainable,
                regularizer,
                constraint,
            });
        Ok(variable)
    }

    /// The weights this layer created, in creation order.
    pub fn own_weights(&self) -> Vec<Weight> {
        self.weights
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts a new call site (node) and returns its index.
    pub fn next_node_index(&self) -> usize {
        self.nodes.fetch_add(1, Ordering::Relaxed)
    }

    /// The keys every layer's config starts with: name, trainable, dtype.
    pub fn base_config(&self) -> Map {
        let mut m = Map::new();
        m.insert("name".into(), Value::from(self.name.clone()));
        m.insert("trainable".into(), Value::from(self.trainable()));
        m.insert("dtype".into(), dtype_policy("float32"));
        m
    }
}

/// Per-call settings (`training=True/False`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CallContext {
    /// Training mode: dropout active, BatchNorm uses and updates batch statistics.
    pub training: bool,
}

/// A Keras layer.
///
/// Implementors provide `class_name`, `base`, `call` and `config`; `build` and
/// `compute_output_spec` where they have weights or change shapes.
pub trait Layer: Send + Sync {
    /// The Keras class name (`Dense`, `Conv2D`...).
    fn class_name(&self) -> &'static str;

    /// The shared layer state.
    fn base(&self) -> &LayerBase;

    /// Creates the weights for inputs of these specs. Called once, before the first call.
    fn build(&self, _inputs: &[TensorSpec]) -> Result<()> {
        Ok(())
    }

    /// Runs the layer.
    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>>;

    /// The specs of the outputs for inputs of these specs. The default runs the layer on
    /// zeros (unknown dims taken as 1) and marks the batch dimension unknown.
    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        probe_output_spec(self, inputs)
    }

    /// The layer-specific keys of `get_config()` (the base keys are added by
    /// [`LayerExt::get_config`]).
    fn config(&self) -> Map;

    /// Layers nested inside this one (models, wrappers), for weight collection and saving.
    fn sublayers(&self) -> Vec<LayerRef> {
        Vec::new()
    }

    /// Learns the layer's state from data (`layer.adapt(data)` of the preprocessing
    /// layers); layers without one say so.
    fn adapt(&self, _data: &Tensor) -> Result<()> {
        Err(ferroflow_core::Error::invalid(
            self.class_name(),
            format!("layer '{}' has no adapt", self.base().name()),
        ))
    }

    /// State Keras saves beside the layer's weights (its `save_own_variables`, such as a
    /// lookup's `idf_weights`): `(path under the layer's group, value)`, the path
    /// `vars/{name}` or, for state of a tracked inner layer, `{inner}/vars/{name}`.
    fn saved_state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Groups Keras writes under the layer's group even when they hold nothing (the
    /// `vars` of tracked inner layers).
    fn state_groups(&self) -> Vec<String> {
        Vec::new()
    }

    /// Restores one entry of [`Layer::saved_state`] read from a file.
    fn restore_state(&self, path: &str, _value: Tensor) -> Result<()> {
        Err(ferroflow_core::Error::invalid(
            self.class_name(),
            format!("layer '{}' keeps no state at '{path}'", self.base().name()),
        ))
    }

    /// Files Keras keeps in the layer's folder of a `.keras` archive's `assets` (its
    /// `save_assets`, such as a learned `vocabulary.txt`): `(path in the folder, bytes)`.
    fn assets(&self) -> Vec<(String, Vec<u8>)> {
        Vec::new()
    }

    /// Restores one file of [`Layer::assets`].
    fn restore_asset(&self, path: &str, _bytes: &[u8]) -> Result<()> {
        Err(ferroflow_core::Error::invalid(
            self.class_name(),
            format!("layer '{}' keeps no asset at '{path}'", self.base().name()),
        ))
    }

    /// Whether a call with several inputs passes them as separate positional arguments
    /// (`mha(query, value)`) rather than one list (`Add()([a, b])`), as Keras records
    /// them in a functional config.
    fn positional_inputs(&self) -> bool {
        false
    }

    /// The `build_config` Keras writes for a layer built on these input specs.
    fn build_config(&self, specs: &[TensorSpec]) -> serde_json::Value {
        let shape = if specs.len() == 1 {
            crate::config::dims_json(&specs[0].shape)
        } else {
            serde_json::Value::Array(
                specs
                    .iter()
                    .map(|s| crate::config::dims_json(&s.shape))
                    .collect(),
            )
        };
        serde_json::json!({ "input_shape": shape })
    }

    /// The layer as a model (Sequential, functional, subclassed), when it is one.
    fn as_network(&self) -> Option<&dyn crate::models::network::Network> {
        None
    }

    /// Whether `get_config` starts with the base keys (name, trainable, dtype); layers
    /// whose Keras config is written whole by their own `get_config` (`InputLayer`,
    /// `Discretization`) say no.
    fn includes_base_config(&self) -> bool {
        true
    }

    /// Whether the layer keeps its input's mask for the layers after it (Keras's
    /// `supports_masking`): its output has the same steps as its input.
    fn supports_masking(&self) -> bool {
        false
    }

    /// The mask of the layer's (first) output, from its inputs and their masks
    /// (`[batch, steps]` bool, true where a step holds data): by default the first input's
    /// mask when the layer [`Layer::supports_masking`], else none.
    fn compute_mask(&self, _inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        Ok(match self.supports_masking() {
            true => masks.first().cloned().flatten(),
            false => None,
        })
    }

    /// [`Layer::call`] with the inputs' masks, for layers that use them (pooling over
    /// steps, recurrent layers); others ignore them.
    fn call_masked(
        &self,
        inputs: &[Tensor],
        _masks: &[Option<Tensor>],
        ctx: CallContext,
    ) -> Result<Vec<Tensor>> {
        self.call(inputs, ctx)
    }

    /// Whether the layer computes on the host, outside the ops a traced `function`
    /// records (string processing, vocabulary lookups, index searches). Models then record
    /// its call as one op that calls the layer again on every run (see [`call_layer`]).
    fn runs_on_host(&self) -> bool {
        false
    }

    /// How many inputs the layer takes; `None` for any number (merge layers).
    fn number_of_inputs(&self) -> Option<usize> {
        Some(1)
    }

    /// The Python module Keras records for the class (`keras.layers`; operations called on
    /// symbolic tensors come from `keras.src.ops.numpy`).
    fn keras_module(&self) -> &'static str {
        "keras.layers"
    }

    /// The `args` of a call node in a functional config, given the call's tensors (as
    /// `__keras_tensor__` references); operations put their constants among them.
    fn node_args(&self, tensors: Vec<serde_json::Value>) -> serde_json::Value {
        if tensors.len() == 1 || self.positional_inputs() {
            serde_json::Value::Array(tensors)
        } else {
            serde_json::json!([tensors])
        }
    }

    /// The layer as an operation node (`x + 3.0`), when it is one.
    fn as_operation(&self) -> Option<&crate::layers::operation::Operation> {
        None
    }
}

/// Runs `layer` on zeros shaped like `inputs` to learn its output specs.
pub fn probe_output_spec<L: Layer + ?Sized>(
    layer: &L,
    inputs: &[TensorSpec],
) -> Result<Vec<TensorSpec>> {
    let zeros = inputs
        .iter()
        .map(|s| {
            let shape: Vec<usize> = s.shape.iter().map(|d| d.unwrap_or(1)).collect();
            Tensor::zeros(&shape, s.dtype)
        })
        .collect::<Result<Vec<_>>>()?;
    let _pause = ferroflow_core::autodiff::pause_recording();
    let outs = layer.call(&zeros, CallContext::default())?;
    let batch_unknown = inputs
        .first()
        .is_some_and(|s| s.shape.first() == Some(&None));
    Ok(outs
        .iter()
        .map(|t| {
            let mut spec = TensorSpec::new(t.shape().iter().map(|&d| Some(d)).collect(), t.dtype());
            if batch_unknown {
                if let Some(first) = spec.shape.first_mut() {
                    *first = None;
                }
            }
            spec
        })
        .collect())
}

/// A shared handle to a layer: clone it to use the same layer (and weights) twice.
pub type LayerRef = Arc<dyn Layer>;

/// Calls `layer` as a model calls its layers: a layer that [`Layer::runs_on_host`] is
/// recorded by a tracing `function` as one op that calls it again on each run's inputs
/// (so a compiled plan follows new inputs and a later `adapt`), not as the constants its
/// host computation would otherwise leave in the graph.
pub fn call_layer(layer: &LayerRef, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
    call_layer_masked(layer, inputs, &[], ctx).map(|(out, _)| out)
}

/// [`call_layer`] with the inputs' masks (Keras's masking: an `Embedding` with `mask_zero`
/// marks padding that pooling and recurrent layers then skip); returns the outputs and the
/// mask of the first output.
pub fn call_layer_masked(
    layer: &LayerRef,
    inputs: &[Tensor],
    masks: &[Option<Tensor>],
    ctx: CallContext,
) -> Result<(Vec<Tensor>, Option<Tensor>)> {
    // Host-side layers read no masks; they always go through the recorded path.
    let out = if masks.iter().any(Option::is_some) && !layer.runs_on_host() {
        layer.call_masked(inputs, masks, ctx)?
    } else {
        call_unmasked(layer, inputs, ctx)?
    };
    let mask = layer.compute_mask(inputs, masks)?;
    Ok((out, mask))
}

fn call_unmasked(layer: &LayerRef, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
    if !layer.runs_on_host() || !ferroflow_core::trace::is_tracing() {
        return layer.call(inputs, ctx);
    }
    let l = Arc::clone(layer);
    let attrs = || format!("{:p} training={}", Arc::as_ptr(layer), ctx.training);
    ferroflow_core::trace::opaque(layer.class_name(), attrs, inputs, move |x| l.call(x, ctx))
}

/// Wraps a layer into a [`LayerRef`].
pub fn layer_ref<L: Layer + 'static>(layer: L) -> LayerRef {
    Arc::new(layer)
}

/// Methods every layer gets: building on demand, eager calls, weights, config.
pub trait LayerExt {
    /// The layer's name.
    fn name(&self) -> &str;
    /// Builds the layer for these input specs unless it is already built.
    fn ensure_built(&self, inputs: &[TensorSpec]) -> Result<()>;
    /// Calls the layer eagerly on tensors, building it first if needed.
    fn forward(&self, inputs: &[Tensor], training: bool) -> Result<Vec<Tensor>>;
    /// Calls a single-input, single-output layer eagerly.
    fn forward1(&self, x: &Tensor, training: bool) -> Result<Tensor>;
    /// All weights, this layer's first, then its sublayers' (each variable once).
    fn weights(&self) -> Vec<Weight>;
    /// The trainable variables (none when the layer or a parent is frozen).
    fn trainable_variables(&self) -> Vec<Variable>;
    /// The non-trainable variables (frozen weights and statistics).
    fn non_trainable_variables(&self) -> Vec<Variable>;
    /// Number of scalars in all weights.
    fn count_params(&self) -> usize;
    /// Keras's `get_config()`: base keys plus the layer's own.
    fn get_config(&self) -> Map;
    /// Keras's `trainable` flag.
    fn trainable(&self) -> bool;
    /// Freezes or unfreezes the layer and its sublayers.
    fn set_trainable(&self, on: bool);
    /// Sum of weight regularisation penalties.
    fn regularization_loss(&self) -> Result<Option<Tensor>>;
}

impl<L: Layer + ?Sized> LayerExt for L {
    fn name(&self) -> &str {
        self.base().name()
    }

    fn ensure_built(&self, inputs: &[TensorSpec]) -> Result<()> {
        let base = self.base();
        if base.built.get().is_some() {
            return Ok(());
        }
        let _guard = base.build_lock.lock().unwrap_or_else(|e| e.into_inner());
        if base.built.get().is_some() {
            return Ok(());
        }
        if let Some(msg) = &base.invalid {
            return Err(Error::invalid(
                self.class_name(),
                format!("layer '{}': {msg}", base.name()),
            ));
        }
        if let Some(n) = self.number_of_inputs() {
            if inputs.len() != n {
                return Err(Error::invalid(
                    self.class_name(),
                    format!(
                        "layer '{}' expects {n} input(s), got {}",
                        base.name(),
                        inputs.len()
                    ),
                ));
            }
        }
        self.build(inputs)?;
        let _ = base.built.set(inputs.to_vec());
        Ok(())
    }

    fn forward(&self, inputs: &[Tensor], training: bool) -> Result<Vec<Tensor>> {
        if self.base().built.get().is_none() {
            let specs: Vec<TensorSpec> = inputs.iter().map(TensorSpec::of_batch).collect();
            self.ensure_built(&specs)?;
        }
        self.call(inputs, CallContext { training })
    }

    fn forward1(&self, x: &Tensor, training: bool) -> Result<Tensor> {
        let mut out = self.forward(std::slice::from_ref(x), training)?;
        if out.len() != 1 {
            return Err(Error::invalid(
                self.class_name(),
                format!(
                    "layer '{}' returned {} outputs, expected 1",
                    self.name(),
                    out.len()
                ),
            ));
        }
        Ok(out.remove(0))
    }

    fn weights(&self) -> Vec<Weight> {
        let mut all = self.base().own_weights();
        for sub in self.sublayers() {
            for w in sub.weights() {
                if !all.iter().any(|x| x.variable.same_as(&w.variable)) {
                    all.push(w);
                }
            }
        }
        all
    }

    fn trainable_variables(&self) -> Vec<Variable> {
        if !self.trainable() {
            return Vec::new();
        }
        let mut out: Vec<Variable> = self
            .base()
            .own_weights()
            .into_iter()
            .filter(|w| w.trainable)
            .map(|w| w.variable)
            .collect();
        for sub in self.sublayers() {
            for v in sub.trainable_variables() {
                if !out.iter().any(|x| x.same_as(&v)) {
                    out.push(v);
                }
            }
        }
        out
    }

    fn non_trainable_variables(&self) -> Vec<Variable> {
        let trainable = self.trainable_variables();
        self.weights()
            .into_iter()
            .map(|w| w.variable)
            .filter(|v| !trainable.iter().any(|t| t.same_as(v)))
            .collect()
    }

    fn count_params(&self) -> usize {
        self.weights()
            .iter()
            .map(|w| w.variable.shape().iter().product::<usize>())
            .sum()
    }

    fn get_config(&self) -> Map {
        let mut m = if self.includes_base_config() {
            self.base().base_config()
        } else {
            Map::new()
        };
        for (k, v) in self.config() {
            m.insert(k, v);
        }
        m
    }

    fn trainable(&self) -> bool {
        self.base().trainable()
    }

    fn set_trainable(&self, on: bool) {
        self.base().set_trainable(on);
        for sub in self.sublayers() {
            sub.set_trainable(on);
        }
    }

    fn regularization_loss(&self) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for w in self.weights() {
            if let Some(r) = &w.regularizer {
                let p = r.penalty(&w.variable.value())?;
                total = Some(match total {
                    Some(t) => t.add(&p)?,
                    None => p,
                });
            }
        }
        Ok(total)
    }
}

/// Error for a layer called with the wrong number of inputs.
pub fn expect_inputs(layer: &dyn Layer, inputs: &[Tensor], n: usize) -> Result<()> {
    if inputs.len() != n {
        return Err(Error::invalid(
            layer.class_name(),
            format!(
                "layer '{}' expects {n} input(s), got {}",
                layer.name(),
                inputs.len()
            ),
        ));
    }
    Ok(())
}

impl std::fmt::Debug for dyn Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} name={}>", self.class_name(), self.base().name())
    }
}
