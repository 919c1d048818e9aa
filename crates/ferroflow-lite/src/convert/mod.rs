//! Anything traceable → TFLite: a Keras model's inference pass or any closure is traced
//! into a graph, each op is lowered to builtin operators through the one
//! [`registry`](registry), then biases and BatchNormalization are folded into the
//! convolutions and dense layers before them and activations fused into the ops that can
//! carry them (as TensorFlow's converter does).

mod fold;
mod graph;
mod registry;
mod remap;

pub use graph::{from_function, from_graph};

use crate::ir::{ElementType, LiteModel, LiteOp, LiteTensor, Op};
use ferroflow_core::{DType, Error, Result, Tensor};
use ferroflow_keras::models::Model;

/// Converts a built Keras model (Sequential, functional or subclassed) into a float32
/// TFLite model: its inference pass (`model(x, training=False)`) is traced and lowered
/// (see [`from_function`]).
///
/// Inputs and outputs keep the model's names; a dynamic batch dimension is written as 1
/// with -1 in the shape signature. Ops TFLite cannot express are listed in one error.
pub fn from_keras(model: &Model) -> Result<LiteModel> {
    let specs = model.input_specs().ok_or_else(|| {
        Error::invalid(
            "tflite export",
            format!(
                "model '{}' is not built: its input shapes are unknown",
                model.name()
            ),
        )
    })?;
    let specs: Vec<ferroflow_graph::TensorSpec> = specs
        .iter()
        .map(|s| ferroflow_graph::TensorSpec::new(&s.shape, s.dtype))
        .collect();
    from_function(
        model.name(),
        |x| model.call(x, false),
        &specs,
        &model.input_names(),
        &model.output_names(),
    )
}

/// Accumulates tensors and operators while layers are lowered.
pub(crate) struct Builder {
    pub(crate) model: LiteModel,
    /// The tensor already written for a traced graph's constant (node, output).
    pub(crate) constants: std::collections::HashMap<(usize, usize), usize>,
}

impl Builder {
    /// An empty model described as ferroflow's conversion of `name`.
    pub(crate) fn new(name: &str) -> Builder {
        Builder {
            model: LiteModel {
                description: format!("ferroflow {} ({name})", env!("CARGO_PKG_VERSION")),
                ..Default::default()
            },
            constants: Default::default(),
        }
    }

    /// A constant tensor holding `t` (its own dtype).
    pub(crate) fn constant_any(&mut self, name: &str, t: &Tensor) -> Result<usize> {
        let t = if t.dtype() == DType::F64 {
            t.cast(DType::F32)?
        } else {
            t.clone()
        };
        Ok(self.model.add_tensor(LiteTensor {
            name: name.to_string(),
            shape: t.shape().iter().map(|&d| d as i32).collect(),
            signature: Vec::new(),
            dtype: element_type(t.dtype())?,
            data: Some(t.to_le_bytes()),
            quant: None,
        }))
    }

    /// A new activation tensor for a traced value: sizes that follow the batch are written
    /// as 1, with -1 in the shape signature.
    pub(crate) fn value_tensor(
        &mut self,
        name: &str,
        meta: &ferroflow_graph::export::ValueMeta,
    ) -> Result<usize> {
        let shape: Vec<i32> = meta
            .shape
            .iter()
            .zip(&meta.dynamic)
            .map(|(&d, &dy)| if dy { 1 } else { d as i32 })
            .collect();
        let signature = if meta.dynamic.contains(&true) {
            shape
                .iter()
                .zip(&meta.dynamic)
                .map(|(&d, &dy)| if dy { -1 } else { d })
                .collect()
        } else {
            Vec::new()
        };
        Ok(self.model.add_tensor(LiteTensor {
            name: name.to_string(),
            shape,
            signature,
            dtype: element_type(meta.dtype)?,
            data: None,
            quant: None,
        }))
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

    /// An int32 vector of `n` values (shapes computed at run time).
    pub(crate) fn int_vector(&mut self, name: &str, n: usize) -> Result<usize> {
        let meta = ferroflow_graph::export::ValueMeta {
            shape: vec![n],
            dynamic: vec![false],
            dtype: DType::I32,
        };
        self.value_tensor(name, &meta)
    }

    /// Size `axis` of tensor `x` at run time, as an int32 `[1]` (SHAPE, then STRIDED_SLICE).
    pub(crate) fn runtime_dim(&mut self, x: usize, axis: usize) -> Result<usize> {
        let rank = self.model.tensors[x].shape.len();
        let shape = self.int_vector("shape", rank)?;
        self.op(Op::Shape, &[x as i32], &[shape]);
        let n = self.int_vector("size", 1)?;
        let begin = self.const_i32("begin", &[1], &[axis as i32]);
        let end = self.const_i32("end", &[1], &[axis as i32 + 1]);
        let strides = self.const_i32("strides", &[1], &[1]);
        let slice = Op::StridedSlice {
            begin_mask: 0,
            end_mask: 0,
            ellipsis_mask: 0,
            new_axis_mask: 0,
            shrink_axis_mask: 0,
            offset: false,
        };
        let ins = [shape, begin, end, strides].map(|t| t as i32);
        self.op(slice, &ins, &[n]);
        Ok(n)
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
