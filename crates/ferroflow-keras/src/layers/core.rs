//! Layers without weights that act elementwise or pass data through: `InputLayer`,
//! `Activation`, `Dropout`, and `Lambda` (a closure layer).

use super::common::read_activation;
use crate::activations::Activation as Act;
use crate::config::{dims_json, ConfigReader, Map};
use crate::layer::{expect_inputs, CallContext, Dims, Layer, LayerBase, TensorSpec};
use ferroflow_core::{DType, Error, Result, Tensor};
use serde_json::Value;
use std::sync::Arc;

/// The layer behind `Input(...)`: it holds the input's shape and dtype.
pub struct InputLayer {
    base: LayerBase,
    batch_shape: Dims,
    dtype: DType,
}

impl InputLayer {
    /// An input of `batch_shape` (first dim usually `None`) and `dtype`.
    pub fn new(batch_shape: Dims, dtype: DType, name: Option<&str>) -> Self {
        InputLayer {
            base: LayerBase::new("InputLayer", name),
            batch_shape,
            dtype,
        }
    }

    /// The input's spec.
    pub fn spec(&self) -> TensorSpec {
        TensorSpec::new(self.batch_shape.clone(), self.dtype)
    }

    /// Rebuilds from a Keras config (`batch_shape` or legacy `batch_input_shape`).
    pub fn from_config(config: &Value) -> Result<Self> {
        let map = config
            .as_object()
            .ok_or_else(|| Error::invalid("InputLayer", "config must be an object"))?;
        let shape = map
            .get("batch_shape")
            .or_else(|| map.get("batch_input_shape"))
            .and_then(Value::as_array)
            .ok_or_else(|| Error::invalid("InputLayer", "config has no batch_shape"))?;
        let batch_shape: Dims = shape
            .iter()
            .map(|d| d.as_u64().map(|x| x as usize))
            .collect();
        let name = map
            .get("dtype")
            .and_then(Value::as_str)
            .unwrap_or("float32");
        let dtype = DType::from_name(name)
            .filter(|d| {
                matches!(
                    d,
                    DType::F32
                        | DType::F64
                        | DType::I32
                        | DType::I64
                        | DType::U8
                        | DType::Bool
                        | DType::String
                )
            })
            .ok_or_else(|| {
                Error::invalid(
                    "InputLayer",
                    format!("option 'dtype': unsupported '{name}'"),
                )
            })?;
        for flag in ["sparse", "ragged"] {
            if map.get(flag).and_then(Value::as_bool) == Some(true) {
                return Err(Error::invalid(
                    "InputLayer",
                    format!("option '{flag}': only false is supported"),
                ));
            }
        }
        let name = map.get("name").and_then(Value::as_str);
        Ok(InputLayer::new(batch_shape, dtype, name))
    }
}

impl Layer for InputLayer {
    super::layer_identity!("InputLayer");

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        Ok(inputs.to_vec())
    }

    /// Its own spec when asked with no inputs (the input it defines), else the inputs.
    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        if inputs.is_empty() {
            return Ok(vec![self.spec()]);
        }
        Ok(inputs.to_vec())
    }

    fn includes_base_config(&self) -> bool {
        false
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("batch_shape".into(), dims_json(&self.batch_shape));
        m.insert("dtype".into(), Value::from(self.dtype.name()));
        m.insert("sparse".into(), Value::from(false));
        m.insert("ragged".into(), Value::from(false));
        m.insert("name".into(), Value::from(self.base.name()));
        m.insert("optional".into(), Value::from(false));
        m
    }
}

/// Applies an activation function (`keras.layers.Activation`).
pub struct Activation {
    base: LayerBase,
    activation: Act,
}

impl Activation {
    /// An activation layer by Keras name.
    pub fn new(name: &str) -> Result<Self> {
        Ok(Activation {
            base: LayerBase::new("Activation", None),
            activation: Act::from_name(name)?,
        })
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Activation", config)?;
        let layer = Activation {
            base: LayerBase::from_reader("Activation", &r),
            activation: read_activation(&r)?,
        };
        r.finish()?;
        Ok(layer)
    }
}

super::layer_boilerplate!(Activation, "Activation");

impl Layer for Activation {
    super::layer_identity!("Activation");

    // Keras's `supports_masking`: the mask passes through.
    fn supports_masking(&self) -> bool {
        true
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        Ok(vec![self.activation.apply(&inputs[0])?])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        Ok(inputs.to_vec())
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("activation".into(), Value::from(self.activation.name()));
        m
    }
}

/// Randomly zeroes inputs during training (`keras.layers.Dropout`).
pub struct Dropout {
    base: LayerBase,
    rate: f64,
    seed: Option<u64>,
    noise_shape: Option<Vec<Option<usize>>>,
}

impl Dropout {
    /// Dropout with `rate` in `[0, 1)`.
    pub fn new(rate: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&rate) {
            return Err(Error::invalid(
                "Dropout",
                format!("rate must be in [0, 1), got {rate}"),
            ));
        }
        Ok(Dropout {
            base: LayerBase::new("Dropout", None),
            rate,
            seed: None,
            noise_shape: None,
        })
    }

    /// Fixes the layer's seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Dropout", config)?;
        let mut d = Dropout::new(r.f64_or("rate", 0.0)?)?;
        d.base = LayerBase::from_reader("Dropout", &r);
        d.seed = r.raw("seed").and_then(Value::as_u64);
        d.noise_shape = r
            .raw("noise_shape")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|x| x.as_u64().map(|v| v as usize)).collect());
        r.finish()?;
        Ok(d)
    }
}

super::layer_boilerplate!(Dropout, "Dropout");

impl Layer for Dropout {
    super::layer_identity!("Dropout");

    // Keras's `supports_masking`: the mask passes through.
    fn supports_masking(&self) -> bool {
        true
    }

    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        if !ctx.training || self.rate == 0.0 {
            return Ok(vec![x.clone()]);
        }
        let Some(ns) = &self.noise_shape else {
            return Ok(vec![x.dropout(self.rate, true, self.seed)?]);
        };
        // A mask of the noise shape (None = the input's dim), broadcast over the rest.
        if ns.len() != x.rank() {
            return Err(Error::invalid(
                "Dropout",
                format!(
                    "layer '{}': noise_shape {ns:?} does not match input shape {:?}",
                    self.base.name(),
                    x.shape()
                ),
            ));
        }
        let shape: Vec<usize> = ns
            .iter()
            .zip(x.shape())
            .map(|(n, &d)| n.unwrap_or(d))
            .collect();
        let mask = Tensor::ones(&shape, x.dtype())?.dropout(self.rate, true, self.seed)?;
        Ok(vec![x.mul(&mask)?])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        Ok(inputs.to_vec())
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("rate".into(), Value::from(self.rate));
        m.insert("seed".into(), self.seed.map_or(Value::Null, Value::from));
        m.insert(
            "noise_shape".into(),
            self.noise_shape
                .as_ref()
                .map_or(Value::Null, |n| dims_json(n)),
        );
        m
    }
}

/// The function a [`Lambda`] layer runs.
pub type LambdaFn = dyn Fn(&[Tensor], bool) -> Result<Vec<Tensor>> + Send + Sync;

/// A layer that runs a Rust closure (`keras.layers.Lambda`). It cannot be saved as a
/// config (closures have no serial form); saving a model with one is an error.
pub struct Lambda {
    base: LayerBase,
    func: Arc<LambdaFn>,
    inputs: Option<usize>,
}

impl Lambda {
    /// A single-input, single-output closure layer.
    pub fn new(f: impl Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static) -> Self {
        Lambda {
            base: LayerBase::new("Lambda", None),
            func: Arc::new(move |xs: &[Tensor], _| Ok(vec![f(&xs[0])?])),
            inputs: Some(1),
        }
    }

    /// A closure layer over any number of inputs and outputs, told whether it trains.
    pub fn multi(
        f: impl Fn(&[Tensor], bool) -> Result<Vec<Tensor>> + Send + Sync + 'static,
    ) -> Self {
        Lambda {
            base: LayerBase::new("Lambda", None),
            func: Arc::new(f),
            inputs: None,
        }
    }
}

super::layer_boilerplate!(Lambda, "Lambda");

impl Layer for Lambda {
    super::layer_identity!("Lambda");

    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
        if let Some(n) = self.inputs {
            expect_inputs(self, inputs, n)?;
        }
        (self.func)(inputs, ctx.training)
    }

    fn number_of_inputs(&self) -> Option<usize> {
        self.inputs
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("function".into(), Value::from("<rust closure>"));
        m
    }
}
