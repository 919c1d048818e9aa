//! The browser runtime's model loading and prediction, run natively: every format loads
//! from bytes and predicts what the native paths predict; bad bytes and bad inputs are
//! errors with ferroflow's messages.

use ferroflow_core::{random, DType, Tensor};
use ferroflow_keras::layers::{Dense, Embedding, GlobalAveragePooling1D};
use ferroflow_keras::{Input, Model};
use ferroflow_wasm::runner::{Format, LoadedModel};

fn mlp() -> Model {
    random::set_seed(3);
    ferroflow_keras::sequential![
        Input::new(&[5]),
        Dense::new(8).activation("relu"),
        Dense::new(3).activation("softmax")
    ]
    .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn rows(n: usize) -> Tensor {
    random::uniform(&[n, 5], -1.0, 1.0, DType::F32, Some(7)).unwrap()
}

#[test]
fn a_saved_model_directory_loads_from_its_files_bytes() {
    let m = mlp();
    let dir = std::env::temp_dir().join(format!("ff_wasm_saved_{}", std::process::id()));
    m.save(&dir).unwrap();
    let config = std::fs::read(dir.join("config.json")).unwrap();
    let weights = std::fs::read(dir.join("model.weights.safetensors")).unwrap();
    let loaded = LoadedModel::from_saved_model(&config, &weights).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(loaded.format(), Format::SavedModel);
    assert_eq!(loaded.inputs()[0].shape, vec![None, Some(5)]);
    assert_eq!(loaded.outputs()[0].shape, vec![None, Some(3)]);
    assert!(loaded.summary().contains("Dense"), "{}", loaded.summary());
    let x = rows(4);
    let want = m.predict(x.clone(), 32).unwrap();
    let got = loaded.predict(vec![x]).unwrap();
    assert_eq!(max_diff(&got[0], &want[0]), 0.0);
    // Truncated weights are refused, naming the file.
    let err = LoadedModel::from_saved_model(&config, &weights[..weights.len() / 2])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.weights.safetensors"), "{err}");
}

#[test]
fn keras_and_tflite_files_load_from_bytes() {
    let m = mlp();
    let x = rows(3);
    let want = m.predict(x.clone(), 32).unwrap();
    let path = std::env::temp_dir().join(format!("ff_wasm_{}.keras", std::process::id()));
    m.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let keras = LoadedModel::from_bytes(&bytes).unwrap();
    assert_eq!(keras.format(), Format::Keras);
    assert!(max_diff(&keras.predict(vec![x.clone()]).unwrap()[0], &want[0]) < 1e-6);

    let lite = ferroflow_lite::write::to_bytes(&ferroflow_lite::convert::from_keras(&m).unwrap());
    let tflite = LoadedModel::from_bytes(&lite).unwrap();
    assert_eq!(tflite.format(), Format::Tflite);
    assert_eq!(tflite.inputs()[0].dtype, DType::F32);
    assert!(
        tflite.summary().contains("FULLY_CONNECTED"),
        "{}",
        tflite.summary()
    );
    assert!(max_diff(&tflite.predict(vec![x]).unwrap()[0], &want[0]) < 1e-5);
    let info = tflite.info();
    assert_eq!(info["format"], "tflite");
    assert_eq!(info["inputs"][0]["shape"][1], 5);
}

#[test]
fn bad_bytes_and_bad_inputs_are_errors() {
    let err = LoadedModel::from_bytes(b"12345678abc")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a .keras, .h5 or .tflite"), "{err}");
    let mut fake = vec![0u8; 64];
    fake[4..8].copy_from_slice(b"TFL3");
    assert!(LoadedModel::from_bytes(&fake).is_err());
    assert!(LoadedModel::from_bytes(b"PK\x03\x04 truncated").is_err());
    assert!(LoadedModel::from_bytes(&[]).is_err());

    let m = mlp();
    let lite = ferroflow_lite::write::to_bytes(&ferroflow_lite::convert::from_keras(&m).unwrap());
    let model = LoadedModel::from_bytes(&lite).unwrap();
    let wrong = Tensor::zeros(&[2, 4], DType::F32).unwrap();
    let err = model.predict(vec![wrong]).unwrap_err().to_string();
    assert!(
        err.contains("expects shape (None, 5)") && err.contains("[2, 4]"),
        "{err}"
    );
    let err = model.predict(vec![]).unwrap_err().to_string();
    assert!(err.contains("takes 1 input"), "{err}");
    // Integers into a float input are converted.
    let ints = Tensor::zeros(&[1, 5], DType::I32).unwrap();
    assert_eq!(model.predict(vec![ints]).unwrap()[0].shape(), &[1, 3]);
}

#[test]
fn floats_into_token_ids_are_refused_and_ints_run() {
    random::set_seed(5);
    let m = ferroflow_keras::sequential![
        Input::with(vec![Some(4)], DType::I32, None),
        Embedding::new(10, 3),
        GlobalAveragePooling1D::new(),
        Dense::new(2)
    ]
    .unwrap();
    let path = std::env::temp_dir().join(format!("ff_wasm_tok_{}.keras", std::process::id()));
    m.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let model = LoadedModel::from_bytes(&bytes).unwrap();
    assert_eq!(model.inputs()[0].dtype, DType::I32);
    let floats = Tensor::zeros(&[1, 4], DType::F32).unwrap();
    let err = model.predict(vec![floats]).unwrap_err().to_string();
    assert!(err.contains("token ids"), "{err}");
    let ids = Tensor::from_vec(vec![1i32, 2, 3, 4], &[1, 4]).unwrap();
    let want = m.predict(ids.clone(), 8).unwrap();
    assert!(max_diff(&model.predict(vec![ids]).unwrap()[0], &want[0]) < 1e-6);
}
