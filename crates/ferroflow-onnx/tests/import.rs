//! ONNX import: the committed PyTorch exports (`tools/make_onnx_import_fixtures.py
//! --small`) against onnxruntime's outputs, and hostile or unsupported files.

use ferroflow_core::{npy, Tensor};
use ferroflow_onnx::proto::{
    self, tensor_proto::DataType, type_proto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TypeProto, ValueInfoProto,
};
use ferroflow_onnx::{CompiledOnnx, LoadOptions, OnnxModel};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import")
}

fn numbered(dir: &Path, name: &str, tag: &str) -> Vec<Tensor> {
    (0..)
        .map(|i| dir.join(format!("{name}_{tag}{i}.npy")))
        .take_while(|p| p.exists())
        .map(|p| npy::read_npy(p).unwrap())
        .collect()
}

fn max_rel_diff(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.shape(), want.shape());
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    let scale = w.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    g.iter()
        .zip(&w)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

#[test]
fn pytorch_exports_match_onnxruntime() {
    let dir = fixtures();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "onnx")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        let model = OnnxModel::load(dir.join(format!("{name}.onnx")), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let compiled = CompiledOnnx::new(model);
        let (xs, ys) = (numbered(&dir, &name, "x"), numbered(&dir, &name, "y"));
        // Twice: the second call runs the traced plan (or eagerly, for control flow).
        for _ in 0..2 {
            let outs = compiled.call(&xs).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(outs.len(), ys.len(), "{name}");
            for (k, (g, w)) in outs.iter().zip(&ys).enumerate() {
                let d = max_rel_diff(g, w);
                assert!(d <= 1e-4, "{name} output {k}: max |diff| / max |y| = {d:e}");
            }
        }
    }
}

fn tensor_type(dims: &[i64]) -> Option<TypeProto> {
    Some(TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: Some(DataType::Float as i32),
            shape: Some(proto::TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|&d| proto::tensor_shape_proto::Dimension {
                        value: Some(proto::tensor_shape_proto::dimension::Value::DimValue(d)),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    })
}

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(format!("{op}_node")),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn model(opset: i64, nodes: Vec<NodeProto>, initializers: Vec<TensorProto>) -> Vec<u8> {
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: initializers,
            input: vec![ValueInfoProto {
                name: Some("x".into()),
                r#type: tensor_type(&[2, 3]),
                ..Default::default()
            }],
            output: vec![ValueInfoProto {
                name: Some("y".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    prost::Message::encode_to_vec(&m)
}

#[test]
fn a_simple_graph_runs_and_checks_its_inputs() {
    let bytes = model(17, vec![node("Relu", &["x"], "y")], vec![]);
    let m = OnnxModel::from_bytes(&bytes).unwrap();
    let x = Tensor::from_vec(vec![-1.0f32, 2.0, -3.0, 4.0, 0.5, -0.5], &[2, 3]).unwrap();
    let y = m.run(std::slice::from_ref(&x)).unwrap();
    assert_eq!(
        y[0].to_vec::<f32>().unwrap(),
        vec![0.0, 2.0, 0.0, 4.0, 0.5, 0.0]
    );
    let bad = Tensor::from_vec(vec![1.0f32; 4], &[2, 2]).unwrap();
    let e = m.run(&[bad]).unwrap_err().to_string();
    assert!(
        e.contains("input 'x' must be float32 of shape [2, 3], got float32 of shape [2, 2]"),
        "{e}"
    );
}

#[test]
fn unsupported_nodes_are_all_listed_with_their_op_type_and_opset() {
    let bytes = model(
        15,
        vec![
            node("FancyOp", &["x"], "a"),
            node("Relu", &["missing"], "b"),
            node("OtherOp", &["a"], "y"),
        ],
        vec![],
    );
    let e = OnnxModel::from_bytes(&bytes).err().unwrap().to_string();
    assert!(e.contains("3 problem(s)"), "{e}");
    assert!(
        e.contains("'FancyOp_node' (FancyOp, opset 15): op type FancyOp is not supported"),
        "{e}"
    );
    assert!(e.contains("OtherOp"), "{e}");
    assert!(
        e.contains("input 'missing' is not defined before it"),
        "{e}"
    );
}

#[test]
fn hostile_and_out_of_range_files_are_refused() {
    // Not protobuf, and truncated.
    assert!(OnnxModel::from_bytes(b"\xff\xff\xff\xff garbage").is_err());
    let good = model(17, vec![node("Relu", &["x"], "y")], vec![]);
    assert!(OnnxModel::from_bytes(&good[..good.len() / 2]).is_err());
    // Opsets outside 11..=21.
    for opset in [9, 22] {
        let e = OnnxModel::from_bytes(&model(opset, vec![node("Relu", &["x"], "y")], vec![]))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(&format!("opset {opset} is not supported")),
            "{e}"
        );
    }
    // An initializer whose dims promise more bytes than it holds.
    let lie = TensorProto {
        name: Some("w".into()),
        dims: vec![1 << 40, 1 << 20],
        data_type: Some(DataType::Float as i32),
        raw_data: Some(vec![0; 16]),
        ..Default::default()
    };
    let e = OnnxModel::from_bytes(&model(17, vec![node("Add", &["x", "w"], "y")], vec![lie]))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("initializer 'w'"), "{e}");
    // External data is refused unless asked for.
    let external = TensorProto {
        name: Some("w".into()),
        dims: vec![3],
        data_type: Some(DataType::Float as i32),
        data_location: Some(proto::tensor_proto::DataLocation::External as i32),
        external_data: vec![proto::StringStringEntryProto {
            key: Some("location".into()),
            value: Some("/etc/passwd".into()),
        }],
        ..Default::default()
    };
    let e = OnnxModel::from_bytes(&model(
        17,
        vec![node("Add", &["x", "w"], "y")],
        vec![external],
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("external data is refused"), "{e}");
    // A computed shape beyond the limit fails that node, allocating nothing.
    let huge = TensorProto {
        name: Some("s".into()),
        dims: vec![2],
        data_type: Some(DataType::Int64 as i32),
        int64_data: vec![1 << 31, 1 << 31],
        ..Default::default()
    };
    let bytes = model(17, vec![node("ConstantOfShape", &["s"], "y")], vec![huge]);
    let m = OnnxModel::from_bytes(&bytes).unwrap();
    let x = Tensor::from_vec(vec![0.0f32; 6], &[2, 3]).unwrap();
    let e = m.run(&[x]).unwrap_err().to_string();
    assert!(e.contains("exceeds the limit"), "{e}");
}
