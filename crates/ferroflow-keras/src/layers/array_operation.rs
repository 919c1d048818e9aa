//! Keras 3 array operations saved as functional nodes (module `keras.src.ops.numpy`) whose
//! options are in the node's config: `ExpandDims`, `ZerosLike`, `OnesLike`, `Any`, `All`,
//! `Concatenate`, `LogicalOr` and `LogicalAnd`. Keras 3 writes the masks that its merge
//! layers compute this way (a `Concatenate` layer's mask is `any(concatenate([...]), -1)`
//! over the inputs' expanded masks) and passes them to the next layer as `mask=`.

use crate::config::{ConfigReader, Map};
use crate::layer::{CallContext, Dims, Layer, LayerBase, TensorSpec};
use crate::layers::merging::concatenated_spec;
use crate::layers::operation::{broadcast, MODULE};
use ferroflow_core::{DType, Error, Result, Tensor};
use serde_json::{json, Value};

/// What an [`ArrayOperation`] computes.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayOp {
    /// `keras.ops.expand_dims(x, axis)`.
    ExpandDims {
        /// Where the new unit axis goes (negative from the end of the output).
        axis: i64,
    },
    /// `zeros_like` / `ones_like`.
    Fill {
        /// Ones (else zeros).
        one: bool,
        /// The output dtype; the input's when `None`.
        dtype: Option<DType>,
    },
    /// `any` / `all`, bool output.
    Reduce {
        /// `all` (else `any`).
        all: bool,
        /// The reduced axes; every axis when `None`.
        axes: Option<Vec<i64>>,
        /// Whether reduced axes stay as size 1.
        keepdims: bool,
    },
    /// `keras.ops.concatenate(xs, axis)`.
    Concatenate {
        /// The joined axis.
        axis: i64,
    },
    /// `logical_or` / `logical_and` of two tensors, broadcasting.
    Logical {
        /// `logical_and` (else `logical_or`).
        and: bool,
    },
}

impl ArrayOp {
    /// The Keras class name of the operation.
    pub fn class(&self) -> &'static str {
        match self {
            ArrayOp::ExpandDims { .. } => "ExpandDims",
            ArrayOp::Fill { one: false, .. } => "ZerosLike",
            ArrayOp::Fill { one: true, .. } => "OnesLike",
            ArrayOp::Reduce { all: false, .. } => "Any",
            ArrayOp::Reduce { all: true, .. } => "All",
            ArrayOp::Concatenate { .. } => "Concatenate",
            ArrayOp::Logical { and: false } => "LogicalOr",
            ArrayOp::Logical { and: true } => "LogicalAnd",
        }
    }

    /// The operation of Keras class `class` with its options read from `r`, or `None` when
    /// `class` is not one of these.
    fn read(class: &str, r: &ConfigReader<'_>, dtype: Option<&Value>) -> Result<Option<ArrayOp>> {
        Ok(Some(match class {
            "ExpandDims" => ArrayOp::ExpandDims {
                axis: r.i64_or("axis", 0)?,
            },
            "ZerosLike" | "OnesLike" => ArrayOp::Fill {
                one: class == "OnesLike",
                dtype: fill_dtype(dtype)?,
            },
            "Any" | "All" => ArrayOp::Reduce {
                all: class == "All",
                axes: r.i64_list("axis")?,
                keepdims: r.bool_or("keepdims", false)?,
            },
            "Concatenate" => ArrayOp::Concatenate {
                axis: r.i64_or("axis", 0)?,
            },
            "LogicalOr" | "LogicalAnd" => ArrayOp::Logical {
                and: class == "LogicalAnd",
            },
            _ => return Ok(None),
        }))
    }

    /// The option keys Keras writes for it.
    fn options(&self) -> Map {
        let mut m = Map::new();
        match self {
            ArrayOp::ExpandDims { axis } | ArrayOp::Concatenate { axis } => {
                m.insert("axis".into(), json!(axis));
            }
            ArrayOp::Fill { dtype, .. } => {
                m.insert("dtype".into(), json!(dtype.map(DType::name)));
            }
            ArrayOp::Reduce { axes, keepdims, .. } => {
                let axis = match axes.as_deref() {
                    Some([a]) => json!(a),
                    other => json!(other),
                };
                m.insert("axis".into(), axis);
                m.insert("keepdims".into(), json!(keepdims));
            }
            ArrayOp::Logical { .. } => {}
        }
        m
    }
}

/// The output dtype of a `zeros_like` / `ones_like` node (null: the input's).
fn fill_dtype(dtype: Option<&Value>) -> Result<Option<DType>> {
    match dtype.filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(DType::from_name)
            .map(Some)
            .ok_or_else(|| {
                Error::invalid(
                    "Keras operation",
                    format!("option 'dtype': unknown dtype {v}"),
                )
            }),
    }
}

/// One array operation node of a functional model.
pub struct ArrayOperation {
    base: LayerBase,
    op: ArrayOp,
}

fn axis_in(class: &str, name: &str, axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a as usize >= rank {
        return Err(Error::invalid(
            "Keras operation",
            format!("{class} '{name}': axis {axis} out of range for rank {rank}"),
        ));
    }
    Ok(a as usize)
}

impl ArrayOperation {
    /// The operation for a functional config's node `entry` of Keras class `class`, or
    /// `None` when the class is not an array operation.
    pub fn from_entry(class: &str, entry: &Value) -> Result<Option<Self>> {
        // The dtype key of `zeros_like` is the output's dtype, not a layer's dtype policy.
        let mut config = entry.get("config").cloned().unwrap_or_else(|| json!({}));
        let dtype = config.as_object_mut().and_then(|m| m.remove("dtype"));
        let r = ConfigReader::new("Keras operation", &config)?;
        let Some(op) = ArrayOp::read(class, &r, dtype.as_ref())? else {
            return Ok(None);
        };
        r.finish()?;
        let name = r
            .name()
            .or_else(|| entry.get("name").and_then(Value::as_str).map(String::from));
        let nodes = entry
            .get("inbound_nodes")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if nodes.iter().any(|n| {
            n.get("kwargs")
                .and_then(Value::as_object)
                .is_some_and(|k| !k.is_empty())
        }) {
            return Err(Error::invalid(
                op.class(),
                format!(
                    "operation '{}' has keyword arguments, which are not supported",
                    name.as_deref().unwrap_or("?")
                ),
            ));
        }
        Ok(Some(ArrayOperation {
            base: LayerBase::new(op.class(), name.as_deref()),
            op,
        }))
    }

    /// What it computes.
    pub fn op(&self) -> &ArrayOp {
        &self.op
    }

    fn one_input<'t, T>(&self, inputs: &'t [T]) -> Result<&'t T> {
        match inputs {
            [x] => Ok(x),
            _ => Err(Error::invalid(
                self.op.class(),
                format!(
                    "operation '{}' takes one tensor, got {}",
                    self.base.name(),
                    inputs.len()
                ),
            )),
        }
    }

    fn two_inputs<'t, T>(&self, inputs: &'t [T]) -> Result<(&'t T, &'t T)> {
        match inputs {
            [a, b] => Ok((a, b)),
            _ => Err(Error::invalid(
                self.op.class(),
                format!(
                    "operation '{}' takes two tensors, got {}",
                    self.base.name(),
                    inputs.len()
                ),
            )),
        }
    }
}

impl Layer for ArrayOperation {
    fn class_name(&self) -> &'static str {
        self.op.class()
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        let y = match &self.op {
            ArrayOp::ExpandDims { axis } => self.one_input(inputs)?.expand_dims(*axis as isize)?,
            ArrayOp::Fill { one, dtype } => {
                let x = self.one_input(inputs)?;
                let v = if *one { 1.0 } else { 0.0 };
                Tensor::full(x.shape(), v, dtype.unwrap_or(x.dtype()))?
            }
            ArrayOp::Reduce {
                all,
                axes,
                keepdims,
            } => {
                let x = self.one_input(inputs)?;
                let x = if x.dtype() == DType::Bool {
                    x.clone()
                } else {
                    x.cast(DType::Bool)?
                };
                let axes: Vec<isize> = match axes {
                    Some(a) => a.iter().map(|&a| a as isize).collect(),
                    None => (0..x.rank() as isize).collect(),
                };
                match all {
                    true => x.all(axes, *keepdims)?,
                    false => x.any(axes, *keepdims)?,
                }
            }
            ArrayOp::Concatenate { axis } => Tensor::concat(inputs, *axis as isize)?,
            ArrayOp::Logical { and } => {
                let (a, b) = self.two_inputs(inputs)?;
                match and {
                    true => a.logical_and(b)?,
                    false => a.logical_or(b)?,
                }
            }
        };
        Ok(vec![y])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let (class, name) = (self.op.class(), self.base.name());
        let spec = match &self.op {
            ArrayOp::ExpandDims { axis } => {
                let x = self.one_input(inputs)?;
                let mut shape = x.shape.clone();
                shape.insert(axis_in(class, name, *axis, shape.len() + 1)?, Some(1));
                TensorSpec::new(shape, x.dtype)
            }
            ArrayOp::Fill { dtype, .. } => {
                let x = self.one_input(inputs)?;
                TensorSpec::new(x.shape.clone(), dtype.unwrap_or(x.dtype))
            }
            ArrayOp::Reduce { axes, keepdims, .. } => {
                let x = self.one_input(inputs)?;
                let rank = x.shape.len();
                let reduced: Vec<usize> = match axes {
                    Some(a) => a
                        .iter()
                        .map(|&a| axis_in(class, name, a, rank))
                        .collect::<Result<_>>()?,
                    None => (0..rank).collect(),
                };
                let shape: Dims = x
                    .shape
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| match (reduced.contains(&i), keepdims) {
                        (false, _) => Some(*d),
                        (true, true) => Some(Some(1)),
                        (true, false) => None,
                    })
                    .collect();
                TensorSpec::new(shape, DType::Bool)
            }
            ArrayOp::Concatenate { axis } => concatenated_spec(name, *axis, inputs)?,
            ArrayOp::Logical { .. } => {
                let (a, b) = self.two_inputs(inputs)?;
                TensorSpec::new(broadcast(class, name, &a.shape, &b.shape)?, DType::Bool)
            }
        };
        Ok(vec![spec])
    }

    /// Keras writes the name and the operation's options.
    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("name".into(), Value::from(self.base.name()));
        m.extend(self.op.options());
        m
    }

    fn includes_base_config(&self) -> bool {
        false
    }

    fn positional_inputs(&self) -> bool {
        !matches!(self.op, ArrayOp::Concatenate { .. })
    }

    fn number_of_inputs(&self) -> Option<usize> {
        match self.op {
            ArrayOp::Concatenate { .. } => None,
            ArrayOp::Logical { .. } => Some(2),
            _ => Some(1),
        }
    }

    fn keras_module(&self) -> &'static str {
        MODULE
    }

    /// A concatenation takes its tensors as one list, even a list of one.
    fn node_args(&self, tensors: Vec<Value>) -> Value {
        match self.op {
            ArrayOp::Concatenate { .. } => json!([tensors]),
            _ => Value::Array(tensors),
        }
    }
}
