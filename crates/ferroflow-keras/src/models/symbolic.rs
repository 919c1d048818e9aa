//! Symbolic tensors (`KerasTensor`) and the nodes that connect layers in a functional graph.

use crate::layer::{format_dims, Dims, Layer, LayerExt, LayerRef, TensorSpec};
use crate::layers::InputLayer;
use ferroflow_core::{DType, Error, Result};
use std::sync::Arc;

/// One call of a layer on symbolic inputs.
pub struct Node {
    pub(crate) layer: LayerRef,
    pub(crate) inputs: Vec<KerasTensor>,
    pub(crate) outputs: Vec<TensorSpec>,
    /// Which call of `layer` this is (0 for the first; shared layers have more).
    pub(crate) index: usize,
}

/// A symbolic tensor: the output of a layer call in a functional graph, with a static
/// shape and dtype (`keras.KerasTensor`).
#[derive(Clone)]
pub struct KerasTensor {
    pub(crate) node: Arc<Node>,
    pub(crate) index: usize,
}

impl std::fmt::Debug for KerasTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.spec();
        write!(
            f,
            "<KerasTensor shape={} dtype={} from '{}'>",
            format_dims(&s.shape),
            s.dtype,
            self.node.layer.name()
        )
    }
}

impl KerasTensor {
    /// The tensor's spec.
    pub fn spec(&self) -> &TensorSpec {
        &self.node.outputs[self.index]
    }

    /// The tensor's static shape.
    pub fn shape(&self) -> &Dims {
        &self.spec().shape
    }

    /// The tensor's dtype.
    pub fn dtype(&self) -> DType {
        self.spec().dtype
    }

    /// The layer that produced it.
    pub fn layer(&self) -> &LayerRef {
        &self.node.layer
    }
}

/// `keras.Input`: the entry point of a functional model.
pub struct Input;

impl Input {
    /// A float32 input with per-sample `shape` (the batch dimension is added, unknown).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(shape: &[usize]) -> KerasTensor {
        Self::with(shape.iter().map(|&d| Some(d)).collect(), DType::F32, None)
    }

    /// An input with per-sample dims (`None` for unknown), dtype and optional name.
    pub fn with(shape: Dims, dtype: DType, name: Option<&str>) -> KerasTensor {
        let mut batch_shape = vec![None];
        batch_shape.extend(shape);
        Self::from_layer(Arc::new(InputLayer::new(batch_shape, dtype, name)))
    }

    pub(crate) fn from_layer(layer: Arc<InputLayer>) -> KerasTensor {
        let spec = layer.spec();
        let node = Node {
            layer,
            inputs: Vec::new(),
            outputs: vec![spec],
            index: 0,
        };
        KerasTensor {
            node: Arc::new(node),
            index: 0,
        }
    }
}

/// Calling a layer on symbolic tensors (`y = Dense(10)(x)` in Keras).
pub trait SymbolicCall {
    /// Calls the layer on several symbolic inputs; returns its symbolic outputs.
    fn call_many(self, inputs: &[KerasTensor]) -> Result<Vec<KerasTensor>>;

    /// Calls a single-input, single-output layer on a symbolic tensor.
    fn apply(self, input: &KerasTensor) -> Result<KerasTensor>
    where
        Self: Sized,
    {
        let mut out = self.call_many(std::slice::from_ref(input))?;
        if out.len() != 1 {
            return Err(Error::invalid(
                "apply",
                format!("layer returned {} outputs; use call_many", out.len()),
            ));
        }
        Ok(out.remove(0))
    }
}

/// Adds a node calling `layer` on `inputs`, building the layer for their specs.
pub fn connect(layer: LayerRef, inputs: &[KerasTensor]) -> Result<Vec<KerasTensor>> {
    let specs: Vec<TensorSpec> = inputs.iter().map(|t| t.spec().clone()).collect();
    layer.ensure_built(&specs)?;
    let outputs = layer.compute_output_spec(&specs)?;
    let node = Arc::new(Node {
        index: layer.base().next_node_index(),
        layer,
        inputs: inputs.to_vec(),
        outputs,
    });
    Ok((0..node.outputs.len())
        .map(|index| KerasTensor {
            node: node.clone(),
            index,
        })
        .collect())
}

impl<L: Layer + 'static> SymbolicCall for L {
    fn call_many(self, inputs: &[KerasTensor]) -> Result<Vec<KerasTensor>> {
        connect(Arc::new(self), inputs)
    }
}

impl SymbolicCall for &LayerRef {
    fn call_many(self, inputs: &[KerasTensor]) -> Result<Vec<KerasTensor>> {
        connect(self.clone(), inputs)
    }
}
