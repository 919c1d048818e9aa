//! Keras 3 operations called directly on symbolic tensors in a functional model: `x + 3.0`,
//! `x * (1.0 / 6.0)`, `keras.ops.maximum(a, b)`. Keras saves each such call as a node of
//! class `Add`, `Multiply`... from module `keras.src.ops.numpy`, with its constants among
//! the node's arguments (MobileNetV3's hard sigmoid is `ReLU6(x + 3) * (1 / 6)`, two of
//! them). [`Operation`] is that node: the elementwise op and its arguments, tensors and
//! scalars in call order.

use crate::config::Map;
use crate::layer::{format_dims, CallContext, Dims, Layer, LayerBase, TensorSpec};
use ferroflow_core::{BinaryOp, CmpOp, DType, Error, Result, Tensor};
use serde_json::{json, Value};

/// The Keras module operation nodes come from.
pub const MODULE: &str = "keras.src.ops.numpy";

/// The elementwise op of an operation node: arithmetic, or a comparison (bool output;
/// Keras 3 saves a padding mask as `NotEqual(ids, 0)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elementwise {
    /// Arithmetic with broadcasting.
    Binary(BinaryOp),
    /// A comparison with broadcasting.
    Compare(CmpOp),
}

macro_rules! operations {
    ($(($class:literal, $kind:ident($op:ident))),* $(,)?) => {
        /// The Keras operation classes [`Operation`] runs (one definition: class name and op).
        pub const CLASSES: &[(&str, Elementwise)] =
            &[$(($class, Elementwise::$kind($kind::$op))),*];
    };
}

type Binary = BinaryOp;
type Compare = CmpOp;

operations!(
    ("Add", Binary(Add)),
    ("Subtract", Binary(Sub)),
    ("Multiply", Binary(Mul)),
    ("Divide", Binary(Div)),
    ("TrueDivide", Binary(Div)),
    ("Power", Binary(Pow)),
    ("Maximum", Binary(Maximum)),
    ("Minimum", Binary(Minimum)),
    ("Equal", Compare(Equal)),
    ("NotEqual", Compare(NotEqual)),
    ("Greater", Compare(Greater)),
    ("GreaterEqual", Compare(GreaterEqual)),
    ("Less", Compare(Less)),
    ("LessEqual", Compare(LessEqual)),
);

/// One argument of an operation call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OperationArg {
    /// The next tensor input.
    Tensor,
    /// A constant.
    Scalar(f64),
}

/// A binary elementwise operation node with its constant arguments.
pub struct Operation {
    base: LayerBase,
    class: &'static str,
    op: Elementwise,
    args: [OperationArg; 2],
}

fn invalid(class: &'static str, msg: String) -> Error {
    Error::invalid(class, msg)
}

impl Operation {
    /// The Keras class name of `class` if it is an operation [`Operation`] runs.
    pub fn class(class: &str) -> Option<(&'static str, Elementwise)> {
        CLASSES.iter().copied().find(|(c, _)| *c == class)
    }

    /// Rebuilds the node `entry` (`{"class_name", "config", "inbound_nodes"}`) of a
    /// functional config: its one inbound node's arguments give the constants.
    pub fn from_entry(entry: &Value) -> Result<Self> {
        let class_name = entry
            .get("class_name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let (class, op) = Operation::class(class_name).ok_or_else(|| {
            invalid(
                "Keras config",
                format!(
                    "operation '{class_name}' of module {MODULE} is not supported (supported: {})",
                    CLASSES.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let name = entry
            .get("config")
            .and_then(|c| c.get("name"))
            .or_else(|| entry.get("name"))
            .and_then(Value::as_str);
        let what = || format!("operation '{}' ({class})", name.unwrap_or("?"));
        let nodes = entry
            .get("inbound_nodes")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let [node] = nodes else {
            return Err(invalid(
                class,
                format!(
                    "{} is called {} times; Keras calls an operation once",
                    what(),
                    nodes.len()
                ),
            ));
        };
        if node
            .get("kwargs")
            .and_then(Value::as_object)
            .is_some_and(|k| !k.is_empty())
        {
            return Err(invalid(
                class,
                format!("{} has keyword arguments, which are not supported", what()),
            ));
        }
        let args = node
            .get("args")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let parsed: Vec<OperationArg> = args
            .iter()
            .map(|a| match a {
                Value::Number(n) => n.as_f64().map(OperationArg::Scalar),
                Value::Object(o)
                    if o.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") =>
                {
                    Some(OperationArg::Tensor)
                }
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(|| {
                invalid(
                    class,
                    format!(
                        "{}: arguments must be tensors or numbers, got {}",
                        what(),
                        Value::from(args.to_vec())
                    ),
                )
            })?;
        let args: [OperationArg; 2] = parsed.try_into().map_err(|p: Vec<_>| {
            invalid(
                class,
                format!("{} takes two arguments, got {}", what(), p.len()),
            )
        })?;
        if !args.contains(&OperationArg::Tensor) {
            return Err(invalid(class, format!("{} has no tensor argument", what())));
        }
        Ok(Operation {
            base: LayerBase::new(class, name),
            class,
            op,
            args,
        })
    }

    /// The elementwise op.
    pub fn op(&self) -> Elementwise {
        self.op
    }

    /// The arguments in call order.
    pub fn args(&self) -> &[OperationArg; 2] {
        &self.args
    }

    /// The call's arguments with the tensor inputs in their places.
    fn operands<T: Clone>(
        &self,
        inputs: &[T],
        scalar: impl Fn(f64) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut next = inputs.iter();
        let operands = self
            .args
            .iter()
            .map(|a| match a {
                OperationArg::Tensor => next.next().cloned().ok_or_else(|| {
                    invalid(
                        self.class,
                        format!("operation '{}' is missing a tensor input", self.base.name()),
                    )
                }),
                OperationArg::Scalar(v) => scalar(*v),
            })
            .collect::<Result<Vec<_>>>()?;
        if next.next().is_some() {
            return Err(invalid(
                self.class,
                format!(
                    "operation '{}' got {} tensor inputs, more than its arguments take",
                    self.base.name(),
                    inputs.len()
                ),
            ));
        }
        Ok(operands)
    }

    fn tensor_inputs(&self) -> usize {
        self.args
            .iter()
            .filter(|a| **a == OperationArg::Tensor)
            .count()
    }
}

impl Layer for Operation {
    fn class_name(&self) -> &'static str {
        self.class
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        let dtype = inputs.first().map_or(DType::F32, Tensor::dtype);
        let v = self.operands(inputs, |s| Tensor::full(&[], s, dtype))?;
        Ok(vec![match self.op {
            Elementwise::Binary(op) => v[0].binary(op, &v[1])?,
            Elementwise::Compare(op) => v[0].compare(op, &v[1])?,
        }])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let dtype = inputs.first().map_or(DType::F32, |s| s.dtype);
        let v = self.operands(inputs, |_| Ok(TensorSpec::new(Vec::new(), dtype)))?;
        let dtype = match self.op {
            Elementwise::Binary(_) => dtype,
            Elementwise::Compare(_) => DType::Bool,
        };
        Ok(vec![TensorSpec::new(
            broadcast(self.class, self.base.name(), &v[0].shape, &v[1].shape)?,
            dtype,
        )])
    }

    /// Keras writes only the name of an operation.
    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("name".into(), Value::from(self.base.name()));
        m
    }

    fn includes_base_config(&self) -> bool {
        false
    }

    fn positional_inputs(&self) -> bool {
        true
    }

    fn number_of_inputs(&self) -> Option<usize> {
        Some(self.tensor_inputs())
    }

    fn keras_module(&self) -> &'static str {
        MODULE
    }

    fn node_args(&self, tensors: Vec<Value>) -> Value {
        let mut tensors = tensors.into_iter();
        Value::Array(
            self.args
                .iter()
                .map(|a| match a {
                    OperationArg::Tensor => tensors.next().unwrap_or(Value::Null),
                    OperationArg::Scalar(v) => json!(v),
                })
                .collect(),
        )
    }

    fn as_operation(&self) -> Option<&Operation> {
        Some(self)
    }
}

/// NumPy broadcasting of two static shapes (unknown dims stay unknown).
pub(crate) fn broadcast(class: &'static str, name: &str, a: &Dims, b: &Dims) -> Result<Dims> {
    let rank = a.len().max(b.len());
    let at = |s: &Dims, i: usize| -> Option<usize> {
        let pad = rank - s.len();
        if i < pad {
            Some(1)
        } else {
            s[i - pad]
        }
    };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (Some(1), d) | (d, Some(1)) => Ok(d),
            (Some(p), Some(q)) if p == q => Ok(Some(p)),
            (None, d) | (d, None) => Ok(d),
            _ => Err(invalid(
                class,
                format!(
                    "operation '{name}': shapes {} and {} do not broadcast",
                    format_dims(a),
                    format_dims(b)
                ),
            )),
        })
        .collect()
}
