//! Keras models exported to `.tflite` give ferroflow's own predictions when the file is run
//! back in ferroflow's interpreter (the same files are checked against LiteRT by
//! tools/check_tflite_export.py in `.ci/run`: set FERROFLOW_TFLITE_EXPORT_DIR to write them).

use ferroflow_core::ops::conv::Padding;
use ferroflow_core::{DType, Tensor};
use ferroflow_keras::layer::LayerExt;
use ferroflow_keras::layers::{
    Activation, Add, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense,
    DepthwiseConv2D, Dropout, Embedding, Flatten, GlobalAveragePooling1D, GlobalAveragePooling2D,
    LayerNormalization, MaxPooling2D, Rescaling, Reshape,
};
use ferroflow_keras::{Input, Model, SymbolicCall};
use ferroflow_lite::Interpreter;

/// Serialises the tests of this file: they draw initial weights from the global random
/// stream, which must not interleave for the exported files to be reproducible.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Gives every BatchNormalization non-trivial moving statistics and affine weights.
fn perturb_batch_norms(model: &Model) {
    for layer in model.layers() {
        for w in layer.weights() {
            let v = &w.variable;
            let name = v.name().to_string();
            let shape = v.value().shape().to_vec();
            let value = if name.ends_with("moving_variance") {
                ferroflow_core::random::uniform(&shape, 0.5, 1.5, DType::F32, Some(3))
            } else if name.ends_with("moving_mean") || name.ends_with("beta") {
                ferroflow_core::random::normal(&shape, 0.0, 0.2, DType::F32, Some(4))
            } else if name.ends_with("gamma") {
                ferroflow_core::random::uniform(&shape, 0.5, 1.5, DType::F32, Some(5))
            } else {
                continue;
            };
            v.assign(&value.unwrap()).unwrap();
        }
    }
}

fn mlp() -> Model {
    let x = Input::new(&[64]);
    let h = Rescaling::new(1.0 / 16.0, 0.0).apply(&x).unwrap();
    let h = Dense::new(32).activation("relu").apply(&h).unwrap();
    let h = Dropout::new(0.2).unwrap().apply(&h).unwrap();
    let h = Dense::new(16).activation("gelu").apply(&h).unwrap();
    let y = Dense::new(10).activation("softmax").apply(&h).unwrap();
    Model::named(&[x], &[y], "mlp").unwrap()
}

fn cnn() -> Model {
    let m = Model::sequential(Some("cnn"));
    m.add(Input::new(&[64])).unwrap();
    m.add(Reshape::new(&[8, 8, 1]).unwrap()).unwrap();
    m.add(Conv2D::new(8, &[3]).padding(Padding::Same)).unwrap();
    m.add(BatchNormalization::new()).unwrap();
    m.add(Activation::new("relu").unwrap()).unwrap();
    m.add(
        DepthwiseConv2D::new(&[3])
            .padding(Padding::Same)
            .activation("relu6"),
    )
    .unwrap();
    m.add(MaxPooling2D::new(&[2])).unwrap();
    m.add(Conv2D::new(12, &[3]).strides(&[2]).activation("tanh"))
        .unwrap();
    m.add(AveragePooling2D::new(&[2]).padding(Padding::Same))
        .unwrap();
    m.add(Flatten::new()).unwrap();
    m.add(Dense::new(10).activation("softmax")).unwrap();
    m
}

fn multi_input() -> Model {
    let image = Input::with(vec![Some(8), Some(8), Some(1)], DType::F32, Some("image"));
    let vector = Input::with(vec![Some(6)], DType::F32, Some("vector"));
    let a = Conv2D::new(4, &[3])
        .activation("relu")
        .apply(&image)
        .unwrap();
    let a = GlobalAveragePooling2D::new().apply(&a).unwrap();
    let a = Dense::new(8).apply(&a).unwrap();
    let b = Dense::new(8).activation("relu").apply(&vector).unwrap();
    let s = Add::new()
        .call_many(&[a.clone(), b.clone()])
        .unwrap()
        .remove(0);
    let c = Concatenate::new(-1).call_many(&[s, b]).unwrap().remove(0);
    let y = Dense::new(3).apply(&c).unwrap();
    Model::named(&[image, vector], &[y], "multi_input").unwrap()
}

/// keras.applications' MobileNetV2 (ReLU6 layers, depthwise convolutions, correct-pad
/// zero padding, residual adds), narrow and small.
fn mobilenet() -> Model {
    use ferroflow_keras::applications::{mobilenet_v2, AppOptions};
    let opts = AppOptions {
        input_shape: Some([Some(64), Some(64), Some(3)]),
        classes: 10,
        ..AppOptions::default()
    };
    mobilenet_v2(&opts, 0.35).unwrap()
}

/// LayerNormalization (as its builtin decomposition) over a concatenation that includes a
/// sigmoid (fixed int8 range, requantised before joining the concatenation).
fn layer_norm() -> Model {
    let x = Input::new(&[12]);
    let h = Dense::new(16).activation("relu").apply(&x).unwrap();
    let g = Dense::new(4).activation("sigmoid").apply(&x).unwrap();
    let h = Concatenate::new(-1).call_many(&[h, g]).unwrap().remove(0);
    let h = LayerNormalization::new().apply(&h).unwrap();
    let y = Dense::new(4).apply(&h).unwrap();
    Model::named(&[x], &[y], "layer_norm").unwrap()
}

/// DenseNet's pattern: BatchNormalization after a concatenation (no convolution to fold
/// into), so its per-channel MUL and ADD stay, in int8 too.
fn dense_block() -> Model {
    let x = Input::new(&[8, 8, 3]);
    let h = Conv2D::new(5, &[3])
        .padding(Padding::Same)
        .apply(&x)
        .unwrap();
    let h = Concatenate::new(-1)
        .call_many(&[x.clone(), h])
        .unwrap()
        .remove(0);
    let h = BatchNormalization::new().apply(&h).unwrap();
    let h = Activation::new("relu").unwrap().apply(&h).unwrap();
    let h = Conv2D::new(6, &[1]).apply(&h).unwrap();
    let h = GlobalAveragePooling2D::new().apply(&h).unwrap();
    let y = Dense::new(3).apply(&h).unwrap();
    Model::named(&[x], &[y], "dense_block").unwrap()
}

fn embedding() -> Model {
    let ids = Input::with(vec![Some(5)], DType::I32, Some("ids"));
    let e = Embedding::new(20, 6).apply(&ids).unwrap();
    let e = GlobalAveragePooling1D::new().apply(&e).unwrap();
    let y = Dense::new(2).activation("softmax").apply(&e).unwrap();
    Model::named(&[ids], &[y], "embedding").unwrap()
}

/// A Keras 3 functional config with operation nodes (`x * (1/6)`, `3.0 - x`, as
/// MobileNetV3's hard sigmoid has them) after a `Normalization` with fixed statistics.
fn ops_and_normalization() -> Model {
    use serde_json::json;
    let t = |h: &str, c: usize| {
        json!({"class_name": "__keras_tensor__",
               "config": {"shape": [null, c], "dtype": "float32", "keras_history": [h, 0, 0]}})
    };
    let op = |class: &str, name: &str, args: serde_json::Value| {
        json!({"module": "keras.src.ops.numpy", "class_name": class, "config": {"name": name},
               "name": name, "inbound_nodes": [{"args": args, "kwargs": {}}]})
    };
    let layer = |class: &str, name: &str, config: serde_json::Value, input: serde_json::Value| {
        json!({"module": "keras.layers", "class_name": class, "name": name, "config": config,
               "inbound_nodes": [{"args": [input], "kwargs": {}}]})
    };
    let config = json!({"class_name": "Functional", "config": {"name": "ops_and_normalization",
        "layers": [
            {"module": "keras.layers", "class_name": "InputLayer", "name": "x",
             "config": {"batch_shape": [null, 6], "dtype": "float32", "name": "x"},
             "inbound_nodes": []},
            layer("Normalization", "normalization",
                  json!({"name": "normalization", "axis": -1, "invert": false,
                         "mean": [8.0, 7.0, 9.0, 8.5, 6.0, 8.0],
                         "variance": [20.0, 25.0, 16.0, 21.0, 30.0, 0.5]}),
                  t("x", 6)),
            layer("Dense", "dense", json!({"name": "dense", "units": 8}), t("normalization", 6)),
            op("Add", "add", json!([t("dense", 8), 3.0])),
            op("Multiply", "multiply", json!([t("add", 8), 1.0 / 6.0])),
            op("Subtract", "subtract", json!([1.0, t("multiply", 8)])),
            op("Maximum", "maximum", json!([t("subtract", 8), t("dense", 8)])),
            layer("Dense", "out", json!({"name": "out", "units": 3}), t("maximum", 8)),
        ],
        "input_layers": [["x", 0, 0]], "output_layers": [["out", 0, 0]]}});
    ferroflow_keras::models::serialize::model_from_json(&config).unwrap()
}

fn inputs(model: &Model, batch: usize) -> Vec<Tensor> {
    model
        .input_specs()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut shape = vec![batch];
            shape.extend(s.shape[1..].iter().map(|d| d.unwrap()));
            if s.dtype == DType::I32 {
                let n: usize = shape.iter().product();
                let v: Vec<i32> = (0..n).map(|k| ((k * 7 + i) % 20) as i32).collect();
                Tensor::from_vec(v, &shape).unwrap()
            } else {
                ferroflow_core::random::uniform(&shape, 0.0, 16.0, DType::F32, Some(10 + i as u64))
                    .unwrap()
            }
        })
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    a.sub(b)
        .unwrap()
        .abs()
        .unwrap()
        .max(ferroflow_core::Axes::All, false)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn exported_models_reproduce_keras_predictions() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    ferroflow_core::random::set_seed(1);
    let dir = std::env::var_os("FERROFLOW_TFLITE_EXPORT_DIR").map(std::path::PathBuf::from);
    let models = [
        mlp(),
        cnn(),
        multi_input(),
        embedding(),
        layer_norm(),
        mobilenet(),
        ops_and_normalization(),
        dense_block(),
    ];
    for model in models {
        perturb_batch_norms(&model);
        let xs = inputs(&model, 5);
        let want = model.predict(&xs, 32).unwrap().remove(0);
        let lite = ferroflow_lite::convert::from_keras(&model).unwrap();
        let bytes = ferroflow_lite::write::to_bytes(&lite);
        let interp = Interpreter::from_bytes(&bytes).unwrap();
        let got = interp.run(&xs).unwrap().remove(0);
        assert_eq!(got.shape(), want.shape(), "{}", model.name());
        let d = max_abs_diff(&got, &want);
        assert!(d <= 1e-5, "{}: max difference {d}", model.name());
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).unwrap();
            let name = model.name().to_string();
            std::fs::write(dir.join(format!("{name}.tflite")), &bytes).unwrap();
            for (i, x) in xs.iter().enumerate() {
                let suffix = if i == 0 { String::new() } else { i.to_string() };
                ferroflow_core::npy::write_npy(dir.join(format!("{name}_x{suffix}.npy")), x)
                    .unwrap();
            }
            ferroflow_core::npy::write_npy(dir.join(format!("{name}_y.npy")), &want).unwrap();
        }
        // Full-integer int8 (float edges), calibrated on the same inputs: close to float, and
        // written with ferroflow's own int8 result for LiteRT to reproduce exactly.
        let int8 = ferroflow_lite::quantize::full_integer(
            &lite,
            std::slice::from_ref(&xs),
            ferroflow_lite::quantize::IoType::Int8,
        )
        .unwrap();
        let bytes8 = ferroflow_lite::write::to_bytes(&int8);
        let interp8 = Interpreter::from_bytes(&bytes8).unwrap();
        let got8 = interp8.run_float(&xs).unwrap().remove(0);
        let d8 = max_abs_diff(&got8, &want);
        let spread = want
            .max(ferroflow_core::Axes::All, false)
            .unwrap()
            .sub(&want.min(ferroflow_core::Axes::All, false).unwrap())
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            d8 <= (0.1 * spread).max(0.01),
            "{}: int8 differs from float by {d8} (output range {spread})",
            model.name()
        );
        // Weights dominate all but the tiniest files: int8 ones are much smaller.
        if bytes.len() > 20_000 {
            assert!(bytes8.len() * 2 < bytes.len(), "{}", model.name());
        }
        if let Some(dir) = &dir {
            let name = format!("{}_int8", model.name());
            std::fs::write(dir.join(format!("{name}.tflite")), &bytes8).unwrap();
            for (i, x) in xs.iter().enumerate() {
                let suffix = if i == 0 { String::new() } else { i.to_string() };
                ferroflow_core::npy::write_npy(dir.join(format!("{name}_x{suffix}.npy")), x)
                    .unwrap();
            }
            ferroflow_core::npy::write_npy(dir.join(format!("{name}_y.npy")), &got8).unwrap();
        }
    }
}

#[test]
fn batch_norm_folds_and_activations_fuse() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let model = cnn();
    perturb_batch_norms(&model);
    let lite = ferroflow_lite::convert::from_keras(&model).unwrap();
    let names: Vec<String> = lite
        .ops
        .iter()
        .map(|o| {
            format!("{:?}", o.op)
                .split([' ', '{', '('])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    // Reshape, Conv(+BN+ReLU), Depthwise(ReLU6), MaxPool, Conv, Tanh, AvgPool, Reshape, FC,
    // Softmax.
    assert_eq!(
        names,
        [
            "Reshape",
            "Conv2d",
            "DepthwiseConv2d",
            "Pool2d",
            "Conv2d",
            "Unary",
            "Pool2d",
            "Reshape",
            "FullyConnected",
            "Softmax"
        ]
    );
}

#[test]
fn ops_without_a_tflite_form_are_all_named_at_once() {
    let spec = ferroflow_graph::TensorSpec::new(&[None, Some(4)], ferroflow_core::DType::F32);
    let e = ferroflow_lite::convert::from_function(
        "erf_mod",
        |x| {
            let e = x[0].unary(ferroflow_core::UnaryOp::Erf)?.relu()?;
            let twice = x[0].add(&x[0])?.unary(ferroflow_core::UnaryOp::Erf)?;
            Ok(vec![e.add(&twice)?])
        },
        &[spec],
        &[],
        &[],
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("2 node(s)") && e.matches("op 'erf_").count() == 2 && !e.contains("relu"),
        "{e}"
    );
}

#[test]
fn a_traced_closure_converts_with_a_dynamic_batch() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let w = ferroflow_core::random::normal(&[6, 3], 0.0, 0.5, ferroflow_core::DType::F32, Some(3))
        .unwrap();
    let f = |x: &[Tensor]| -> ferroflow_core::Result<Vec<Tensor>> {
        use ferroflow_core::UnaryOp as U;
        let h = x[0].matmul(&w)?.tanh()?;
        let r = h.slice(&[0, 1], &[-1, 2])?.softmax(-1)?;
        let r = r.add(&h.slice(&[0, 0], &[-1, 2])?.unary(U::Sin)?)?;
        let r = r.add(
            &h.slice(&[0, 1], &[-1, 2])?
                .mul_scalar(3.0)?
                .unary(U::Round)?
                .unary(U::Floor)?,
        )?;
        let c = Tensor::scalar(0.7).cast(ferroflow_core::DType::F32)?;
        let s = h.slice(&[0, 0], &[-1, 2])?.mul_scalar(5.0)?;
        let r = r.add(&s.floor_mod(&c)?)?.add(&s.floor_div(&c)?)?;
        Ok(vec![r, h.sum(-1, true)?])
    };
    let spec = ferroflow_graph::TensorSpec::new(&[None, Some(6)], ferroflow_core::DType::F32);
    let lite = ferroflow_lite::convert::from_function(
        "block",
        f,
        &[spec],
        &["x".into()],
        &["probs".into(), "total".into()],
    )
    .unwrap();
    assert_eq!(lite.tensors[lite.outputs[1]].name, "total");
    let interp = Interpreter::from_bytes(&ferroflow_lite::write::to_bytes(&lite)).unwrap();
    let x = ferroflow_core::random::normal(&[5, 6], 0.0, 1.0, ferroflow_core::DType::F32, Some(4))
        .unwrap();
    let want = f(std::slice::from_ref(&x)).unwrap();
    let got = interp.run(&[x]).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.shape(), w.shape());
        assert!(max_abs_diff(g, w) <= 1e-6);
    }
}
