//! ONNX export without onnxruntime: what the file declares, and the errors. The numerics
//! are checked in onnxruntime by `tools/check_onnx_export.py` (in `.ci/run`).

use ferroflow_core::{DType, Tensor};
use ferroflow_graph::TensorSpec;
use ferroflow_keras::layers::{Dense, Dropout};
use ferroflow_keras::{Input, Model};
use ferroflow_onnx::proto::{tensor_shape_proto::dimension::Value as Dim, type_proto, ModelProto};
use ferroflow_onnx::{export_function, export_model, to_bytes, ExportOptions};
use prost::Message;

fn mlp() -> Model {
    let m = Model::sequential(Some("mlp"));
    m.add(Input::new(&[8])).unwrap();
    m.add(Dense::new(16).activation("relu")).unwrap();
    m.add(Dropout::new(0.5).unwrap()).unwrap();
    m.add(Dense::new(3).activation("softmax")).unwrap();
    m
}

fn dims(m: &ModelProto, input: bool) -> Vec<Option<Dim>> {
    let g = m.graph.as_ref().unwrap();
    let v = if input { &g.input[0] } else { &g.output[0] };
    let Some(type_proto::Value::TensorType(t)) = &v.r#type.as_ref().unwrap().value else {
        panic!("a tensor type")
    };
    t.shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| d.value.clone())
        .collect()
}

fn op_types(m: &ModelProto) -> Vec<String> {
    let g = m.graph.as_ref().unwrap();
    g.node.iter().map(|n| n.op_type.clone().unwrap()).collect()
}

#[test]
fn a_sequential_model_exports_with_a_symbolic_batch_and_its_weights() {
    let model = export_model(&mlp(), &ExportOptions::default()).unwrap();
    // The bytes decode as an ONNX model again.
    let model = ModelProto::decode(&to_bytes(&model)[..]).unwrap();
    assert_eq!(model.opset_import[0].version, Some(17));
    assert_eq!(model.ir_version, Some(8));
    assert_eq!(
        dims(&model, true),
        vec![Some(Dim::DimParam("batch".into())), Some(Dim::DimValue(8))]
    );
    assert_eq!(
        dims(&model, false),
        vec![Some(Dim::DimParam("batch".into())), Some(Dim::DimValue(3))]
    );
    let g = model.graph.as_ref().unwrap();
    // Two kernels and two biases; dropout is gone at inference.
    assert_eq!(
        g.initializer.len(),
        4,
        "{:?}",
        g.initializer.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    let ops = op_types(&model);
    assert_eq!(ops.iter().filter(|o| *o == "MatMul").count(), 2, "{ops:?}");
    assert!(
        ops.contains(&"Softmax".to_string()) && ops.contains(&"Relu".to_string()),
        "{ops:?}"
    );
    assert!(!ops.iter().any(|o| o.contains("Dropout")), "{ops:?}");
}

#[test]
fn a_fixed_batch_and_other_opsets_are_written_as_asked() {
    let opts = ExportOptions {
        opset: 13,
        dynamic_batch: false,
    };
    let model = export_model(&mlp(), &opts).unwrap();
    assert_eq!(model.ir_version, Some(7));
    assert_eq!(
        dims(&model, true),
        vec![Some(Dim::DimValue(1)), Some(Dim::DimValue(8))]
    );
    for opset in [12, 22] {
        let opts = ExportOptions {
            opset,
            ..Default::default()
        };
        let e = export_model(&mlp(), &opts).unwrap_err().to_string();
        assert!(
            e.contains(&format!("opset {opset} is not supported")),
            "{e}"
        );
    }
}

#[test]
fn gelu_is_an_op_from_opset_20_and_erf_arithmetic_before() {
    let spec = [TensorSpec::new(&[None, Some(4)], DType::F32)];
    let f = |x: &[Tensor]| Ok(vec![x[0].gelu()?]);
    let ops = |opset| {
        let opts = ExportOptions {
            opset,
            ..Default::default()
        };
        op_types(&export_function("g", f, &spec, &[], &[], &opts).unwrap())
    };
    assert!(ops(20).contains(&"Gelu".to_string()));
    assert!(ops(17).contains(&"Erf".to_string()) && !ops(17).contains(&"Gelu".to_string()));
}

#[test]
fn ops_without_a_lowering_are_all_named_at_once() {
    let spec = [TensorSpec::new(&[Some(3), Some(4)], DType::F32)];
    let f = |x: &[Tensor]| {
        let a = x[0].cumsum(1, false, false)?;
        let b = x[0].sort(1, false)?;
        Ok(vec![a.add(&b)?])
    };
    let e = export_function(
        "two_bad",
        f,
        &spec,
        &["x".into()],
        &[],
        &ExportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("'two_bad' has 2 node(s) that do not convert"),
        "{e}"
    );
    assert!(e.contains("cumsum") && e.contains("sort"), "{e}");
}

#[test]
fn a_graph_that_freezes_the_batch_size_is_refused_with_the_reason() {
    // A constant of a batch-dependent shape whose values differ cannot follow the batch.
    let spec = [TensorSpec::new(&[None, Some(2)], DType::F32)];
    let f = |x: &[Tensor]| {
        let n = x[0].shape()[0];
        let ramp = Tensor::from_vec((0..n * 2).map(|v| v as f32).collect(), &[n, 2])?;
        Ok(vec![x[0].add(&ramp)?])
    };
    let e = export_function("ramp", f, &spec, &[], &[], &ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("changes with the batch size (its values differ)"),
        "{e}"
    );
    // With a fixed batch it exports.
    let opts = ExportOptions {
        dynamic_batch: false,
        ..Default::default()
    };
    assert!(export_function("ramp", f, &spec, &[], &[], &opts).is_ok());
}
