//! Wrapper layers: `Bidirectional` (an RNN run both ways) and `TimeDistributed` (a layer
//! applied to every time step).

use super::rnn::Recurrent;
use crate::config::{ConfigReader, Map};
use crate::layer::{
    expect_inputs, format_dims, CallContext, Layer, LayerBase, LayerExt, LayerRef, TensorSpec,
};
use crate::models::serialize::layer_json;
use ferroflow_core::{Error, Result, Tensor};
use serde_json::Value;
use std::sync::Arc;

/// How Bidirectional combines the two directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeMode {
    /// Concatenate along the features (Keras's default).
    Concat,
    /// Sum.
    Sum,
    /// Product.
    Mul,
    /// Mean.
    Ave,
}

impl MergeMode {
    fn name(self) -> &'static str {
        match self {
            MergeMode::Concat => "concat",
            MergeMode::Sum => "sum",
            MergeMode::Mul => "mul",
            MergeMode::Ave => "ave",
        }
    }
}

/// Runs a recurrent layer forwards and a copy backwards and merges the outputs
/// (`keras.layers.Bidirectional`).
pub struct Bidirectional {
    base: LayerBase,
    forward: Arc<Recurrent>,
    backward: Arc<Recurrent>,
    merge: MergeMode,
}

impl Bidirectional {
    /// Wraps `layer`; the copies are named `forward_<name>` and `backward_<name>`.
    pub fn new(layer: Recurrent, merge: MergeMode) -> Result<Self> {
        let base = LayerBase::new("Bidirectional", None);
        let inner = layer.base().name().to_string();
        let forward = layer.mirrored(&format!("forward_{inner}"), false)?;
        let backward = layer.mirrored(&format!("backward_{inner}"), true)?;
        Ok(Bidirectional {
            base,
            forward: Arc::new(forward),
            backward: Arc::new(backward),
            merge,
        })
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Bidirectional", config)?;
        let rnn = |v: &Value| -> Result<Recurrent> {
            let class = v.get("class_name").and_then(Value::as_str).unwrap_or("");
            let kind = match class {
                "SimpleRNN" => super::rnn::CellKind::Simple,
                "LSTM" => super::rnn::CellKind::Lstm,
                "GRU" => super::rnn::CellKind::Gru,
                other => {
                    return Err(Error::invalid(
                        "Bidirectional",
                        format!(
                            "option 'layer': unsupported class '{other}' (SimpleRNN, LSTM, GRU)"
                        ),
                    ))
                }
            };
            Recurrent::from_config(kind, v.get("config").unwrap_or(&Value::Null))
        };
        let layer = r
            .raw("layer")
            .ok_or_else(|| Error::invalid("Bidirectional", "option 'layer': missing"))?;
        let forward = rnn(layer)?;
        let backward = match r.raw("backward_layer") {
            Some(b) => rnn(b)?,
            None => forward.mirrored(&format!("backward_{}", forward.base().name()), true)?,
        };
        let merge = match r.str_or("merge_mode", "concat")?.as_str() {
            "concat" => MergeMode::Concat,
            "sum" => MergeMode::Sum,
            "mul" => MergeMode::Mul,
            "ave" => MergeMode::Ave,
            other => {
                return Err(Error::invalid(
                    "Bidirectional",
                    format!("option 'merge_mode': unsupported '{other}'"),
                ))
            }
        };
        let l = Bidirectional {
            base: LayerBase::from_reader("Bidirectional", &r),
            forward: Arc::new(forward),
            backward: Arc::new(backward),
            merge,
        };
        r.finish()?;
        Ok(l)
    }

    fn combine(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        match self.merge {
            MergeMode::Concat => Tensor::concat(&[a.clone(), b.clone()], -1),
            MergeMode::Sum => a.add(b),
            MergeMode::Mul => a.mul(b),
            MergeMode::Ave => a.add(b)?.mul_scalar(0.5),
        }
    }
}

impl Layer for Bidirectional {
    fn class_name(&self) -> &'static str {
        "Bidirectional"
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn build(&self, inputs: &[TensorSpec]) -> Result<()> {
        self.forward.ensure_built(inputs)?;
        self.backward.ensure_built(inputs)
    }

    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
        self.call_masked(inputs, &[], ctx)
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn compute_mask(&self, inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        self.forward.compute_mask(inputs, masks)
    }

    /// Both directions skip the masked steps.
    fn call_masked(
        &self,
        inputs: &[Tensor],
        masks: &[Option<Tensor>],
        ctx: CallContext,
    ) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let f = self.forward.call_masked(inputs, masks, ctx)?;
        let mut b = self.backward.call_masked(inputs, masks, ctx)?;
        if b[0].rank() == 3 {
            // The backward layer emits its sequence in processing order; flip it back.
            b[0] = b[0].reverse(&[1])?.contiguous();
        }
        let mut out = vec![self.combine(&f[0], &b[0])?];
        out.extend(f.into_iter().skip(1));
        out.extend(b.into_iter().skip(1));
        Ok(out)
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let f = self.forward.compute_output_spec(inputs)?;
        let b = self.backward.compute_output_spec(inputs)?;
        let mut first = f[0].clone();
        if self.merge == MergeMode::Concat {
            if let (Some(l), Some(r)) = (
                first.shape.last().copied().flatten(),
                b[0].shape.last().copied().flatten(),
            ) {
                *first.shape.last_mut().expect("rank >= 2") = Some(l + r);
            }
        }
        let mut out = vec![first];
        out.extend(f.into_iter().skip(1));
        out.extend(b.into_iter().skip(1));
        Ok(out)
    }

    fn sublayers(&self) -> Vec<LayerRef> {
        vec![self.forward.clone(), self.backward.clone()]
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("merge_mode".into(), Value::from(self.merge.name()));
        m.insert("layer".into(), layer_json(self.forward.as_ref()));
        m.insert("backward_layer".into(), layer_json(self.backward.as_ref()));
        m
    }
}

/// Applies a layer to every time step of `(batch, steps, ...)` inputs
/// (`keras.layers.TimeDistributed`).
pub struct TimeDistributed {
    base: LayerBase,
    inner: LayerRef,
}

impl TimeDistributed {
    /// Wraps `layer`.
    pub fn new(layer: impl crate::models::IntoLayerRef) -> Self {
        TimeDistributed {
            base: LayerBase::new("TimeDistributed", None),
            inner: layer.into_layer_ref(),
        }
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("TimeDistributed", config)?;
        let layer = r
            .raw("layer")
            .ok_or_else(|| Error::invalid("TimeDistributed", "option 'layer': missing"))?;
        let l = TimeDistributed {
            base: LayerBase::from_reader("TimeDistributed", &r),
            inner: super::registry::from_json(layer)?,
        };
        r.finish()?;
        Ok(l)
    }

    fn inner_spec(&self, s: &TensorSpec) -> Result<TensorSpec> {
        if s.shape.len() < 3 {
            return Err(Error::invalid(
                "TimeDistributed",
                format!(
                    "layer '{}' expects (batch, steps, ...), got {}",
                    self.base.name(),
                    format_dims(&s.shape)
                ),
            ));
        }
        let mut shape = vec![None];
        shape.extend_from_slice(&s.shape[2..]);
        Ok(TensorSpec::new(shape, s.dtype))
    }
}

impl Layer for TimeDistributed {
    fn class_name(&self) -> &'static str {
        "TimeDistributed"
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn build(&self, inputs: &[TensorSpec]) -> Result<()> {
        self.inner.ensure_built(&[self.inner_spec(&inputs[0])?])
    }

    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        if x.rank() < 3 {
            return Err(Error::invalid(
                "TimeDistributed",
                format!(
                    "layer '{}' expects (batch, steps, ...), got {:?}",
                    self.base.name(),
                    x.shape()
                ),
            ));
        }
        let (b, t) = (x.shape()[0], x.shape()[1]);
        let mut flat = vec![b * t];
        flat.extend_from_slice(&x.shape()[2..]);
        let y = self.inner.call(&[x.reshape_to(&flat)?], ctx)?;
        y.into_iter()
            .map(|o| {
                let mut shape = vec![b, t];
                shape.extend_from_slice(&o.shape()[1..]);
                o.reshape_to(&shape)
            })
            .collect()
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let s = &inputs[0];
        let inner = self.inner.compute_output_spec(&[self.inner_spec(s)?])?;
        Ok(inner
            .into_iter()
            .map(|o| {
                let mut shape = vec![s.shape[0], s.shape[1]];
                shape.extend_from_slice(&o.shape[1..]);
                TensorSpec::new(shape, o.dtype)
            })
            .collect())
    }

    fn sublayers(&self) -> Vec<LayerRef> {
        vec![self.inner.clone()]
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("layer".into(), layer_json(self.inner.as_ref()));
        m
    }
}
