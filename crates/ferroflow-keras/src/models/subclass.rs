//! Subclass-style models: any user type implementing [`Layer`] (with its layers listed
//! by `sublayers`) becomes a trainable [`super::Model`].

use super::network::{Network, SummaryRow};
use crate::config::Map;
use crate::layer::{format_dims, CallContext, Layer, LayerBase, LayerExt, LayerRef, TensorSpec};
use ferroflow_core::{Result, Tensor};
use std::sync::Mutex;

/// Wraps a user-defined layer as a model network.
pub struct Subclassed {
    inner: Box<dyn Layer>,
    outputs: Mutex<Vec<TensorSpec>>,
}

impl Subclassed {
    /// Wraps `layer`.
    pub fn new(layer: impl Layer + 'static) -> Self {
        Subclassed {
            inner: Box::new(layer),
            outputs: Mutex::new(Vec::new()),
        }
    }
}

impl Layer for Subclassed {
    fn as_network(&self) -> Option<&dyn Network> {
        Some(self)
    }

    fn class_name(&self) -> &'static str {
        self.inner.class_name()
    }

    fn base(&self) -> &LayerBase {
        self.inner.base()
    }

    fn build(&self, inputs: &[TensorSpec]) -> Result<()> {
        self.inner.build(inputs)
    }

    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
        let out = self.inner.call(inputs, ctx)?;
        let mut o = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        if o.is_empty() {
            *o = out.iter().map(TensorSpec::of_batch).collect();
        }
        Ok(out)
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        self.inner.compute_output_spec(inputs)
    }

    fn config(&self) -> Map {
        self.inner.config()
    }

    fn sublayers(&self) -> Vec<LayerRef> {
        self.inner.sublayers()
    }

    fn number_of_inputs(&self) -> Option<usize> {
        self.inner.number_of_inputs()
    }
}

impl Network for Subclassed {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn input_specs(&self) -> Option<Vec<TensorSpec>> {
        self.base().built_specs().map(<[TensorSpec]>::to_vec)
    }

    fn input_names(&self) -> Vec<String> {
        vec!["input".into()]
    }

    fn output_names(&self) -> Vec<String> {
        vec![self.name().to_string()]
    }

    fn summary_rows(&self) -> Vec<SummaryRow> {
        self.sublayers()
            .iter()
            .map(|l| SummaryRow {
                name: l.name().to_string(),
                class: l.class_name().to_string(),
                output_shape: l
                    .base()
                    .built_specs()
                    .and_then(|s| l.compute_output_spec(s).ok())
                    .map(|o| {
                        o.iter()
                            .map(|s| format_dims(&s.shape))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_else(|| "?".into()),
                params: l.count_params(),
                connected: None,
            })
            .collect()
    }
}
