//! `ferroflow.keras` natively: layers built from Keras configs by the layer registry,
//! symbolic tensors for the functional API, models with compile / fit / evaluate /
//! predict / save, losses and optimisers. The Python package gives them Keras's
//! signatures (`ferroflow/keras/`).

use crate::callbacks::{PyCallbackAdapter, PyErrSlot};
use crate::convert::{dtype_arg, to_numpy, to_tensor};
use crate::data::PyDataset;
use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use crate::variable::PyVariable;
use ferroflow_core::{DType, Error, Tensor};
use ferroflow_keras::layer::{LayerExt, LayerRef};
use ferroflow_keras::layers::registry;
use ferroflow_keras::losses::{self, Loss};
use ferroflow_keras::models::symbolic::{connect, Input, KerasTensor};
use ferroflow_keras::models::Model;
use ferroflow_keras::optimizers::Optimizer;
use ferroflow_keras::training::{FitOptions, Logs, Verbose as Verbosity};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::Arc;

/// A JSON value from a Python object (through the `json` module).
pub fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let s: String = obj
        .py()
        .import("json")?
        .call_method1("dumps", (obj,))?
        .extract()?;
    serde_json::from_str(&s).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A Python object from a JSON value.
pub fn from_json<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (v.to_string(),))
}

/// Runs `f` without the GIL. ferroflow's models are used from one thread at a time here
/// (the object is bound to the thread that made it), and `f` runs on this same thread, so
/// handing it non-`Send` references is sound.
pub fn without_gil<R>(py: Python<'_>, f: impl FnOnce() -> R) -> R {
    struct AssertSend<F>(F);
    // SAFETY: `detach` runs the closure on the calling thread; nothing crosses threads.
    unsafe impl<F> Send for AssertSend<F> {}
    let job = AssertSend(f);
    let out = py.detach(move || {
        let job = job;
        AssertSend((job.0)())
    });
    out.0
}

/// A Keras layer (any class the registry knows), built from its config.
#[pyclass(name = "Layer", module = "ferroflow._native", frozen, subclass)]
#[derive(Clone)]
pub struct PyLayer(pub LayerRef);

/// A symbolic tensor of the functional API (`keras.Input(...)` and layer outputs).
#[pyclass(name = "KerasTensor", module = "ferroflow._native", frozen)]
#[derive(Clone)]
pub struct PyKerasTensor(pub KerasTensor);

#[pymethods]
impl PyKerasTensor {
    /// The shape, `None` for unknown dimensions.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.0.shape().clone())
    }

    /// The element type.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::py_dtype(py, self.0.dtype())
    }

    /// The name of the layer that made it.
    #[getter]
    fn name(&self) -> String {
        self.0.layer().name().to_string()
    }

    fn __repr__(&self) -> String {
        let dims: Vec<String> = self
            .0
            .shape()
            .iter()
            .map(|d| d.map_or("None".to_string(), |d| d.to_string()))
            .collect();
        format!(
            "<KerasTensor shape=({}), dtype={}, name={}>",
            dims.join(", "),
            self.0.dtype(),
            self.0.layer().name()
        )
    }
}

/// `keras.Input(shape, batch_size, dtype, name)`.
#[pyfunction]
#[pyo3(signature = (shape, batch_size=None, dtype=None, name=None))]
pub fn input(
    shape: Vec<Option<usize>>,
    batch_size: Option<usize>,
    dtype: Option<&Bound<'_, PyAny>>,
    name: Option<&str>,
) -> PyResult<PyKerasTensor> {
    let d = dtype.map(dtype_arg).transpose()?.unwrap_or(DType::F32);
    // ferroflow's inputs take any batch size; a fixed one only checks less.
    let _ = batch_size;
    Ok(PyKerasTensor(Input::with(shape, d, name)))
}

/// A layer of Keras class `class_name` from its config dict (unknown options are errors).
#[pyfunction]
pub fn layer_from_config(class_name: &str, config: &Bound<'_, PyAny>) -> PyResult<PyLayer> {
    Ok(PyLayer(
        registry::from_config(class_name, &to_json(config)?).py()?,
    ))
}

fn weights_of(layer: &LayerRef) -> Vec<ferroflow_keras::layer::Weight> {
    layer.weights()
}

#[pymethods]
impl PyLayer {
    /// The layer's name.
    #[getter]
    fn name(&self) -> String {
        self.0.name().to_string()
    }

    /// The Keras class name.
    #[getter]
    fn class_name(&self) -> String {
        self.0.class_name().to_string()
    }

    /// Keras's config dict.
    fn get_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &serde_json::Value::Object(self.0.get_config()))
    }

    /// Calls the layer: on symbolic tensors it adds a node to the functional graph, on
    /// tensors it computes (building the layer on first use).
    #[pyo3(signature = (*inputs, training=false))]
    fn __call__(
        &self,
        py: Python<'_>,
        inputs: &Bound<'_, PyTuple>,
        training: bool,
    ) -> PyResult<Py<PyAny>> {
        let items: Vec<Bound<'_, PyAny>> = if inputs.len() == 1 {
            let a = inputs.get_item(0)?;
            if a.is_instance_of::<PyList>() || a.is_instance_of::<PyTuple>() {
                a.try_iter()?.collect::<PyResult<_>>()?
            } else {
                vec![a]
            }
        } else {
            inputs.iter().collect()
        };
        if items.iter().all(|i| i.is_instance_of::<PyKerasTensor>()) && !items.is_empty() {
            let kts: Vec<KerasTensor> = items
                .iter()
                .map(|i| i.cast::<PyKerasTensor>().map(|k| k.get().0.clone()))
                .collect::<Result<_, _>>()?;
            let outs = connect(self.0.clone(), &kts).py()?;
            return one_or_list(py, outs.into_iter().map(PyKerasTensor).collect());
        }
        let ts: Vec<Tensor> = items
            .iter()
            .map(|i| to_tensor(i, None))
            .collect::<PyResult<_>>()?;
        let outs = self.0.forward(&ts, training).py()?;
        one_or_list(py, outs.into_iter().map(PyTensor).collect())
    }

    /// The layer's variables (`layer.weights`).
    #[getter(weights)]
    fn weight_variables(&self) -> Vec<PyVariable> {
        weights_of(&self.0)
            .into_iter()
            .map(|w| PyVariable(w.variable))
            .collect()
    }

    /// The trainable variables.
    #[getter]
    fn trainable_weights(&self) -> Vec<PyVariable> {
        weights_of(&self.0)
            .into_iter()
            .filter(|w| w.variable.trainable())
            .map(|w| PyVariable(w.variable))
            .collect()
    }

    /// The weights as NumPy arrays.
    fn get_weights<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        weights_of(&self.0)
            .iter()
            .map(|w| to_numpy(py, &w.variable.read_untracked(), true))
            .collect()
    }

    /// Sets the weights from arrays in `weights` order.
    fn set_weights(&self, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let ws = weights_of(&self.0);
        let vals: Vec<Bound<'_, PyAny>> = values.try_iter()?.collect::<PyResult<_>>()?;
        if vals.len() != ws.len() {
            return Err(PyValueError::new_err(format!(
                "layer '{}' has {} weights, got {} arrays",
                self.0.name(),
                ws.len(),
                vals.len()
            )));
        }
        let ts: Vec<Tensor> = vals
            .iter()
            .zip(&ws)
            .map(|(v, w)| to_tensor(v, Some(w.variable.dtype())))
            .collect::<PyResult<_>>()?;
        for (t, w) in ts.iter().zip(&ws) {
            if t.shape() != w.variable.shape() {
                return Err(PyValueError::new_err(format!(
                    "layer '{}': weight '{}' has shape {:?}, got {:?}",
                    self.0.name(),
                    w.variable.name(),
                    w.variable.shape(),
                    t.shape()
                )));
            }
        }
        for (t, w) in ts.iter().zip(&ws) {
            w.variable.assign(t).py()?;
        }
        Ok(())
    }

    /// Whether the layer's weights train.
    #[getter]
    fn trainable(&self) -> bool {
        self.0.base().trainable()
    }

    #[setter]
    fn set_trainable(&self, on: bool) {
        self.0.set_trainable(on);
    }

    /// The number of scalars in the weights.
    fn count_params(&self) -> usize {
        weights_of(&self.0)
            .iter()
            .map(|w| w.variable.shape().iter().product::<usize>())
            .sum()
    }

    /// Creates a weight of the layer (`self.add_weight` in a Python subclass): `initializer`
    /// is a Keras initializer name or its serialised form.
    #[pyo3(signature = (name, shape, initializer, trainable=true))]
    fn add_weight(
        &self,
        name: &str,
        shape: Vec<usize>,
        initializer: &Bound<'_, PyAny>,
        trainable: bool,
    ) -> PyResult<PyVariable> {
        let init =
            ferroflow_keras::initializers::Initializer::from_json(&to_json(initializer)?).py()?;
        let v = self
            .0
            .base()
            .add_weight(name, &shape, &init, trainable, None, None)
            .py()?;
        Ok(PyVariable(v))
    }

    /// `layer.adapt(data)` for preprocessing layers (Normalization, StringLookup...).
    fn adapt(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let t = if let Ok(d) = data.cast::<PyDataset>() {
            let parts: Vec<Tensor> = d
                .get()
                .0
                .iter()
                .py()?
                .map(|e| e.and_then(|e| e.tensor().cloned()))
                .collect::<ferroflow_core::Result<_>>()
                .py()?;
            Tensor::concat(&parts, 0).py()?
        } else {
            to_tensor(data, None)?
        };
        self.0.adapt(&t).py()
    }

    fn __repr__(&self) -> String {
        format!("<{} name={}>", self.0.class_name(), self.0.name())
    }
}

fn one_or_list<T: pyo3::PyClass + Into<pyo3::PyClassInitializer<T>>>(
    py: Python<'_>,
    v: Vec<T>,
) -> PyResult<Py<PyAny>> {
    let mut objs: Vec<Py<PyAny>> = v
        .into_iter()
        .map(|x| Ok(Bound::new(py, x)?.into_any().unbind()))
        .collect::<PyResult<_>>()?;
    if objs.len() == 1 {
        return objs
            .pop()
            .ok_or_else(|| PyRuntimeError::new_err("no output"));
    }
    Ok(PyList::new(py, objs)?.into_any().unbind())
}

/// A Keras loss (`keras.losses.SparseCategoricalCrossentropy(from_logits=True)`): called
/// as `loss(y_true, y_pred, sample_weight=None)` it returns the reduced loss.
#[pyclass(name = "Loss", module = "ferroflow._native", frozen, subclass)]
#[derive(Clone)]
pub struct PyLoss(pub Arc<dyn Loss>);

/// A loss from its Keras class name and config.
#[pyfunction]
pub fn loss_from_config(class_name: &str, config: &Bound<'_, PyAny>) -> PyResult<PyLoss> {
    let v = serde_json::json!({"class_name": class_name, "config": to_json(config)?});
    Ok(PyLoss(losses::from_json(&v).py()?))
}

#[pymethods]
impl PyLoss {
    #[pyo3(signature = (y_true, y_pred, sample_weight=None))]
    fn __call__(
        &self,
        y_true: &Bound<'_, PyAny>,
        y_pred: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let yp = to_tensor(y_pred, None)?;
        let yt = to_tensor(y_true, None)?;
        let w = sample_weight
            .map(|w| to_tensor(w, Some(yp.dtype())))
            .transpose()?;
        Ok(PyTensor(self.0.compute(&yt, &yp, w.as_ref()).py()?))
    }

    /// Keras's function name (`"sparse_categorical_crossentropy"`).
    #[getter]
    fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Keras's config dict.
    fn get_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.0.config())
    }
}

/// An optimiser (`keras.optimizers.Adam(learning_rate=1e-3)`), with its slots.
#[pyclass(name = "Optimizer", module = "ferroflow._native", unsendable, subclass)]
pub struct PyOptimizer {
    pub(crate) inner: RefCell<Optimizer>,
    class: String,
}

/// An optimiser from its Keras class name and config.
#[pyfunction]
pub fn optimizer_from_config(class_name: &str, config: &Bound<'_, PyAny>) -> PyResult<PyOptimizer> {
    let o = Optimizer::from_config(class_name, &to_json(config)?).py()?;
    Ok(PyOptimizer {
        inner: RefCell::new(o),
        class: class_name.to_string(),
    })
}

#[pymethods]
impl PyOptimizer {
    /// `optimizer.apply_gradients(zip(grads, vars))`: `None` gradients are skipped.
    fn apply_gradients(&self, py: Python<'_>, grads_and_vars: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut grads = Vec::new();
        let mut vars = Vec::new();
        for pair in grads_and_vars.try_iter()? {
            let pair = pair?;
            let (g, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
            let v = v.cast::<PyVariable>().map_err(|_| {
                PyTypeError::new_err("apply_gradients takes (gradient, Variable) pairs")
            })?;
            grads.push(crate::autodiff::gradient_from_py(&g)?);
            vars.push(v.get().0.clone());
        }
        let mut o = self
            .inner
            .try_borrow_mut()
            .map_err(|_| PyRuntimeError::new_err("the optimizer is in use"))?;
        without_gil(py, || o.apply_gradients(&grads, &vars)).py()
    }

    /// The learning rate now.
    #[getter]
    fn learning_rate(&self) -> f64 {
        self.inner.borrow().learning_rate()
    }

    #[setter]
    fn set_learning_rate(&self, lr: f64) {
        self.inner.borrow_mut().set_learning_rate(lr);
    }

    /// Updates applied so far.
    #[getter]
    fn iterations(&self) -> u64 {
        self.inner.borrow().iterations()
    }

    /// Keras's config dict.
    fn get_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.inner.borrow().get_config())
    }

    /// The Keras class name.
    #[getter]
    fn class_name(&self) -> String {
        self.class.clone()
    }
}

/// A Keras model: Sequential, functional or loaded.
#[pyclass(name = "Model", module = "ferroflow._native", unsendable, subclass)]
pub struct PyModel {
    model: RefCell<Model>,
    /// The model `fit` is running, while a callback runs (so that callbacks can use it).
    in_fit: Cell<Option<*mut Model>>,
    /// `model.stop_training`, as a callback sets it.
    pub(crate) stop: Cell<bool>,
}

impl PyModel {
    pub fn new(model: Model) -> Self {
        PyModel {
            model: RefCell::new(model),
            in_fit: Cell::new(None),
            stop: Cell::new(false),
        }
    }

    /// Runs `f` on the model: the one `fit` lent to a callback, or this object's.
    pub fn with<R>(&self, f: impl FnOnce(&mut Model) -> PyResult<R>) -> PyResult<R> {
        if let Some(p) = self.in_fit.get() {
            // SAFETY: set only while `fit` (on this thread) is inside a callback hook and
            // does not touch the model; cleared before the hook returns.
            return f(unsafe { &mut *p });
        }
        let mut m = self.model.try_borrow_mut().map_err(|_| {
            PyRuntimeError::new_err("the model is busy (fit, evaluate or predict is running)")
        })?;
        f(&mut m)
    }

    /// Lends the model `fit` runs to callbacks for the duration of `f`.
    pub fn lend<R>(&self, model: &mut Model, f: impl FnOnce() -> R) -> R {
        self.in_fit.set(Some(model as *mut Model));
        let r = f();
        self.in_fit.set(None);
        r
    }
}

/// Arrays for `fit`/`predict`: one array, a list (model input order) or a dict keyed by
/// input (or output) names.
fn arrays(obj: &Bound<'_, PyAny>, names: &[String], what: &str) -> PyResult<Vec<Tensor>> {
    let cast = |o: &Bound<'_, PyAny>| -> PyResult<Tensor> {
        let t = to_tensor(o, None)?;
        // Keras feeds float64 NumPy data to float32 models.
        if t.dtype() == DType::F64 {
            t.cast(DType::F32).py()
        } else {
            Ok(t)
        }
    };
    if let Ok(d) = obj.cast::<PyDict>() {
        return names
            .iter()
            .map(|n| {
                let v = d.get_item(n)?.ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "no {what} named '{n}' in the dict (keys: {})",
                        d.keys()
                    ))
                })?;
                cast(&v)
            })
            .collect();
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        return obj.try_iter()?.map(|o| cast(&o?)).collect();
    }
    Ok(vec![cast(obj)?])
}

fn verbosity(v: &Bound<'_, PyAny>) -> PyResult<Verbosity> {
    if let Ok(s) = v.extract::<String>() {
        return match s.as_str() {
            "auto" => Ok(Verbosity::Bar),
            _ => Err(PyValueError::new_err(format!(
                "verbose must be 'auto', 0, 1 or 2, got '{s}'"
            ))),
        };
    }
    Ok(match v.extract::<u8>()? {
        0 => Verbosity::Silent,
        1 => Verbosity::Bar,
        _ => Verbosity::Line,
    })
}

fn logs_dict<'py>(py: Python<'py>, logs: &Logs) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in logs {
        d.set_item(k, v)?;
    }
    Ok(d)
}

#[pymethods]
impl PyModel {
    /// An empty Sequential model.
    #[staticmethod]
    #[pyo3(signature = (name=None))]
    fn sequential(name: Option<&str>) -> Self {
        PyModel::new(Model::sequential(name))
    }

    /// A functional model from inputs to outputs.
    #[staticmethod]
    #[pyo3(signature = (inputs, outputs, name=None))]
    fn functional(
        inputs: Vec<PyRef<'_, PyKerasTensor>>,
        outputs: Vec<PyRef<'_, PyKerasTensor>>,
        name: Option<&str>,
    ) -> PyResult<Self> {
        let i: Vec<KerasTensor> = inputs.iter().map(|k| k.0.clone()).collect();
        let o: Vec<KerasTensor> = outputs.iter().map(|k| k.0.clone()).collect();
        let m = match name {
            Some(n) => Model::named(&i, &o, n),
            None => Model::new(&i, &o),
        };
        Ok(PyModel::new(m.py()?))
    }

    /// Loads a model directory, `.keras` archive or legacy `.h5` file.
    #[staticmethod]
    fn load(path: &str) -> PyResult<Self> {
        Ok(PyModel::new(
            ferroflow_keras::saving::load_model(path).py()?,
        ))
    }

    /// Appends a layer (Sequential models).
    fn add(&self, layer: &Bound<'_, PyAny>) -> PyResult<()> {
        let l: LayerRef = if let Ok(k) = layer.cast::<PyKerasTensor>() {
            k.get().0.layer().clone()
        } else if let Ok(l) = layer.cast::<PyLayer>() {
            l.get().0.clone()
        } else if let Ok(m) = layer.cast::<PyModel>() {
            m.borrow().with(|m| Ok(m.as_layer()))?
        } else {
            return Err(PyTypeError::new_err(format!(
                "add() takes a layer, got {}",
                layer.get_type().name()?
            )));
        };
        self.with(|m| m.add(l).py())
    }

    /// The model's name.
    #[getter]
    fn name(&self) -> PyResult<String> {
        self.with(|m| Ok(m.name().to_string()))
    }

    /// The Keras class name (`Sequential`, `Functional`, a subclass's name).
    #[getter]
    fn class_name(&self) -> PyResult<String> {
        self.with(|m| Ok(m.as_layer().class_name().to_string()))
    }

    /// The layers, in order.
    #[getter]
    fn layers(&self) -> PyResult<Vec<PyLayer>> {
        self.with(|m| Ok(m.layers().into_iter().map(PyLayer).collect()))
    }

    /// The layer named `name`.
    fn get_layer(&self, name: &str) -> PyResult<PyLayer> {
        self.with(|m| Ok(PyLayer(m.get_layer(name).py()?)))
    }

    /// Input names, in order.
    #[getter]
    fn input_names(&self) -> PyResult<Vec<String>> {
        self.with(|m| Ok(m.input_names()))
    }

    /// Output names, in order.
    #[getter]
    fn output_names(&self) -> PyResult<Vec<String>> {
        self.with(|m| Ok(m.output_names()))
    }

    /// Keras's summary table.
    fn summary_text(&self) -> PyResult<String> {
        self.with(|m| Ok(m.summary()))
    }

    /// All variables.
    #[getter(weights)]
    fn weight_variables(&self) -> PyResult<Vec<PyVariable>> {
        self.with(|m| {
            Ok(m.weights()
                .into_iter()
                .map(|w| PyVariable(w.variable))
                .collect())
        })
    }

    /// The trainable variables.
    #[getter]
    fn trainable_variables(&self) -> PyResult<Vec<PyVariable>> {
        self.with(|m| {
            Ok(m.trainable_variables()
                .into_iter()
                .map(PyVariable)
                .collect())
        })
    }

    /// The non-trainable variables.
    #[getter]
    fn non_trainable_variables(&self) -> PyResult<Vec<PyVariable>> {
        self.with(|m| {
            Ok(m.non_trainable_variables()
                .into_iter()
                .map(PyVariable)
                .collect())
        })
    }

    /// Scalars in the weights.
    fn count_params(&self) -> PyResult<usize> {
        self.with(|m| Ok(m.count_params()))
    }

    /// The weights as NumPy arrays.
    fn get_weights<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let ts = self.with(|m| Ok(m.get_weights()))?;
        ts.iter().map(|t| to_numpy(py, t, true)).collect()
    }

    /// Sets the weights (the order of `get_weights`).
    fn set_weights(&self, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let ts: Vec<Tensor> = values
            .try_iter()?
            .map(|v| to_tensor(&v?, None))
            .collect::<PyResult<_>>()?;
        self.with(|m| m.set_weights(&ts).py())
    }

    /// Builds the model for inputs of this shape (batch dimension first, may be None).
    fn build(&self, input_shape: Vec<Option<usize>>) -> PyResult<()> {
        let spec = ferroflow_keras::layer::TensorSpec::new(input_shape, DType::F32);
        self.with(|m| m.build(spec).py())
    }

    /// `model.compile(optimizer, loss, metrics, loss_weights, run_eagerly)`.
    #[pyo3(signature = (optimizer, loss, metrics, loss_weights=None, run_eagerly=false))]
    fn compile(
        &self,
        optimizer: &Bound<'_, PyAny>,
        loss: Vec<PyRef<'_, PyLoss>>,
        metrics: Vec<String>,
        loss_weights: Option<Vec<f64>>,
        run_eagerly: bool,
    ) -> PyResult<()> {
        let opt = if let Ok(s) = optimizer.extract::<String>() {
            Optimizer::from_name(&s).py()?
        } else if let Ok(o) = optimizer.cast::<PyOptimizer>() {
            let o = o.borrow();
            let cfg = o.inner.borrow().get_config();
            Optimizer::from_config(&o.class, &cfg).py()?
        } else {
            return Err(PyTypeError::new_err(
                "optimizer must be a name or a keras.optimizers object",
            ));
        };
        let losses: Vec<Arc<dyn Loss>> = loss.iter().map(|l| l.0.clone()).collect();
        let names: Vec<&str> = metrics.iter().map(String::as_str).collect();
        self.with(|m| {
            m.compile(opt, losses, &names).py()?;
            if let Some(w) = loss_weights {
                m.set_loss_weights(w).py()?;
            }
            m.set_run_eagerly(run_eagerly).py()
        })
    }

    /// `model.fit`: `x` and `y` as arrays (or lists / dicts of them), or `x` a Dataset of
    /// `(x, y)` batches. Python callbacks are called from the training loop. Returns the
    /// per-epoch logs as `{name: [values]}` and the epochs run.
    #[pyo3(signature = (x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle, class_weight, sample_weight, initial_epoch, steps_per_epoch))]
    #[allow(clippy::too_many_arguments)]
    fn fit<'py>(
        slf: &Bound<'py, Self>,
        x: &Bound<'py, PyAny>,
        y: Option<&Bound<'py, PyAny>>,
        batch_size: Option<usize>,
        epochs: usize,
        verbose: &Bound<'py, PyAny>,
        callbacks: Vec<Bound<'py, PyAny>>,
        validation_split: f64,
        validation_data: Option<&Bound<'py, PyAny>>,
        shuffle: bool,
        class_weight: Option<std::collections::HashMap<usize, f64>>,
        sample_weight: Option<&Bound<'py, PyAny>>,
        initial_epoch: usize,
        steps_per_epoch: Option<usize>,
    ) -> PyResult<(Bound<'py, PyDict>, Vec<usize>)> {
        let py = slf.py();
        let me = slf.borrow();
        let (inputs, outputs) = me.with(|m| Ok((m.input_names(), m.output_names())))?;
        let errors = PyErrSlot::default();
        let mut opts = FitOptions::new()
            .epochs(epochs)
            .batch_size(batch_size.unwrap_or(32))
            .validation_split(validation_split)
            .shuffle(shuffle)
            .initial_epoch(initial_epoch)
            .verbose(verbosity(verbose)?);
        if let Some(s) = steps_per_epoch {
            opts = opts.steps_per_epoch(s);
        }
        if let Some(cw) = class_weight {
            opts = opts.class_weight(cw);
        }
        if let Some(w) = sample_weight {
            opts = opts.sample_weight(to_tensor(w, Some(DType::F32))?);
        }
        if let Some(v) = validation_data {
            if let Ok(d) = v.cast::<PyDataset>() {
                opts = opts.validation_dataset(d.get().0.clone());
            } else {
                let (vx, vy): (Bound<'_, PyAny>, Bound<'_, PyAny>) = match v.len()? {
                    2 => (v.get_item(0)?, v.get_item(1)?),
                    n => {
                        return Err(PyValueError::new_err(format!(
                            "validation_data is (x, y), got {n} items"
                        )))
                    }
                };
                opts = opts.validation_data(
                    arrays(&vx, &inputs, "input")?,
                    arrays(&vy, &outputs, "output")?,
                );
            }
        }
        for cb in callbacks {
            opts = opts.callback(PyCallbackAdapter::new(
                cb.unbind(),
                slf.clone().unbind(),
                errors.clone(),
            ));
        }
        me.stop.set(false);
        let data = x.cast::<PyDataset>().ok().map(|d| d.get().0.clone());
        let xs = match &data {
            Some(_) => Vec::new(),
            None => arrays(x, &inputs, "input")?,
        };
        let ys = match (&data, y) {
            (Some(_), _) => Vec::new(),
            (None, Some(y)) => arrays(y, &outputs, "output")?,
            (None, None) => return Err(PyValueError::new_err("fit needs y unless x is a Dataset")),
        };
        let mut model = me
            .model
            .try_borrow_mut()
            .map_err(|_| PyRuntimeError::new_err("the model is busy"))?;
        let r = without_gil(py, || match &data {
            Some(d) => model.fit_dataset(d, opts),
            None => model.fit(xs, ys, opts),
        });
        errors.take()?;
        let h = r.py()?;
        let d = PyDict::new(py);
        for (k, v) in &h.history {
            d.set_item(k, v.clone())?;
        }
        Ok((d, h.epoch))
    }

    /// `model.evaluate`: the logs (loss and metrics) over `x`, `y` or a Dataset.
    #[pyo3(signature = (x, y=None, batch_size=None))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: Option<&Bound<'py, PyAny>>,
        batch_size: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (inputs, outputs) = self.with(|m| Ok((m.input_names(), m.output_names())))?;
        let logs = if let Ok(d) = x.cast::<PyDataset>() {
            let d = d.get().0.clone();
            self.with(|m| without_gil(py, || m.evaluate_dataset(&d)).py())?
        } else {
            let y =
                y.ok_or_else(|| PyValueError::new_err("evaluate needs y unless x is a Dataset"))?;
            let xs = arrays(x, &inputs, "input")?;
            let ys = arrays(y, &outputs, "output")?;
            let bs = batch_size.unwrap_or(32);
            self.with(|m| without_gil(py, || m.evaluate(xs, ys, bs)).py())?
        };
        logs_dict(py, &logs)
    }

    /// `model.predict`: one array per output.
    #[pyo3(signature = (x, batch_size=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        batch_size: Option<usize>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let inputs = self.with(|m| Ok(m.input_names()))?;
        let outs = if let Ok(d) = x.cast::<PyDataset>() {
            let d = d.get().0.clone();
            self.with(|m| without_gil(py, || m.predict_dataset(&d)).py())?
        } else {
            let xs = arrays(x, &inputs, "input")?;
            let bs = batch_size.unwrap_or(32);
            self.with(|m| without_gil(py, || m.predict(xs, bs)).py())?
        };
        outs.iter().map(|t| to_numpy(py, t, false)).collect()
    }

    /// Calls the model on tensors (`model(x, training=False)`), recorded by tapes.
    #[pyo3(signature = (inputs, training=false))]
    fn call(&self, inputs: &Bound<'_, PyAny>, training: bool) -> PyResult<Vec<PyTensor>> {
        let ins = self.with(|m| Ok(m.input_names()))?;
        let xs: Vec<Tensor> = if let Ok(d) = inputs.cast::<PyDict>() {
            ins.iter()
                .map(|n| match d.get_item(n)? {
                    Some(v) => to_tensor(&v, None),
                    None => Err(PyValueError::new_err(format!("no input named '{n}'"))),
                })
                .collect::<PyResult<_>>()?
        } else if inputs.is_instance_of::<PyList>() || inputs.is_instance_of::<PyTuple>() {
            inputs
                .try_iter()?
                .map(|v| to_tensor(&v?, None))
                .collect::<PyResult<_>>()?
        } else {
            vec![to_tensor(inputs, None)?]
        };
        let xs: Vec<Tensor> = xs
            .into_iter()
            .map(|t| {
                if t.dtype() == DType::F64 {
                    t.cast(DType::F32)
                } else {
                    Ok(t)
                }
            })
            .collect::<ferroflow_core::Result<_>>()
            .py()?;
        self.with(|m| {
            Ok(m.call(&xs, training)
                .py()?
                .into_iter()
                .map(PyTensor)
                .collect())
        })
    }

    /// Calls the model on symbolic tensors (nesting it in a functional model).
    fn call_symbolic(&self, inputs: Vec<PyRef<'_, PyKerasTensor>>) -> PyResult<Vec<PyKerasTensor>> {
        let layer = self.with(|m| Ok(m.as_layer()))?;
        let kts: Vec<KerasTensor> = inputs.iter().map(|k| k.0.clone()).collect();
        Ok(connect(layer, &kts)
            .py()?
            .into_iter()
            .map(PyKerasTensor)
            .collect())
    }

    /// Saves: `.keras` (Keras 3 archive), `.weights.h5` (weights only), else a ferroflow
    /// model directory.
    fn save(&self, py: Python<'_>, path: &str) -> PyResult<()> {
        let p = Path::new(path);
        self.with(|m| {
            without_gil(py, || {
                if path.ends_with(".weights.h5") {
                    m.save_weights(p)
                } else if path.ends_with(".keras") {
                    ferroflow_keras::saving::keras_file::save_keras(m, p)
                } else if path.ends_with(".h5") {
                    Err(Error::invalid(
                        "save",
                        "the legacy .h5 format is read, not written; save as .keras",
                    ))
                } else {
                    m.save(p)
                }
            })
            .py()
        })
    }

    /// Loads weights saved by `save_weights`.
    fn load_weights(&self, path: &str) -> PyResult<()> {
        self.with(|m| m.load_weights(path).py())
    }

    /// Saves the weights only.
    fn save_weights(&self, path: &str) -> PyResult<()> {
        self.with(|m| m.save_weights(path).py())
    }

    /// The compiled optimiser's learning rate (callbacks change it).
    #[getter]
    fn learning_rate(&self) -> PyResult<Option<f64>> {
        self.with(|m| Ok(m.optimizer().map(|o| o.learning_rate())))
    }

    #[setter]
    fn set_learning_rate(&self, lr: f64) -> PyResult<()> {
        self.with(|m| {
            m.optimizer_mut()
                .ok_or_else(|| PyRuntimeError::new_err("compile the model first"))?
                .set_learning_rate(lr);
            Ok(())
        })
    }

    /// `model.stop_training`: set by a callback to end `fit` after this epoch.
    #[getter]
    fn stop_training(&self) -> bool {
        self.stop.get()
    }

    #[setter]
    fn set_stop_training(&self, on: bool) {
        self.stop.set(on);
    }

    /// Keras's model config (JSON text, as `model.to_json()`).
    fn to_json(&self) -> PyResult<String> {
        self.with(|m| Ok(ferroflow_keras::saving::keras_file::keras_config(m).to_string()))
    }
}

/// The shipped digits data (`ferroflow.keras.datasets.digits.load_data()`): 8x8 images
/// as 64 pixels (0-16) and labels, split as the demo splits them.
#[pyfunction]
#[pyo3(signature = (test_split=0.2, seed=42))]
pub fn digits_load_data<'py>(
    py: Python<'py>,
    test_split: f64,
    seed: u64,
) -> PyResult<Bound<'py, PyTuple>> {
    let ((xa, ya), (xb, yb)) =
        ferroflow_keras::datasets::digits::load_split(test_split, seed).py()?;
    let a = PyTuple::new(py, [to_numpy(py, &xa, true)?, to_numpy(py, &ya, true)?])?;
    let b = PyTuple::new(py, [to_numpy(py, &xb, true)?, to_numpy(py, &yb, true)?])?;
    PyTuple::new(py, [a, b])
}

/// Registers the Keras classes and functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLayer>()?;
    m.add_class::<PyKerasTensor>()?;
    m.add_class::<PyModel>()?;
    m.add_class::<PyLoss>()?;
    m.add_class::<PyOptimizer>()?;
    m.add_function(wrap_pyfunction!(input, m)?)?;
    m.add_function(wrap_pyfunction!(layer_from_config, m)?)?;
    m.add_function(wrap_pyfunction!(loss_from_config, m)?)?;
    m.add_function(wrap_pyfunction!(optimizer_from_config, m)?)?;
    m.add_function(wrap_pyfunction!(digits_load_data, m)?)?;
    m.add("LAYER_CLASSES", registry::CLASSES.to_vec())?;
    Ok(())
}
