//! `Sequential`: a plain stack of single-input, single-output layers.

use super::network::{GraphNode, LayerGraph, Network, SummaryRow};
use super::symbolic::KerasTensor;
use crate::config::Map;
use crate::layer::{format_dims, CallContext, Layer, LayerBase, LayerExt, LayerRef, TensorSpec};
use crate::layers::InputLayer;
use ferroflow_core::{Error, Result, ResultExt, Tensor};
use serde_json::Value;
use std::sync::{Arc, RwLock};

/// Anything that can be added to a model as a layer.
pub trait IntoLayerRef {
    /// The shared handle.
    fn into_layer_ref(self) -> LayerRef;
}

impl<L: Layer + 'static> IntoLayerRef for L {
    fn into_layer_ref(self) -> LayerRef {
        Arc::new(self)
    }
}

impl IntoLayerRef for LayerRef {
    fn into_layer_ref(self) -> LayerRef {
        self
    }
}

impl IntoLayerRef for KerasTensor {
    fn into_layer_ref(self) -> LayerRef {
        self.node.layer.clone()
    }
}

struct Stack {
    input: Option<TensorSpec>,
    input_name: Option<String>,
    layers: Vec<LayerRef>,
    /// Output spec of each layer, once the input spec is known.
    specs: Vec<TensorSpec>,
}

/// A linear stack of layers (`keras.Sequential`).
pub struct Sequential {
    base: LayerBase,
    stack: RwLock<Stack>,
}

impl Sequential {
    /// An empty stack named `sequential`, `sequential_1`...
    pub fn new(name: Option<&str>) -> Self {
        Sequential {
            base: LayerBase::new("Sequential", name),
            stack: RwLock::new(Stack {
                input: None,
                input_name: None,
                layers: Vec::new(),
                specs: Vec::new(),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Stack> {
        self.stack.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a layer. With a known input shape the layer is built at once, and a layer
    /// that does not fit is an error that leaves the stack unchanged.
    pub fn add(&self, layer: impl IntoLayerRef) -> Result<()> {
        let layer = layer.into_layer_ref();
        let mut st = self.stack.write().unwrap_or_else(|e| e.into_inner());
        if layer.class_name() == "InputLayer" {
            if !st.layers.is_empty() || st.input.is_some() {
                return Err(Error::invalid(
                    "Sequential",
                    "an Input can only be the first layer",
                ));
            }
            // An InputLayer's spec with no inputs is the input it defines.
            st.input = layer.compute_output_spec(&[])?.into_iter().next();
            st.input_name = Some(layer.name().to_string());
            return Ok(());
        }
        if st.layers.iter().any(|l| l.name() == layer.name())
            && !st.layers.iter().any(|l| Arc::ptr_eq(l, &layer))
        {
            return Err(Error::invalid(
                "Sequential",
                format!(
                    "a layer named '{}' is already in the model; names must be unique",
                    layer.name()
                ),
            ));
        }
        if st.input.is_some() {
            let prev = st
                .specs
                .last()
                .cloned()
                .or_else(|| st.input.clone())
                .expect("input known");
            let spec = Self::build_one(&layer, &prev)?;
            st.specs.push(spec);
        }
        st.layers.push(layer);
        Ok(())
    }

    fn build_one(layer: &LayerRef, prev: &TensorSpec) -> Result<TensorSpec> {
        layer.ensure_built(std::slice::from_ref(prev))?;
        let mut out = layer.compute_output_spec(std::slice::from_ref(prev))?;
        if out.len() != 1 {
            return Err(Error::invalid(
                "Sequential",
                format!(
                    "layer '{}' has {} outputs; Sequential needs single-output layers",
                    layer.name(),
                    out.len()
                ),
            ));
        }
        Ok(out.remove(0))
    }

    /// Fixes the input spec and builds every layer (`model.build(input_shape)`).
    pub fn build_for(&self, input: TensorSpec) -> Result<()> {
        let mut st = self.stack.write().unwrap_or_else(|e| e.into_inner());
        if st.input.is_some() && st.specs.len() == st.layers.len() {
            return Ok(());
        }
        let mut specs = Vec::new();
        let mut prev = input.clone();
        for l in &st.layers {
            prev = Self::build_one(l, &prev)?;
            specs.push(prev.clone());
        }
        st.input = Some(input);
        st.specs = specs;
        Ok(())
    }

    /// The layers, in order (without the input).
    pub fn layers(&self) -> Vec<LayerRef> {
        self.read().layers.clone()
    }

    /// Removes the last layer (`model.pop()`).
    pub fn pop(&self) -> Option<LayerRef> {
        let mut st = self.stack.write().unwrap_or_else(|e| e.into_inner());
        let keep = st.layers.len().saturating_sub(1);
        st.specs.truncate(keep);
        st.layers.pop()
    }
}

impl Layer for Sequential {
    fn as_network(&self) -> Option<&dyn Network> {
        Some(self)
    }

    fn class_name(&self) -> &'static str {
        "Sequential"
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn build(&self, inputs: &[TensorSpec]) -> Result<()> {
        self.build_for(inputs[0].clone())
    }

    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
        crate::layer::expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        if self.read().input.is_none() {
            self.build_for(TensorSpec::of_batch(x))?;
        }
        let (input, layers, input_name) = {
            let st = self.read();
            let name = st.input_name.clone();
            (st.input.clone(), st.layers.clone(), name)
        };
        if let Some(spec) = &input {
            let name = input_name.as_deref().unwrap_or("input_layer");
            super::functional::check_input(self.base.name(), 0, name, spec, x)?;
        }
        let mut x = x.clone();
        let mut mask = None;
        for l in &layers {
            let (mut out, m) =
                crate::layer::call_layer_masked(l, std::slice::from_ref(&x), &[mask], ctx)
                    .with_context(|| {
                        format!("calling layer '{}' ({})", l.name(), l.class_name())
                    })?;
            x = out.remove(0);
            mask = m;
        }
        Ok(vec![x])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let st = self.read();
        Ok(vec![st
            .specs
            .last()
            .cloned()
            .unwrap_or_else(|| inputs[0].clone())])
    }

    fn sublayers(&self) -> Vec<LayerRef> {
        self.layers()
    }

    fn config(&self) -> Map {
        let st = self.read();
        let mut layers = Vec::new();
        if let Some(spec) = &st.input {
            let input = InputLayer::new(
                spec.shape.clone(),
                spec.dtype,
                Some(st.input_name.as_deref().unwrap_or("input_layer")),
            );
            layers.push(super::serialize::layer_json(&input));
        }
        for l in &st.layers {
            layers.push(super::serialize::layer_json(l.as_ref()));
        }
        let mut m = Map::new();
        m.insert("layers".into(), Value::Array(layers));
        if let Some(spec) = &st.input {
            m.insert(
                "build_input_shape".into(),
                crate::config::dims_json(&spec.shape),
            );
        }
        m
    }
}

impl Network for Sequential {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn layer_graph(&self) -> Result<LayerGraph> {
        let st = self.read();
        let input = match (&st.input, st.specs.len() == st.layers.len()) {
            (Some(input), true) => input.clone(),
            _ => {
                return Err(Error::invalid(
                    "Sequential",
                    format!(
                        "model '{}' is not built: give it an input shape first",
                        self.base.name()
                    ),
                ))
            }
        };
        let mut nodes = vec![GraphNode {
            layer: None,
            name: st
                .input_name
                .clone()
                .unwrap_or_else(|| "input_layer".into()),
            inputs: Vec::new(),
            outputs: vec![input],
        }];
        for (i, (layer, spec)) in st.layers.iter().zip(&st.specs).enumerate() {
            nodes.push(GraphNode {
                layer: Some(layer.clone()),
                name: layer.name().to_string(),
                inputs: vec![(i, 0)],
                outputs: vec![spec.clone()],
            });
        }
        let last = nodes.len() - 1;
        Ok(LayerGraph {
            nodes,
            inputs: vec![(0, 0)],
            outputs: vec![(last, 0)],
        })
    }

    fn input_specs(&self) -> Option<Vec<TensorSpec>> {
        self.read().input.clone().map(|s| vec![s])
    }

    fn input_names(&self) -> Vec<String> {
        vec![self
            .read()
            .input_name
            .clone()
            .unwrap_or_else(|| "input_layer".into())]
    }

    fn output_names(&self) -> Vec<String> {
        self.read()
            .layers
            .last()
            .map(|l| vec![l.name().to_string()])
            .unwrap_or_default()
    }

    fn summary_rows(&self) -> Vec<SummaryRow> {
        let st = self.read();
        st.layers
            .iter()
            .enumerate()
            .map(|(i, l)| SummaryRow {
                name: l.name().to_string(),
                class: l.class_name().to_string(),
                output_shape: st
                    .specs
                    .get(i)
                    .map_or("?".into(), |s| format_dims(&s.shape)),
                params: l.count_params(),
                connected: None,
            })
            .collect()
    }
}
