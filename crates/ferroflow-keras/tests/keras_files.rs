//! Models built and saved by Python Keras 3 (`tools/make_keras_fixtures.py`) load in
//! ferroflow and give Keras's outputs; ferroflow's own `.keras` files load back the same.

mod common;

use common::rel_diff;
use ferroflow_core::npy::read_npy;
use ferroflow_core::{DType, Tensor};
use ferroflow_keras::load_model;
use ferroflow_keras::saving::keras_file::model_from_json_str;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ff_keras_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn index() -> Vec<(String, usize, usize)> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("index.json")).unwrap())
            .unwrap();
    v["models"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, m)| {
            (
                k.clone(),
                m["inputs"].as_u64().unwrap() as usize,
                m["outputs"].as_u64().unwrap() as usize,
            )
        })
        .collect()
}

fn arrays(name: &str, kind: &str, n: usize) -> Vec<Tensor> {
    (0..n)
        .map(|i| read_npy(fixtures().join(format!("{name}_{kind}{i}.npy"))).unwrap())
        .collect()
}

fn check(model: &ferroflow_keras::Model, name: &str, n_in: usize, n_out: usize, what: &str) {
    let xs = arrays(name, "x", n_in);
    let want = arrays(name, "y", n_out);
    let got = model.predict(xs.clone(), 32).unwrap();
    assert_eq!(got.len(), n_out, "{name} ({what})");
    for (g, w) in got.iter().zip(&want) {
        let d = rel_diff(&g.cast(DType::F32).unwrap(), w);
        assert!(
            d <= 1e-4,
            "{name} ({what}): relative difference {d:.2e} to Keras"
        );
    }
    // The same shapes again, rows reversed: the compiled plan must follow the new inputs
    // (host-side layers such as lookups must not have been traced into constants).
    let rows = xs[0].shape()[0];
    let rev = Tensor::from_vec((0..rows as i64).rev().collect::<Vec<_>>(), &[rows]).unwrap();
    let reversed: Vec<Tensor> = xs.iter().map(|x| x.gather(&rev, 0).unwrap()).collect();
    let got = model.predict(reversed, 32).unwrap();
    for (g, w) in got.iter().zip(&want) {
        let d = rel_diff(&g.cast(DType::F32).unwrap(), &w.gather(&rev, 0).unwrap());
        assert!(
            d <= 1e-4,
            "{name} ({what}), rows reversed: relative difference {d:.2e} to Keras"
        );
    }
}

#[test]
fn keras_archives_load_and_match_keras_outputs() {
    for (name, n_in, n_out) in index() {
        let model = load_model(fixtures().join(format!("{name}.keras")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check(&model, &name, n_in, n_out, ".keras");
    }
}

#[test]
fn ferroflow_keras_archives_round_trip() {
    let dir = tmp("roundtrip");
    for (name, n_in, n_out) in index() {
        let model = load_model(fixtures().join(format!("{name}.keras"))).unwrap();
        let out = dir.join(format!("{name}.keras"));
        model.save(&out).unwrap();
        let back = load_model(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(&back, &name, n_in, n_out, "saved by ferroflow");
        // ferroflow's own directory format keeps the same: weights, named state, assets.
        let native = dir.join(format!("{name}_native"));
        model.save(&native).unwrap();
        let back = load_model(&native).unwrap_or_else(|e| panic!("{name} (native): {e}"));
        check(&back, &name, n_in, n_out, "saved in ferroflow's format");
        // The weights file alone, into a fresh model from the config.
        let w = dir.join(format!("{name}.weights.h5"));
        model.save_weights(&w).unwrap();
        let fresh = load_model(&out).unwrap();
        fresh.load_weights(&w).unwrap();
        check(&fresh, &name, n_in, n_out, ".weights.h5");
    }
}

#[test]
fn legacy_h5_weights_h5_and_json() {
    let legacy = load_model(fixtures().join("mlp_legacy.h5")).unwrap();
    check(&legacy, "mlp", 1, 1, "legacy .h5");
    let json = std::fs::read_to_string(fixtures().join("mlp.json")).unwrap();
    let fresh = model_from_json_str(&json).unwrap();
    fresh
        .load_weights(fixtures().join("mlp.weights.h5"))
        .unwrap();
    check(&fresh, "mlp", 1, 1, "to_json + .weights.h5");
}

/// Writes a `.keras` archive with the fixture's weights and an edited config.
fn edited_archive(dir: &Path, edit: impl Fn(&mut Value)) -> PathBuf {
    let src = std::fs::File::open(fixtures().join("mlp.keras")).unwrap();
    let mut zip = zip::ZipArchive::new(src).unwrap();
    let mut config: Value = {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut zip.by_name("config.json").unwrap(), &mut s).unwrap();
        serde_json::from_str(&s).unwrap()
    };
    edit(&mut config);
    let mut weights = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name("model.weights.h5").unwrap(), &mut weights)
        .unwrap();
    let out = dir.join("edited.keras");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&out).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file("config.json", opts).unwrap();
    w.write_all(config.to_string().as_bytes()).unwrap();
    w.start_file("model.weights.h5", opts).unwrap();
    w.write_all(&weights).unwrap();
    w.finish().unwrap();
    out
}

#[test]
fn unknown_layers_options_and_bad_files_are_errors_naming_them() {
    let dir = tmp("errors");
    let err = |p: &Path| {
        load_model(p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let unknown = edited_archive(&dir, |c| {
        c["config"]["layers"][1]["class_name"] = "FancyDense".into()
    });
    assert!(err(&unknown).contains("FancyDense"), "{}", err(&unknown));
    let option = edited_archive(&dir, |c| {
        c["config"]["layers"][1]["config"]["lora_rank"] = 4.into()
    });
    assert!(err(&option).contains("lora_rank"), "{}", err(&option));
    let shape = edited_archive(&dir, |c| {
        c["config"]["layers"][1]["config"]["units"] = 17.into()
    });
    let e = err(&shape);
    assert!(
        e.contains("layers/dense/vars/0") && e.contains("[8, 16]"),
        "{e}"
    );
    let garbage = dir.join("garbage.keras");
    std::fs::write(&garbage, b"not a zip at all").unwrap();
    assert!(
        err(&garbage).contains("not a .keras (zip) archive"),
        "{}",
        err(&garbage)
    );
    let model = load_model(fixtures().join("nested.keras")).unwrap();
    assert!(model
        .load_weights(fixtures().join("mlp.weights.h5"))
        .is_err());
}

/// With FERROFLOW_KERAS_EXPORT_DIR set, `.ci/run` gets files for
/// `tools/check_keras_roundtrip.py`: each model re-saved by ferroflow, with inputs and
/// ferroflow's outputs, for Python Keras to load and compare.
fn export(model: &ferroflow_keras::Model, name: &str, xs: &[Tensor]) {
    let Some(dir) = std::env::var_os("FERROFLOW_KERAS_EXPORT_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    model.save(dir.join(format!("{name}.keras"))).unwrap();
    for (i, x) in xs.iter().enumerate() {
        ferroflow_core::npy::write_npy(dir.join(format!("{name}_x{i}.npy")), x).unwrap();
    }
    for (i, y) in model.predict(xs.to_vec(), 32).unwrap().iter().enumerate() {
        ferroflow_core::npy::write_npy(dir.join(format!("{name}_y{i}.npy")), y).unwrap();
    }
}

#[test]
fn keras_models_fine_tune_in_ferroflow_and_save_back() {
    use ferroflow_keras::training::progress::Verbosity;
    use ferroflow_keras::FitOptions;
    for (name, n_in, _) in index() {
        // Keras reloads its masks through merges from operation nodes passed on as
        // `mask=`, which ferroflow reads but does not write back yet: Keras cannot load
        // such a model after a ferroflow save (its recomputed mask ops take a layer's name).
        if name == "masked_merge" {
            continue;
        }
        let model = load_model(fixtures().join(format!("{name}.keras"))).unwrap();
        export(
            &model,
            &format!("resaved_{name}"),
            &arrays(&name, "x", n_in),
        );
    }
    // Fine-tune the Keras MLP on a small regression of its own softmax outputs.
    let mut model = load_model(fixtures().join("mlp.keras")).unwrap();
    let x = arrays("mlp", "x", 1).remove(0);
    let before = model.predict(vec![x.clone()], 32).unwrap().remove(0);
    let y = Tensor::from_vec(vec![0i64, 1, 2, 3, 0], &[5]).unwrap();
    model
        .compile("adam", "sparse_categorical_crossentropy", &["accuracy"])
        .unwrap();
    // Cross-entropy of the labels under the model's (inference-mode) predictions.
    let labels = [0usize, 1, 2, 3, 0];
    let xent = |p: &Tensor| -> f64 {
        let p = p.to_f64_vec();
        labels
            .iter()
            .enumerate()
            .map(|(r, &c)| -p[r * 4 + c].ln())
            .sum::<f64>()
            / 5.0
    };
    model
        .fit(
            x.clone(),
            y,
            FitOptions::new()
                .epochs(40)
                .batch_size(5)
                .verbose(Verbosity::Silent),
        )
        .unwrap();
    let after = model.predict(vec![x.clone()], 32).unwrap().remove(0);
    assert!(
        xent(&after) < xent(&before),
        "{} -> {}",
        xent(&before),
        xent(&after)
    );
    assert!(rel_diff(&after, &before) > 1e-3, "training changed nothing");
    let dir = tmp("finetune");
    let path = dir.join("tuned.keras");
    model.save(&path).unwrap();
    let back = load_model(&path).unwrap();
    assert!(
        back.optimizer().is_some(),
        "the compile config was not restored"
    );
    let again = back.predict(vec![x.clone()], 32).unwrap().remove(0);
    assert!(rel_diff(&again, &after) < 1e-7);
    export(&model, "finetuned_mlp", &[x]);
}

#[test]
fn training_resumes_exactly_from_keras_and_ferroflow_optimizer_state() {
    let x = read_npy(fixtures().join("trained_x.npy")).unwrap();
    let t = read_npy(fixtures().join("trained_t.npy")).unwrap();
    let want = read_npy(fixtures().join("trained_after_step.npy")).unwrap();
    // Keras's Adam state (iterations, learning rate, moments) is restored from the file:
    // one more step lands where Keras's did.
    let mut model = load_model(fixtures().join("trained.keras")).unwrap();
    let opt = model.optimizer().unwrap();
    assert_eq!(opt.iterations(), 6);
    assert!((opt.learning_rate() - 0.01).abs() < 1e-9);
    model.train_on_batch(x.clone(), t.clone()).unwrap();
    let got = model.predict(vec![x.clone()], 16).unwrap().remove(0);
    assert!(
        rel_diff(&got, &want) < 1e-4,
        "{:.2e}",
        rel_diff(&got, &want)
    );
    // ferroflow writes the state back the same way.
    let mut model = load_model(fixtures().join("trained.keras")).unwrap();
    let path = tmp("optimizer").join("resaved.keras");
    model.save(&path).unwrap();
    let mut back = load_model(&path).unwrap();
    assert_eq!(back.optimizer().unwrap().iterations(), 6);
    model.train_on_batch(x.clone(), t.clone()).unwrap();
    back.train_on_batch(x.clone(), t).unwrap();
    let a = model.predict(vec![x.clone()], 16).unwrap().remove(0);
    let b = back.predict(vec![x.clone()], 16).unwrap().remove(0);
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    export(&back, "resumed_trained", &[x]);
}
