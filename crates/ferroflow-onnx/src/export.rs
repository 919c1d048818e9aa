//! Export: trace, lower every node through the [`registry`](crate::registry), write the
//! model.

use crate::builder::Builder;
use crate::proto::{
    self, tensor_shape_proto::dimension, type_proto, GraphProto, ModelProto, OperatorSetIdProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::registry::{lower, Lowering, ValueMeta};
use crate::tensor::{onnx_dtype, to_proto};
use ferroflow_core::{Error, Result, Tensor};
use ferroflow_graph::export::{trace_for_export, ExportGraph, ExportTrace, EXAMPLE_SIZES};
use ferroflow_graph::{NodeKind, TensorSpec};
use ferroflow_keras::Model;

/// How to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The ONNX opset (13 to 21).
    pub opset: i64,
    /// Keep `None` axes of the input specs symbolic (else they are fixed at 1).
    pub dynamic_batch: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            opset: crate::DEFAULT_OPSET,
            dynamic_batch: true,
        }
    }
}

/// Exports a Keras model's inference pass (`model(x, training=False)`), with the model's
/// input and output names.
pub fn export_model(model: &Model, opts: &ExportOptions) -> Result<ModelProto> {
    let specs = model.input_specs().ok_or_else(|| {
        Error::invalid(
            "onnx export",
            format!(
                "model '{}' is not built: its input shapes are unknown",
                model.name()
            ),
        )
    })?;
    let specs: Vec<TensorSpec> = specs
        .iter()
        .map(|s| TensorSpec::new(&s.shape, s.dtype))
        .collect();
    export_function(
        model.name(),
        |x| model.call(x, false),
        &specs,
        &model.input_names(),
        &model.output_names(),
        opts,
    )
}

/// Exports a closure over tensors of `specs` (`None` axes stay symbolic), naming its
/// inputs and outputs (`input_i` / `output_i` where names run short).
pub fn export_function(
    name: &str,
    f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    specs: &[TensorSpec],
    input_names: &[String],
    output_names: &[String],
    opts: &ExportOptions,
) -> Result<ModelProto> {
    if !crate::OPSETS.contains(&opts.opset) {
        return Err(Error::invalid(
            "onnx export",
            format!(
                "opset {} is not supported (supported: {} to {})",
                opts.opset,
                crate::OPSETS.start(),
                crate::OPSETS.end()
            ),
        ));
    }
    let eg = trace_for_export(
        name,
        f,
        specs,
        ExportTrace {
            exporter: "onnx export",
            dynamic_batch: opts.dynamic_batch,
            freeze_variables: false,
        },
    )?;
    let input_names: Vec<String> = (0..specs.len())
        .map(|i| {
            input_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("input_{i}"))
        })
        .collect();
    let output_names: Vec<String> = (0..eg.graph.outputs.len())
        .map(|i| {
            output_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("output_{i}"))
        })
        .collect();
    let graph = lower_graph(name, &eg, &input_names, &output_names, opts.opset)?;
    Ok(ModelProto {
        ir_version: Some(ir_version(opts.opset)),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opts.opset),
        }],
        producer_name: Some("ferroflow".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        ..Default::default()
    })
}

/// The model's protobuf encoding (the `.onnx` file's bytes).
pub fn to_bytes(model: &ModelProto) -> Vec<u8> {
    prost::Message::encode_to_vec(model)
}

/// Writes a model to `path`.
pub fn save_model(model: &ModelProto, path: impl AsRef<std::path::Path>) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(model)).map_err(|e| {
        Error::invalid(
            "onnx export",
            format!("cannot write {}: {e}", path.display()),
        )
    })
}

/// The IR version that goes with an opset (ONNX's versioning table).
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

fn lower_graph(
    name: &str,
    eg: &ExportGraph,
    input_names: &[String],
    output_names: &[String],
    opset: i64,
) -> Result<GraphProto> {
    let (g, meta) = (&eg.graph, &eg.meta);
    let mut b = Builder::new(opset, input_names.iter().chain(output_names).cloned());
    let names = eg.lower_nodes(
        "onnx export",
        name,
        |i, node, inputs: Vec<String>| match &node.kind {
            NodeKind::Input(k) => Ok(vec![input_names[*k].clone()]),
            NodeKind::Const(t) if meta[i][0].dynamic.contains(&true) => {
                batch_sized_fill(&mut b, t, &meta[i][0], eg, input_names).map(|n| vec![n])
            }
            NodeKind::Const(t) => Ok(vec![b.initializer("const", to_proto("", t))]),
            NodeKind::ReadVariable(v) => {
                Ok(vec![b.initializer(v.name(), to_proto("", &v.value()))])
            }
            NodeKind::Op { name, kind, .. } => {
                let input_meta: Vec<ValueMeta> = node
                    .inputs
                    .iter()
                    .map(|v| meta[v.node][v.output].clone())
                    .collect();
                lower(
                    &mut b,
                    kind,
                    &Lowering {
                        op: name,
                        inputs: &inputs,
                        input_meta: &input_meta,
                        output_meta: &meta[i],
                    },
                )
            }
            other => Err(Error::invalid(
                "onnx export",
                format!(
                    "{} has no ONNX form (export an inference function)",
                    other.name()
                ),
            )),
        },
    )?;
    for (v, out) in g.outputs.iter().zip(output_names) {
        b.node_to("Identity", &[&names[v.node][v.output]], out, vec![]);
    }
    let input_meta = g
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match n.kind {
            NodeKind::Input(k) => Some((k, &meta[i][0])),
            _ => None,
        });
    let mut inputs: Vec<(usize, &ValueMeta)> = input_meta.collect();
    inputs.sort_by_key(|(k, _)| *k);
    Ok(GraphProto {
        name: Some(name.to_string()),
        node: std::mem::take(&mut b.nodes),
        initializer: std::mem::take(&mut b.initializers),
        input: inputs
            .iter()
            .map(|(k, m)| value_info(&input_names[*k], m))
            .collect(),
        output: g
            .outputs
            .iter()
            .zip(output_names)
            .map(|(v, n)| value_info(n, &meta[v.node][v.output]))
            .collect(),
        ..Default::default()
    })
}

/// A constant whose size follows the batch (an RNN's zero initial state): it must hold
/// one value throughout, and is built at run time as that value expanded to a shape whose
/// dynamic sizes are read from the one input axis that is dynamic.
fn batch_sized_fill(
    b: &mut Builder,
    t: &Tensor,
    m: &ValueMeta,
    eg: &ExportGraph,
    input_names: &[String],
) -> Result<String> {
    let refuse = |why: &str| {
        Error::invalid(
            "onnx export",
            format!(
                "a constant of shape {:?} changes with the batch size ({why}); export with a fixed batch size",
                t.shape()
            ),
        )
    };
    let values = t.cast(ferroflow_core::DType::F64)?.to_vec::<f64>()?;
    if values.iter().any(|v| v.to_bits() != values[0].to_bits()) {
        return Err(refuse("its values differ"));
    }
    let Some((k, axis)) = eg.dynamic_input_axis() else {
        return Err(refuse("input axes other than the batch are dynamic"));
    };
    let shape = b.node("Shape", &[&input_names[k]], vec![]);
    let at = b.int64s("axis", &[axis as i64]);
    let batch = b.node(
        "Gather",
        &[&shape, &at],
        vec![crate::builder::int("axis", 0)],
    );
    let mut dims = Vec::new();
    for (&d, &dy) in m.shape.iter().zip(&m.dynamic) {
        if !dy {
            dims.push(b.int64s("dim", &[d as i64]));
        } else if d == EXAMPLE_SIZES.0 {
            dims.push(batch.clone());
        } else {
            return Err(refuse("a size that is a multiple of the batch"));
        }
    }
    let dims: Vec<&str> = dims.iter().map(String::as_str).collect();
    let target = b.node("Concat", &dims, vec![crate::builder::int("axis", 0)]);
    let scalar = Tensor::scalar(values.first().copied().unwrap_or(0.0)).cast(t.dtype())?;
    let v = b.initializer("fill", to_proto("", &scalar));
    Ok(b.node("Expand", &[&v, &target], vec![]))
}

/// A graph input's or output's declared type: symbolic `batch` for a dynamic first axis,
/// an unnamed dimension for any other dynamic axis.
fn value_info(name: &str, m: &ValueMeta) -> ValueInfoProto {
    let dim = |(i, (&d, &dy)): (usize, (&usize, &bool))| proto::tensor_shape_proto::Dimension {
        value: Some(match (dy, i) {
            (false, _) => dimension::Value::DimValue(d as i64),
            (true, 0) => dimension::Value::DimParam("batch".into()),
            (true, _) => dimension::Value::DimParam(format!("{name}_dim{i}")),
        }),
        ..Default::default()
    };
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(onnx_dtype(m.dtype) as i32),
                shape: Some(TensorShapeProto {
                    dim: m
                        .shape
                        .iter()
                        .zip(&m.dynamic)
                        .enumerate()
                        .map(dim)
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
