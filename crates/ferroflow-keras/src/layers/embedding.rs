//! `Embedding`: a lookup table whose gradient is sparse (only the rows looked up).

use super::common::WeightOptions;
use crate::config::{ConfigReader, Map};
use crate::initializers::Initializer;
use crate::layer::{expect_inputs, CallContext, Layer, LayerBase, TensorSpec};
use ferroflow_core::{CmpOp, DType, Error, Result, ResultExt, Tensor, Variable};
use serde_json::Value;
use std::sync::OnceLock;

/// Maps integer ids in `[0, input_dim)` to vectors of `output_dim`
/// (`keras.layers.Embedding`). The table's gradient is an `IndexedSlices`, so optimisers
/// with sparse updates touch only the rows of the batch.
pub struct Embedding {
    base: LayerBase,
    input_dim: usize,
    output_dim: usize,
    options: WeightOptions,
    mask_zero: bool,
    embeddings: OnceLock<Variable>,
}

impl Embedding {
    /// A table of `input_dim` rows of `output_dim` (uniform ±0.05 like Keras).
    pub fn new(input_dim: usize, output_dim: usize) -> Self {
        Embedding {
            base: LayerBase::new("Embedding", None),
            input_dim,
            output_dim,
            options: WeightOptions::new(Initializer::RandomUniform {
                minval: -0.05,
                maxval: 0.05,
                seed: None,
            }),
            mask_zero: false,
            embeddings: OnceLock::new(),
        }
    }

    /// Treats id 0 as padding (`mask_zero`): the output carries a mask, false at those
    /// steps, that pooling and recurrent layers downstream skip.
    pub fn mask_zero(mut self, on: bool) -> Self {
        self.mask_zero = on;
        self
    }

    /// Sets the table's initializer.
    pub fn embeddings_initializer(mut self, init: Initializer) -> Self {
        self.options.initializer = init;
        self
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Embedding", config)?;
        let mut l = Embedding::new(r.usize_req("input_dim")?, r.usize_req("output_dim")?);
        l.base = LayerBase::from_reader("Embedding", &r);
        l.options = WeightOptions::read(&r, "embeddings", l.options.initializer.clone())?;
        l.mask_zero = r.bool_or("mask_zero", false)?;
        r.require("activity_regularizer", &Value::Null)?;
        r.require("lora_rank", &Value::Null)?;
        r.require("quantization_config", &Value::Null)?;
        r.raw("input_length");
        r.finish()?;
        Ok(l)
    }
}

super::layer_boilerplate!(Embedding, "Embedding");

impl Layer for Embedding {
    super::layer_identity!("Embedding");

    fn build(&self, _inputs: &[TensorSpec]) -> Result<()> {
        let o = &self.options;
        let e = o.create(&self.base, "embeddings", &[self.input_dim, self.output_dim])?;
        let _ = self.embeddings.set(e);
        Ok(())
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let ids = &inputs[0];
        let ids = match ids.dtype() {
            DType::I32 | DType::I64 => ids.clone(),
            d if d.is_float() || d == DType::U8 => ids.cast(DType::I64)?,
            d => {
                return Err(Error::invalid(
                    "Embedding",
                    format!(
                        "layer '{}': ids must be integers, got {d}",
                        self.base.name()
                    ),
                ))
            }
        };
        let table = self
            .embeddings
            .get()
            .ok_or_else(|| self.base.not_built())?
            .value();
        table
            .gather(&ids, 0)
            .map(|t| vec![t])
            .with_context(|| format!("looking up ids in a table of input_dim {}", self.input_dim))
    }

    fn compute_mask(&self, inputs: &[Tensor], _masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        if !self.mask_zero {
            return Ok(None);
        }
        let ids = &inputs[0];
        let zero = Tensor::scalar(0i64).cast(ids.dtype())?;
        ids.compare(CmpOp::NotEqual, &zero).map(Some)
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let mut s = inputs[0].shape.clone();
        s.push(Some(self.output_dim));
        Ok(vec![TensorSpec::new(s, DType::F32)])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("input_dim".into(), Value::from(self.input_dim));
        m.insert("output_dim".into(), Value::from(self.output_dim));
        super::common::write_weight_options(
            &mut m,
            &[("embeddings", &self.options)],
            &[],
            &[("activity_regularizer", Value::Null)],
        );
        m.insert("mask_zero".into(), Value::from(self.mask_zero));
        m.insert("quantization_config".into(), Value::Null);
        m
    }
}
