//! `Dense`: `activation(x · kernel + bias)` over the last axis.

use super::common::{known_last, read_activation, WeightOptions};
use crate::activations::Activation;
use crate::config::{ConfigReader, Map};
use crate::initializers::Initializer;
use crate::layer::{expect_inputs, CallContext, Layer, LayerBase, TensorSpec};
use ferroflow_core::{Result, Tensor, Variable};
use serde_json::Value;
use std::sync::OnceLock;

/// A densely connected layer (`keras.layers.Dense`).
pub struct Dense {
    base: LayerBase,
    units: usize,
    activation: Activation,
    use_bias: bool,
    kernel_options: WeightOptions,
    bias_options: WeightOptions,
    kernel: OnceLock<Variable>,
    bias: OnceLock<Variable>,
}

impl Dense {
    /// `Dense(units)` with Keras's defaults (linear, bias, glorot_uniform kernel).
    pub fn new(units: usize) -> Self {
        Dense {
            base: LayerBase::new("Dense", None),
            units,
            activation: Activation::Linear,
            use_bias: true,
            kernel_options: WeightOptions::new(Initializer::glorot_uniform()),
            bias_options: WeightOptions::new(Initializer::Zeros),
            kernel: OnceLock::new(),
            bias: OnceLock::new(),
        }
    }

    /// Sets the activation by Keras name (`"relu"`, `"softmax"`...). An unknown name
    /// makes building the layer fail with an error naming it; [`Dense::try_activation`]
    /// reports it at once.
    pub fn activation(mut self, name: &str) -> Self {
        match Activation::from_name(name) {
            Ok(a) => self.activation = a,
            Err(e) => self.base.reject_option(e.to_string()),
        }
        self
    }

    /// Sets the activation by Keras name, failing on an unknown name.
    pub fn try_activation(mut self, name: &str) -> Result<Self> {
        self.activation = Activation::from_name(name)?;
        Ok(self)
    }

    /// Whether to add a bias.
    pub fn use_bias(mut self, on: bool) -> Self {
        self.use_bias = on;
        self
    }

    /// Sets the kernel initializer.
    pub fn kernel_initializer(mut self, init: Initializer) -> Self {
        self.kernel_options.initializer = init;
        self
    }

    /// Sets the bias initializer.
    pub fn bias_initializer(mut self, init: Initializer) -> Self {
        self.bias_options.initializer = init;
        self
    }

    /// Sets the kernel regularizer.
    pub fn kernel_regularizer(mut self, r: crate::regularizers::Regularizer) -> Self {
        self.kernel_options.regularizer = Some(r);
        self
    }

    /// Sets the kernel constraint.
    pub fn kernel_constraint(mut self, c: crate::constraints::Constraint) -> Self {
        self.kernel_options.constraint = Some(c);
        self
    }

    /// The kernel variable, once built.
    pub fn kernel(&self) -> Option<&Variable> {
        self.kernel.get()
    }

    /// Rebuilds a `Dense` from its Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Dense", config)?;
        let mut d = Dense::new(r.usize_req("units")?);
        d.base = LayerBase::from_reader("Dense", &r);
        d.activation = read_activation(&r)?;
        d.use_bias = r.bool_or("use_bias", true)?;
        d.kernel_options = WeightOptions::read(&r, "kernel", Initializer::glorot_uniform())?;
        d.bias_options = WeightOptions::read(&r, "bias", Initializer::Zeros)?;
        r.require("activity_regularizer", &Value::Null)?;
        r.require("lora_rank", &Value::Null)?;
        r.require("quantization_config", &Value::Null)?;
        r.finish()?;
        Ok(d)
    }
}

super::layer_boilerplate!(Dense, "Dense");

impl Layer for Dense {
    super::layer_identity!("Dense");

    // Keras's `supports_masking`: the mask passes through.
    fn supports_masking(&self) -> bool {
        true
    }

    fn build(&self, inputs: &[TensorSpec]) -> Result<()> {
        let fan_in = known_last("Dense", self.base.name(), &inputs[0].shape)?;
        let o = &self.kernel_options;
        let k = o.create(&self.base, "kernel", &[fan_in, self.units])?;
        let _ = self.kernel.set(k);
        if self.use_bias {
            let o = &self.bias_options;
            let b = o.create(&self.base, "bias", &[self.units])?;
            let _ = self.bias.set(b);
        }
        Ok(())
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        let kernel = self
            .kernel
            .get()
            .ok_or_else(|| self.base.not_built())?
            .value();
        let y = if x.rank() == 2 {
            x.matmul(&kernel)?
        } else {
            let mut out_shape: Vec<isize> = x.shape().iter().map(|&d| d as isize).collect();
            let flat = x.reshape(&[-1, *out_shape.last().unwrap_or(&1)])?;
            if let Some(l) = out_shape.last_mut() {
                *l = self.units as isize;
            }
            flat.matmul(&kernel)?.reshape(&out_shape)?
        };
        let y = match self.bias.get() {
            Some(b) => y.add(&b.value())?,
            None => y,
        };
        Ok(vec![self.activation.apply(&y)?])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let mut shape = inputs[0].shape.clone();
        known_last("Dense", self.base.name(), &shape)?;
        if let Some(l) = shape.last_mut() {
            *l = Some(self.units);
        }
        Ok(vec![TensorSpec::new(shape, ferroflow_core::DType::F32)])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("units".into(), Value::from(self.units));
        m.insert("activation".into(), Value::from(self.activation.name()));
        m.insert("use_bias".into(), Value::from(self.use_bias));
        super::common::write_weight_options(
            &mut m,
            &[
                ("kernel", &self.kernel_options),
                ("bias", &self.bias_options),
            ],
            &[],
            &[],
        );
        m.insert("quantization_config".into(), Value::Null);
        m
    }
}
