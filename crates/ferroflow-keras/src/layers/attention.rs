//! `MultiHeadAttention` (Keras 3 weight layout: `query/kernel` `(d, heads, key_dim)`...).

use super::common::WeightOptions;
use crate::config::{ConfigReader, Map};
use crate::initializers::Initializer;
use crate::layer::{format_dims, CallContext, Layer, LayerBase, TensorSpec};
use ferroflow_core::{DType, Error, Result, Tensor, Variable};
use serde_json::Value;
use std::sync::OnceLock;

struct Projections {
    query: (Variable, Option<Variable>),
    key: (Variable, Option<Variable>),
    value: (Variable, Option<Variable>),
    output: (Variable, Option<Variable>),
}

/// Multi-head scaled dot-product attention over the time axis
/// (`keras.layers.MultiHeadAttention`). Inputs: `[query, value]` or `[query, value, key]`,
/// each `(batch, steps, features)`.
pub struct MultiHeadAttention {
    base: LayerBase,
    num_heads: usize,
    key_dim: usize,
    value_dim: usize,
    dropout: f64,
    use_bias: bool,
    output_dim: Option<usize>,
    seed: Option<u64>,
    kernel_options: WeightOptions,
    bias_options: WeightOptions,
    weights: OnceLock<Projections>,
}

impl MultiHeadAttention {
    /// `MultiHeadAttention(num_heads, key_dim)` with Keras's defaults (value_dim = key_dim).
    pub fn new(num_heads: usize, key_dim: usize) -> Self {
        MultiHeadAttention {
            base: LayerBase::new("MultiHeadAttention", None),
            num_heads,
            key_dim,
            value_dim: key_dim,
            dropout: 0.0,
            use_bias: true,
            output_dim: None,
            seed: None,
            kernel_options: WeightOptions::new(Initializer::glorot_uniform()),
            bias_options: WeightOptions::new(Initializer::Zeros),
            weights: OnceLock::new(),
        }
    }

    /// Gives the layer a name.
    pub fn name(mut self, name: &str) -> Self {
        self.base.set_name(name);
        self
    }

    /// Dropout on the attention probabilities (training only).
    pub fn dropout(mut self, rate: f64) -> Self {
        self.dropout = rate;
        self
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("MultiHeadAttention", config)?;
        let mut l = MultiHeadAttention::new(r.usize_req("num_heads")?, r.usize_req("key_dim")?);
        l.base = LayerBase::from_reader("MultiHeadAttention", &r);
        l.value_dim = r.usize_or("value_dim", l.key_dim)?;
        l.dropout = r.f64_or("dropout", 0.0)?;
        l.use_bias = r.bool_or("use_bias", true)?;
        l.output_dim = match r.raw("output_shape") {
            None => None,
            Some(Value::Number(n)) => n.as_u64().map(|v| v as usize),
            Some(Value::Array(a)) if a.len() == 1 => a[0].as_u64().map(|v| v as usize),
            Some(v) => {
                return Err(Error::invalid(
                    "MultiHeadAttention",
                    format!("option 'output_shape': unsupported {v}"),
                ))
            }
        };
        l.seed = r.raw("seed").and_then(Value::as_u64);
        l.kernel_options = WeightOptions::read(&r, "kernel", Initializer::glorot_uniform())?;
        l.bias_options = WeightOptions::read(&r, "bias", Initializer::Zeros)?;
        match r.i64_list("attention_axes")?.as_deref() {
            None | Some([1]) | Some([-2]) => {}
            Some(other) => {
                return Err(Error::invalid(
                    "MultiHeadAttention",
                    format!(
                        "option 'attention_axes': only the time axis is supported, got {other:?}"
                    ),
                ))
            }
        }
        r.require("use_gate", &Value::from(false))?;
        r.require("sliding_window", &Value::Null)?;
        r.require("activity_regularizer", &Value::Null)?;
        r.finish()?;
        Ok(l)
    }

    fn dims(&self, inputs: &[TensorSpec]) -> Result<(usize, usize, usize)> {
        if !(2..=3).contains(&inputs.len()) {
            return Err(Error::invalid(
                "MultiHeadAttention",
                format!(
                    "layer '{}' takes [query, value] or [query, value, key], got {} inputs",
                    self.base.name(),
                    inputs.len()
                ),
            ));
        }
        let last = |s: &TensorSpec| -> Result<usize> {
            if s.shape.len() != 3 {
                return Err(Error::invalid(
                    "MultiHeadAttention",
                    format!(
                        "layer '{}' expects (batch, steps, features) inputs, got {}",
                        self.base.name(),
                        format_dims(&s.shape)
                    ),
                ));
            }
            s.shape[2].ok_or_else(|| {
                Error::invalid("MultiHeadAttention", "feature dimensions must be known")
            })
        };
        let q = last(&inputs[0])?;
        let v = last(&inputs[1])?;
        let k = if inputs.len() == 3 {
            last(&inputs[2])?
        } else {
            v
        };
        Ok((q, v, k))
    }
}

/// `x (b, t, d) · kernel (d, h, k) + bias (h, k)` -> `(b, h, t, k)`.
fn project(x: &Tensor, kernel: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (b, t, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let (h, k) = (kernel.shape()[1], kernel.shape()[2]);
    let mut y = x
        .reshape_to(&[b * t, d])?
        .matmul(&kernel.reshape_to(&[d, h * k])?)?;
    if let Some(bias) = bias {
        y = y.add(&bias.reshape_to(&[h * k])?)?;
    }
    y.reshape_to(&[b, t, h, k])?.transpose(&[0, 2, 1, 3])
}

impl Layer for MultiHeadAttention {
    fn positional_inputs(&self) -> bool {
        true
    }

    fn build_config(&self, specs: &[TensorSpec]) -> Value {
        let mut shapes = Map::new();
        for (key, spec) in ["query_shape", "value_shape", "key_shape"]
            .iter()
            .zip(specs)
        {
            shapes.insert((*key).into(), crate::config::dims_json(&spec.shape));
        }
        serde_json::json!({ "shapes_dict": shapes })
    }

    fn class_name(&self) -> &'static str {
        "MultiHeadAttention"
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn number_of_inputs(&self) -> Option<usize> {
        None
    }

    fn build(&self, inputs: &[TensorSpec]) -> Result<()> {
        let (dq, dv, dk) = self.dims(inputs)?;
        let (h, kd, vd) = (self.num_heads, self.key_dim, self.value_dim);
        let out = self.output_dim.unwrap_or(dq);
        let ko = &self.kernel_options;
        let bo = &self.bias_options;
        let pair = |name: &str,
                    kshape: &[usize],
                    bshape: &[usize]|
         -> Result<(Variable, Option<Variable>)> {
            let k = ko.create(&self.base, &format!("{name}/kernel"), kshape)?;
            let b = if self.use_bias {
                Some(bo.create(&self.base, &format!("{name}/bias"), bshape)?)
            } else {
                None
            };
            Ok((k, b))
        };
        let p = Projections {
            query: pair("query", &[dq, h, kd], &[h, kd])?,
            key: pair("key", &[dk, h, kd], &[h, kd])?,
            value: pair("value", &[dv, h, vd], &[h, vd])?,
            output: pair("attention_output", &[h, vd, out], &[out])?,
        };
        let _ = self.weights.set(p);
        Ok(())
    }

    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
        let specs: Vec<TensorSpec> = inputs.iter().map(TensorSpec::of_batch).collect();
        self.dims(&specs)?;
        let w = self.weights.get().ok_or_else(|| self.base.not_built())?;
        let (query, value) = (&inputs[0], &inputs[1]);
        let key = inputs.get(2).unwrap_or(value);
        let val =
            |p: &(Variable, Option<Variable>)| (p.0.value(), p.1.as_ref().map(Variable::value));
        let (qk, qb) = val(&w.query);
        let (kk, kb) = val(&w.key);
        let (vk, vb) = val(&w.value);
        let (ok, ob) = val(&w.output);
        let q = project(query, &qk, qb.as_ref())?.mul_scalar(1.0 / (self.key_dim as f64).sqrt())?;
        let k = project(key, &kk, kb.as_ref())?;
        let v = project(value, &vk, vb.as_ref())?;
        let scores = q.matmul_t(&k, false, true)?;
        let mut probs = scores.softmax(-1)?;
        if ctx.training && self.dropout > 0.0 {
            probs = probs.dropout(self.dropout, true, self.seed)?;
        }
        let ctxt = probs.matmul(&v)?.transpose(&[0, 2, 1, 3])?;
        let (b, t) = (query.shape()[0], query.shape()[1]);
        let (h, vd, out) = (ok.shape()[0], ok.shape()[1], ok.shape()[2]);
        let mut y = ctxt
            .contiguous()
            .reshape_to(&[b * t, h * vd])?
            .matmul(&ok.reshape_to(&[h * vd, out])?)?;
        if let Some(ob) = ob {
            y = y.add(&ob)?;
        }
        Ok(vec![y.reshape_to(&[b, t, out])?])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let (dq, _, _) = self.dims(inputs)?;
        let s = &inputs[0].shape;
        Ok(vec![TensorSpec::new(
            vec![s[0], s[1], Some(self.output_dim.unwrap_or(dq))],
            DType::F32,
        )])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("num_heads".into(), Value::from(self.num_heads));
        m.insert("key_dim".into(), Value::from(self.key_dim));
        m.insert("value_dim".into(), Value::from(self.value_dim));
        m.insert("dropout".into(), Value::from(self.dropout));
        m.insert("use_bias".into(), Value::from(self.use_bias));
        m.insert("use_gate".into(), Value::from(false));
        m.insert(
            "output_shape".into(),
            self.output_dim
                .map_or(Value::Null, |d| Value::from(vec![d])),
        );
        m.insert("attention_axes".into(), Value::from(vec![1]));
        m.insert("sliding_window".into(), Value::Null);
        super::common::write_weight_options(
            &mut m,
            &[
                ("kernel", &self.kernel_options),
                ("bias", &self.bias_options),
            ],
            &[],
            &[("activity_regularizer", Value::Null)],
        );
        m.insert("seed".into(), self.seed.map_or(Value::Null, Value::from));
        m
    }
}
