//! Keras model → TFLite: walks the model's layer graph, lowers each layer to builtin
//! operators, then folds BatchNormalization into the convolutions and dense layers before
//! it and fuses activations into the ops that can carry them (as TensorFlow's converter
//! does).

mod fold;
mod layers;

use crate::ir::{ElementType, LiteModel, LiteOp, LiteTensor, Op};
use ferroflow_core::{DType, Error, Result, Tensor};
use ferroflow_keras::layer::{LayerExt, TensorSpec};
use ferroflow_keras::models::Model;

/// Converts a built Sequential or functional model into a float32 TFLite model.
///
/// Inputs and outputs keep the model's names; a dynamic batch dimension is written as 1
/// with -1 in the shape signature. A layer, option or activation TFLite cannot express is
/// an error naming the layer.
pub fn from_keras(model: &Model) -> Result<LiteModel> {
    let graph = model.network().layer_graph()?;
    let mut b = Builder {
        model: LiteModel {
            description: format!("ferroflow {} ({})", env!("CARGO_PKG_VERSION"), model.name()),
            ..Default::default()
        },
    };
    // Tensor index of every (node, output).
    let mut produced: Vec<Vec<usize>> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let Some(layer) = &node.layer else {
            let spec = &node.outputs[0];
            let t = b.activation_tensor(&node.name, spec)?;
            produced.push(vec![t]);
            continue;
        };
        let inputs: Vec<usize> = node.inputs.iter().map(|&(n, o)| produced[n][o]).collect();
        let outs = layers::lower(&mut b, layer.as_ref(), &inputs, &node.outputs)
            .map_err(|e| in_layer(e, layer.name(), layer.class_name()))?;
        produced.push(outs);
    }
    b.model.inputs = graph.inputs.iter().map(|&(n, o)| produced[n][o]).collect();
    b.model.outputs = graph.outputs.iter().map(|&(n, o)| produced[n][o]).collect();
    let names: Vec<String> = model.network().output_names();
    for (k, &t) in b.model.outputs.clone().iter().enumerate() {
        if let Some(name) = names.get(k) {
            b.model.tensors[t].name = name.clone();
        }
    }
    fold::fold_affine_into_weights(&mut b.model);
    fold::fuse_activations(&mut b.model);
    fold::drop_unused(&mut b.model);
    Ok(b.model)
}

/// Says which layer an error came from.
fn in_layer(e: Error, name: &str, class: &str) -> Error {
    e.context(format!("exporting layer '{name}' ({class}) to TFLite"))
}

/// Accumulates tensors and operators while layers are lowered.
pub(crate) struct Builder {
    pub(crate) model: LiteModel,
}

impl Builder {
    /// A new activation tensor for `spec` (unknown dims written as 1, signature -1).
    pub(crate) fn activation_tensor(&mut self, name: &str, spec: &TensorSpec) -> Result<usize> {
        let shape: Vec<i32> = spec.shape.iter().map(|d| d.unwrap_or(1) as i32).collect();
        let dynamic = spec.shape.iter().any(|d| d.is_none());
        let signature = if dynamic {
            spec.shape
                .iter()
                .map(|d| d.map_or(-1, |v| v as i32))
                .collect()
        } else {
            Vec::new()
        };
        Ok(self.model.add_tensor(LiteTensor {
            name: name.to_string(),
            shape,
            signature,
            dtype: element_type(spec.dtype)?,
            data: None,
            quant: None,
        }))
    }

    /// An activation tensor shaped like tensor `like` (same signature), for intermediates.
    pub(crate) fn like(&mut self, name: &str, like: usize) -> usize {
        let t = &self.model.tensors[like];
        let fresh = LiteTensor {
            name: name.to_string(),
            data: None,
            quant: None,
            ..t.clone()
        };
        self.model.add_tensor(fresh)
    }

    /// An activation tensor with an explicit shape whose first dimension follows the batch
    /// of tensor `batch_of` (dynamic when that is).
    pub(crate) fn shaped(&mut self, name: &str, shape: &[i32], batch_of: usize) -> usize {
        let dynamic = self.model.tensors[batch_of].signature.first() == Some(&-1);
        let signature = if dynamic && !shape.is_empty() {
            let mut s = shape.to_vec();
            s[0] = -1;
            s
        } else {
            Vec::new()
        };
        let dtype = self.model.tensors[batch_of].dtype;
        self.model.add_tensor(LiteTensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            signature,
            dtype,
            data: None,
            quant: None,
        })
    }

    /// A constant float32 tensor with the values of `t` (any float dtype).
    pub(crate) fn constant(&mut self, name: &str, t: &Tensor) -> Result<usize> {
        let values = t.cast(DType::F32)?.to_vec::<f32>()?;
        let shape: Vec<i32> = t.shape().iter().map(|&d| d as i32).collect();
        Ok(self.const_f32(name, &shape, &values))
    }

    /// A constant float32 tensor.
    pub(crate) fn const_f32(&mut self, name: &str, shape: &[i32], values: &[f32]) -> usize {
        self.model
            .add_tensor(LiteTensor::constant_f32(name, shape, values))
    }

    /// A constant int32 tensor.
    pub(crate) fn const_i32(&mut self, name: &str, shape: &[i32], values: &[i32]) -> usize {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.model.add_tensor(LiteTensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            signature: Vec::new(),
            dtype: ElementType::I32,
            data: Some(data),
            quant: None,
        })
    }

    /// Appends an operator.
    pub(crate) fn op(&mut self, op: Op, inputs: &[i32], outputs: &[usize]) {
        self.model.ops.push(LiteOp {
            op,
            inputs: inputs.to_vec(),
            outputs: outputs.iter().map(|&o| o as i32).collect(),
        });
    }
}

/// The TFLite element type for a ferroflow dtype.
pub(crate) fn element_type(dtype: DType) -> Result<ElementType> {
    Ok(match dtype {
        DType::F32 => ElementType::F32,
        DType::I32 => ElementType::I32,
        DType::I64 => ElementType::I64,
        DType::I8 => ElementType::I8,
        DType::U8 => ElementType::U8,
        DType::Bool => ElementType::Bool,
        other => {
            return Err(Error::invalid(
                "tflite export",
                format!("dtype {other} has no TFLite tensor type here"),
            ))
        }
    })
}
