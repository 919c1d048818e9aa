//! [`Model`]: the trainable, savable handle around a network (Sequential, Functional or
//! subclassed), holding the compile state (optimizer, losses, metrics).

use super::functional::Functional;
use super::network::{summary_string, Network};
use super::sequential::{IntoLayerRef, Sequential};
use super::subclass::Subclassed;
use super::symbolic::KerasTensor;
use crate::layer::{Layer, LayerExt, LayerRef, TensorSpec, Weight};
use crate::losses::{self, Loss};
use crate::optimizers::Optimizer;
use ferroflow_core::autodiff::pause_recording;
use ferroflow_core::{Error, Result, Tensor, Variable};
use ferroflow_graph::ConcreteFunction;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What `compile` keeps.
pub struct Compiled {
    /// The optimiser (its slots and iteration count persist across `fit` calls).
    pub optimizer: Optimizer,
    /// One loss per output (a single loss is applied to every output).
    pub losses: Vec<Arc<dyn Loss>>,
    /// Weights of the per-output losses.
    pub loss_weights: Option<Vec<f64>>,
    /// Metric names as given to `compile`.
    pub metrics: Vec<String>,
    /// Run `fit`'s train step op by op instead of as a compiled graph (`run_eagerly`).
    pub run_eagerly: bool,
    /// Compiled train and test steps, one per argument signature and trainable-variable set.
    pub(crate) step_functions: StepCache,
    /// The strategy the model was compiled under (`strategy.scope()`), if any.
    pub(crate) replicas: Option<Arc<dyn crate::distribution::Replicas>>,
    /// How each compiled gradient step lays out its gradients among its results.
    pub(crate) gradient_layouts: GradientLayouts,
}

/// How each compiled gradient step lays out its results.
pub(crate) type GradientLayouts = Arc<Mutex<HashMap<StepKey, GradientLayout>>>;

/// The results of a compiled gradient step after its losses and outputs: for each
/// variable, no gradient, a dense one (one result) or a sparse one (indices and values,
/// two results) with its dense shape; then one new value per layer-state update
/// (BatchNormalization's moving statistics), for the strategy to combine.
#[derive(Clone, Debug, Default)]
pub(crate) struct GradientLayout {
    pub(crate) grads: Vec<GradientSlot>,
    pub(crate) state: Vec<Variable>,
}

/// Where one variable's gradient sits among a compiled gradient step's results.
#[derive(Clone, Debug)]
pub(crate) enum GradientSlot {
    /// The variable got no gradient.
    Missing,
    /// One dense tensor.
    Dense,
    /// Indices and values of the rows of a tensor of this shape.
    Sparse(Vec<usize>),
}

/// Compiled steps by what they are specialised on (shared, so a step can be traced while
/// the model is borrowed).
pub(crate) type StepCache = Arc<Mutex<HashMap<StepKey, Arc<ConcreteFunction>>>>;

/// Which step a compiled function runs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StepKind {
    Train,
    Test,
    /// One replica's share of a distributed train step: forward, loss and gradients.
    Gradients,
    /// [`StepKind::Gradients`] summing gradients over the workers during the backward pass.
    GradientsOverlapped,
    /// The optimiser update (and constraints) from given gradients.
    Apply,
}

/// What a compiled step is specialised on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct StepKey {
    pub(crate) kind: StepKind,
    pub(crate) args: Vec<(Vec<usize>, ferroflow_core::DType)>,
    pub(crate) split: (usize, usize, bool),
    pub(crate) vars: Vec<ferroflow_core::autodiff::VariableId>,
}

/// An optimiser as `compile` accepts it: a Keras name or a configured [`Optimizer`].
pub enum OptimizerArg {
    /// `"adam"`, `"sgd"`...
    Name(String),
    /// A configured optimiser.
    Value(Optimizer),
}

impl From<&str> for OptimizerArg {
    fn from(s: &str) -> Self {
        OptimizerArg::Name(s.to_string())
    }
}

impl From<Optimizer> for OptimizerArg {
    fn from(o: Optimizer) -> Self {
        OptimizerArg::Value(o)
    }
}

/// Losses as `compile` accepts them: names, loss objects, one per output or one for all.
pub struct LossArg(pub Vec<Arc<dyn Loss>>, Option<String>);

impl From<&str> for LossArg {
    fn from(s: &str) -> Self {
        match losses::get(s) {
            Ok(l) => LossArg(vec![l], None),
            Err(e) => LossArg(Vec::new(), Some(e.to_string())),
        }
    }
}

impl<L: Loss + 'static> From<L> for LossArg {
    fn from(l: L) -> Self {
        LossArg(vec![Arc::new(l)], None)
    }
}

impl From<Vec<Arc<dyn Loss>>> for LossArg {
    fn from(v: Vec<Arc<dyn Loss>>) -> Self {
        LossArg(v, None)
    }
}

impl From<&[&str]> for LossArg {
    fn from(v: &[&str]) -> Self {
        let mut out = Vec::new();
        for s in v {
            match losses::get(s) {
                Ok(l) => out.push(l),
                Err(e) => return LossArg(Vec::new(), Some(e.to_string())),
            }
        }
        LossArg(out, None)
    }
}

/// A Keras model.
pub struct Model {
    pub(crate) net: Arc<dyn Network>,
    pub(crate) compiled: Option<Compiled>,
    /// Set (by a callback) to end `fit` after the current epoch.
    pub stop_training: bool,
    /// Compiled inference steps (`predict_function`), per batch signature and weight set.
    predict_functions: Mutex<HashMap<PredictKey, Arc<ConcreteFunction>>>,
}

/// What a compiled inference step is specialised on: argument shapes and dtypes, and the
/// model's weights (adding a layer changes them).
type PredictKey = (
    Vec<(Vec<usize>, ferroflow_core::DType)>,
    Vec<ferroflow_core::autodiff::VariableId>,
);

/// Builds a Sequential [`Model`] from layers: `sequential![Input::new(&[64]), Dense::new(10)]`.
#[macro_export]
macro_rules! sequential {
    ($($layer:expr),* $(,)?) => {{
        let model = $crate::models::Model::sequential(None);
        (|| -> $crate::Result<$crate::models::Model> {
            $( model.add($layer)?; )*
            Ok(model)
        })()
    }};
}

impl Model {
    /// A functional model from `Input` tensors to output tensors (`keras.Model(inputs, outputs)`).
    pub fn new(inputs: &[KerasTensor], outputs: &[KerasTensor]) -> Result<Model> {
        Ok(Self::from_network(Arc::new(Functional::new(
            inputs, outputs, None,
        )?)))
    }

    /// A named functional model.
    pub fn named(inputs: &[KerasTensor], outputs: &[KerasTensor], name: &str) -> Result<Model> {
        Ok(Self::from_network(Arc::new(Functional::new(
            inputs,
            outputs,
            Some(name),
        )?)))
    }

    /// An empty Sequential model; add layers with [`Model::add`].
    pub fn sequential(name: Option<&str>) -> Model {
        Self::from_network(Arc::new(Sequential::new(name)))
    }

    /// A model around a user-defined layer (subclass-style model).
    pub fn from_layer(layer: impl Layer + 'static) -> Model {
        Self::from_network(Arc::new(Subclassed::new(layer)))
    }

    /// A model around any network.
    pub fn from_network(net: Arc<dyn Network>) -> Model {
        Model {
            net,
            compiled: None,
            stop_training: false,
            predict_functions: Mutex::new(HashMap::new()),
        }
    }

    /// The model in inference mode on one batch, as a compiled function per signature
    /// (eager when the model runs eagerly).
    pub(crate) fn predict_step(&self, x: &[Tensor]) -> Result<Vec<Tensor>> {
        if self.compiled.as_ref().is_some_and(|c| c.run_eagerly) {
            return self.call(x, false);
        }
        let (cf, traced_outputs) = self.predict_function(x)?;
        if let Some(outputs) = traced_outputs {
            return Ok(outputs);
        }
        let Some(sizes) = cf.row_chunks(x) else {
            return cf.call(x);
        };
        // A batch too large for the caches runs as chunks of rows, each through the
        // function of its own shape.
        let mut functions: Vec<Arc<ConcreteFunction>> = Vec::new();
        for chunk in ferroflow_core::row_chunks::chunks_of(x, &sizes)? {
            let rows = chunk.first().and_then(|t| t.shape().first()).copied();
            if functions.iter().any(|f| f.input_rows() == rows) {
                continue;
            }
            match self.predict_function(&chunk) {
                Ok((f, _)) => functions.push(f),
                // A model that only runs at its batch size: the batch runs whole.
                Err(_) => {
                    cf.refuse_row_chunks();
                    return cf.call(x);
                }
            }
        }
        let refs: Vec<&ConcreteFunction> = functions.iter().map(|f| &**f).collect();
        cf.call_in_chunks(x, &sizes, &refs)
    }

    /// The compiled predict function for `x`'s shapes, and the outputs on `x` when it
    /// had to be traced now (tracing runs the model once).
    fn predict_function(
        &self,
        x: &[Tensor],
    ) -> Result<(Arc<ConcreteFunction>, Option<Vec<Tensor>>)> {
        let key: PredictKey = (
            x.iter().map(|t| (t.shape().to_vec(), t.dtype())).collect(),
            self.net.weights().iter().map(|w| w.variable.id()).collect(),
        );
        let cached = self
            .predict_functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(cf) = cached {
            return Ok((cf, None));
        }
        let (cf, out) = ConcreteFunction::trace(
            "predict_function",
            |a: &[Tensor]| self.call(a, false),
            x,
            ferroflow_graph::OptLevel::Full,
        )?;
        let cf = Arc::new(cf);
        self.predict_functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, cf.clone());
        Ok((cf, Some(out)))
    }

    /// Appends a layer to a Sequential model.
    pub fn add(&self, layer: impl IntoLayerRef) -> Result<()> {
        let seq = self
            .as_sequential()
            .ok_or_else(|| Error::invalid("Model", "add() works on Sequential models only"))?;
        seq.add(layer)
    }

    fn as_sequential(&self) -> Option<&Sequential> {
        let any: &dyn std::any::Any = self.net.as_any();
        any.downcast_ref::<Sequential>()
    }

    /// The network.
    pub fn network(&self) -> &Arc<dyn Network> {
        &self.net
    }

    /// The model as a layer, to nest it in another model (shares weights).
    pub fn as_layer(&self) -> LayerRef {
        self.net.clone()
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        self.net.name()
    }

    /// The top-level layers.
    pub fn layers(&self) -> Vec<LayerRef> {
        self.net.sublayers()
    }

    /// A top-level layer by name.
    pub fn get_layer(&self, name: &str) -> Result<LayerRef> {
        self.layers()
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| {
                Error::invalid(
                    "Model",
                    format!("no layer named '{name}' in model '{}'", self.name()),
                )
            })
    }

    /// The summary table, as Keras prints it.
    pub fn summary(&self) -> String {
        summary_string(self.net.as_ref())
    }

    /// Builds a model whose input shape is not known yet (`model.build(input_shape)`).
    pub fn build(&self, input: TensorSpec) -> Result<()> {
        self.net.ensure_built(&[input])
    }

    /// The input specs, when known.
    pub fn input_specs(&self) -> Option<Vec<TensorSpec>> {
        self.net.input_specs()
    }

    /// The input names (the InputLayers' names), in order.
    pub fn input_names(&self) -> Vec<String> {
        self.net.input_names()
    }

    /// The output names (the producing layers' names), in order.
    pub fn output_names(&self) -> Vec<String> {
        self.net.output_names()
    }

    /// Runs the model on tensors (`model(x, training=...)`).
    pub fn call(&self, inputs: &[Tensor], training: bool) -> Result<Vec<Tensor>> {
        self.net.forward(inputs, training)
    }

    /// All weights: trainable first, in layer order (Keras's `model.weights` order differs
    /// only for layers mixing both kinds).
    pub fn weights(&self) -> Vec<Weight> {
        self.net.weights()
    }

    /// The variables the optimiser updates.
    pub fn trainable_variables(&self) -> Vec<Variable> {
        self.net.trainable_variables()
    }

    /// The variables it does not.
    pub fn non_trainable_variables(&self) -> Vec<Variable> {
        self.net.non_trainable_variables()
    }

    /// Number of scalars in all weights.
    pub fn count_params(&self) -> usize {
        self.net.count_params()
    }

    /// Copies of all weight values (`get_weights()`).
    pub fn get_weights(&self) -> Vec<Tensor> {
        self.weights()
            .iter()
            .map(|w| w.variable.read_untracked())
            .collect()
    }

    /// Sets all weights (`set_weights()`); every shape is checked before any changes.
    pub fn set_weights(&self, values: &[Tensor]) -> Result<()> {
        let weights = self.weights();
        if values.len() != weights.len() {
            return Err(Error::invalid(
                "set_weights",
                format!(
                    "model '{}' has {} weights, got {} values",
                    self.name(),
                    weights.len(),
                    values.len()
                ),
            ));
        }
        for (w, v) in weights.iter().zip(values) {
            if w.variable.shape() != v.shape() {
                return Err(Error::invalid(
                    "set_weights",
                    format!(
                        "weight '{}' has shape {:?}, got {:?}",
                        w.variable.name(),
                        w.variable.shape(),
                        v.shape()
                    ),
                ));
            }
        }
        let _pause = pause_recording();
        for (w, v) in weights.iter().zip(values) {
            let v = if v.dtype() == w.variable.dtype() {
                v.clone()
            } else {
                v.cast(w.variable.dtype())?
            };
            w.variable.assign(&v)?;
        }
        Ok(())
    }

    /// Configures training (`model.compile(optimizer, loss, metrics)`).
    pub fn compile(
        &mut self,
        optimizer: impl Into<OptimizerArg>,
        loss: impl Into<LossArg>,
        metrics: &[&str],
    ) -> Result<()> {
        let optimizer = match optimizer.into() {
            OptimizerArg::Name(n) => Optimizer::from_name(&n)?,
            OptimizerArg::Value(o) => o,
        };
        let LossArg(losses, err) = loss.into();
        if let Some(e) = err {
            return Err(Error::invalid("compile", e));
        }
        if losses.is_empty() {
            return Err(Error::invalid("compile", "a loss is required"));
        }
        for m in metrics {
            crate::metrics::get(m)?;
        }
        self.compiled = Some(Compiled {
            optimizer,
            losses,
            loss_weights: None,
            metrics: metrics.iter().map(|s| s.to_string()).collect(),
            run_eagerly: false,
            step_functions: StepCache::default(),
            replicas: crate::distribution::current(),
            gradient_layouts: GradientLayouts::default(),
        });
        Ok(())
    }

    /// `model.run_eagerly = true`: `fit` runs its train step op by op (for debugging)
    /// instead of as a compiled graph. Call after `compile`.
    pub fn set_run_eagerly(&mut self, eager: bool) -> Result<()> {
        let name = self.name().to_string();
        let c = self.compiled.as_mut().ok_or_else(|| {
            Error::invalid(
                "Model",
                format!("model '{name}' must be compiled before set_run_eagerly"),
            )
        })?;
        c.run_eagerly = eager;
        Ok(())
    }

    /// Weights the per-output losses (`loss_weights=`).
    pub fn set_loss_weights(&mut self, weights: Vec<f64>) -> Result<()> {
        let c = self
            .compiled
            .as_mut()
            .ok_or_else(|| Error::invalid("Model", "compile the model first"))?;
        c.loss_weights = Some(weights);
        Ok(())
    }

    /// The optimiser, once compiled.
    pub fn optimizer(&self) -> Option<&Optimizer> {
        self.compiled.as_ref().map(|c| &c.optimizer)
    }

    /// The optimiser, mutably (callbacks change the learning rate through it).
    pub fn optimizer_mut(&mut self) -> Option<&mut Optimizer> {
        self.compiled.as_mut().map(|c| &mut c.optimizer)
    }

    /// Predictions for `x` in batches (`model.predict(x, batch_size)`), one tensor per output.
    pub fn predict(
        &self,
        x: impl Into<crate::training::data::Arrays>,
        batch_size: usize,
    ) -> Result<Vec<Tensor>> {
        let x = &x.into().0[..];
        let n = crate::training::data::num_samples(x)?;
        let bs = batch_size.max(1);
        let batches = (0..n.div_ceil(bs))
            .map(|i| crate::training::data::slice_rows(x, i * bs, ((i + 1) * bs).min(n)));
        match self.predict_batches(batches)? {
            Some(out) => Ok(out),
            // No samples: run the model once on the empty arrays for correctly shaped outputs.
            None => {
                let _pause = pause_recording();
                self.call(x, false)
            }
        }
    }

    /// Runs the model on each batch of inputs and concatenates the outputs per output;
    /// `None` when there were no batches.
    pub(crate) fn predict_batches(
        &self,
        batches: impl Iterator<Item = Result<Vec<Tensor>>>,
    ) -> Result<Option<Vec<Tensor>>> {
        let _pause = pause_recording();
        let mut parts: Vec<Vec<Tensor>> = Vec::new();
        for xb in batches {
            let xb = xb?;
            let out = match self.replicated() {
                Some(r) => self.predict_step_replicated(&r, &xb)?,
                None => self.predict_step(&xb)?,
            };
            if parts.is_empty() {
                parts = vec![Vec::new(); out.len()];
            }
            for (p, o) in parts.iter_mut().zip(out) {
                p.push(o);
            }
        }
        if parts.is_empty() {
            return Ok(None);
        }
        parts
            .into_iter()
            .map(|mut p| match p.len() {
                // One batch (a serving request): its outputs as they are, not copied.
                1 => Ok(p.remove(0)),
                _ => Tensor::concat(&p, 0),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}
