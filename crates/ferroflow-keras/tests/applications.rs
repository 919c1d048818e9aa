//! `applications` builds Keras's exact architectures: layer names, classes, weights,
//! shapes and parameter counts match `keras.applications` (committed descriptions from
//! `tools/make_keras_app_fixtures.py --architecture`), and Keras's weights give Keras's
//! outputs (the large files are made by `.ci/run` into FERROFLOW_KERAS_APPS_DIR).

mod common;

use common::rel_diff;
use ferroflow_core::npy::read_npy;
use ferroflow_core::DType;
use ferroflow_keras::applications::{
    efficientnet_v2_b0, mobilenet_v2, resnet50, AppOptions, Pooling,
};
use ferroflow_keras::{load_model, LayerExt, Model};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The options and MobileNetV2's `alpha` of a Keras constructor call.
fn options(kwargs: &Value) -> (AppOptions, f64) {
    let mut o = AppOptions::default();
    let mut alpha = 1.0;
    for (k, v) in kwargs.as_object().unwrap() {
        match k.as_str() {
            "alpha" => alpha = v.as_f64().unwrap(),
            "include_top" => o.include_top = v.as_bool().unwrap(),
            "include_preprocessing" => o.include_preprocessing = v.as_bool().unwrap(),
            "classes" => o.classes = v.as_u64().unwrap() as usize,
            "classifier_activation" => o.classifier_activation = v.as_str().map(String::from),
            "pooling" => {
                o.pooling = Some(match v.as_str().unwrap() {
                    "avg" => Pooling::Avg,
                    _ => Pooling::Max,
                })
            }
            "input_shape" => {
                let d: Vec<Option<usize>> = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().map(|x| x as usize))
                    .collect();
                o.input_shape = Some([d[0], d[1], d[2]]);
            }
            other => panic!("unhandled kwarg {other}"),
        }
    }
    (o, alpha)
}

/// Generated layer names are process-wide, as in Keras; builds run one at a time, each
/// in a fresh naming session (`keras.backend.clear_session()`), as the fixtures were made.
static SESSION: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Builds the application called `name` (Keras's model name).
fn build(name: &str, opts: &AppOptions, alpha: f64) -> Model {
    let _session = SESSION.lock().unwrap_or_else(|e| e.into_inner());
    ferroflow_keras::layer::clear_session();
    match name {
        "efficientnetv2-b0" => efficientnet_v2_b0(opts).unwrap(),
        "resnet50" => resnet50(opts).unwrap(),
        n if n.starts_with("mobilenetv2_") => mobilenet_v2(opts, alpha).unwrap(),
        other => panic!("no builder for {other}"),
    }
}

fn dims(v: &Value) -> Vec<Option<usize>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().map(|x| x as usize))
        .collect()
}

#[test]
fn architectures_match_keras_applications() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/applications/architectures.json");
    let descs: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for d in &descs {
        let (opts, alpha) = options(&d["kwargs"]);
        let m = build(d["name"].as_str().unwrap(), &opts, alpha);
        let what = format!("{} {}", d["name"], d["kwargs"]);
        assert_eq!(m.name(), d["name"].as_str().unwrap(), "{what}");
        assert_eq!(
            m.count_params() as u64,
            d["params"].as_u64().unwrap(),
            "{what}: parameters"
        );
        let spec = &m.input_specs().unwrap()[0];
        assert_eq!(spec.shape, dims(&d["input_shape"]), "{what}: input shape");
        let out = m
            .as_layer()
            .compute_output_spec(std::slice::from_ref(spec))
            .unwrap();
        assert_eq!(
            out[0].shape,
            dims(&d["output_shape"]),
            "{what}: output shape"
        );
        let ours: Vec<(String, String, usize)> = m
            .network()
            .keras_layers()
            .iter()
            .map(|l| {
                (
                    l.name().to_string(),
                    l.class_name().to_string(),
                    l.weights().len(),
                )
            })
            .collect();
        let theirs: Vec<(String, String, usize)> = d["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l[0].as_str().unwrap().into(),
                    l[1].as_str().unwrap().into(),
                    l[2].as_u64().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(ours.len(), theirs.len(), "{what}: layer count");
        for (o, t) in ours.iter().zip(&theirs) {
            assert_eq!(o, t, "{what}");
        }
    }
}

#[test]
fn bad_application_arguments_are_errors() {
    let e = |o: AppOptions| {
        efficientnet_v2_b0(&o)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let top_dynamic = AppOptions {
        input_shape: Some([None, None, Some(3)]),
        ..AppOptions::default()
    };
    assert!(e(top_dynamic).contains("static"));
    let small = AppOptions {
        include_top: false,
        input_shape: Some([Some(16), Some(64), Some(3)]),
        ..AppOptions::default()
    };
    assert!(e(small).contains("at least 32"));
    let gray = AppOptions {
        input_shape: Some([Some(224), Some(224), Some(1)]),
        ..AppOptions::default()
    };
    assert!(e(gray).contains("3 channels"));
}

fn check(model: &Model, dir: &Path, name: &str, what: &str) {
    let x = read_npy(dir.join(format!("{name}_x.npy"))).unwrap();
    let want = read_npy(dir.join(format!("{name}_y.npy"))).unwrap();
    let got = model
        .predict(vec![x], 1)
        .unwrap()
        .remove(0)
        .cast(DType::F32)
        .unwrap();
    let d = rel_diff(&got, &want);
    println!("{name} ({what}): max relative difference {d:.2e}");
    assert!(
        d <= 1e-3,
        "{name} ({what}): relative difference {d:.2e} to Keras"
    );
}

#[test]
fn keras_weights_give_keras_outputs() {
    let Some(dir) = std::env::var_os("FERROFLOW_KERAS_APPS_DIR").map(PathBuf::from) else {
        eprintln!("FERROFLOW_KERAS_APPS_DIR is not set: run tools/make_keras_app_fixtures.py DIR (.ci/run does)");
        return;
    };
    for (name, keras_name) in [
        ("efficientnetv2b0", "efficientnetv2-b0"),
        ("mobilenetv2", "mobilenetv2_1.00_224"),
        ("resnet50", "resnet50"),
    ] {
        check(
            &load_model(dir.join(format!("{name}.keras"))).unwrap(),
            &dir,
            name,
            ".keras",
        );
        for file in [format!("{name}.weights.h5"), format!("{name}_legacy.h5")] {
            let opts = AppOptions {
                weights: Some(dir.join(&file)),
                ..AppOptions::default()
            };
            check(&build(keras_name, &opts, 1.0), &dir, name, &file);
        }
    }
}
