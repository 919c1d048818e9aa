//! `fit`, `evaluate`, callbacks and saving: behaviour users rely on.

use ferroflow_core::{random, DType, Tensor};
use ferroflow_keras::callbacks::{
    CSVLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau,
    TensorBoard,
};
use ferroflow_keras::layers::{
    BatchNormalization, Dense, Dropout, Embedding, GlobalAveragePooling1D,
};
use ferroflow_keras::optimizers::Optimizer;
use ferroflow_keras::training::progress::Verbosity;
use ferroflow_keras::{load_model, FitOptions, Input, LayerExt, Model};

/// The global seed is process-wide (as in TF), so tests that depend on it run one at a time.
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SEEDED.lock().unwrap_or_else(|e| e.into_inner())
}

fn quiet() -> FitOptions {
    FitOptions::new().verbose(Verbosity::Silent)
}

/// Two Gaussian blobs per class, 3 classes, 8 features.
fn blobs(n: usize) -> (Tensor, Tensor) {
    let labels: Vec<i64> = (0..n).map(|i| (i % 3) as i64).collect();
    let noise = random::normal(&[n, 8], 0.0, 0.7, DType::F32, Some(11))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let x: Vec<f32> = (0..n * 8)
        .map(|k| {
            noise[k]
                + if k % 8 == (labels[k / 8] as usize) * 2 {
                    2.5
                } else {
                    0.0
                }
        })
        .collect();
    (
        Tensor::from_vec(x, &[n, 8]).unwrap(),
        Tensor::from_vec(labels, &[n]).unwrap(),
    )
}

fn mlp(seed: u64) -> Model {
    random::set_seed(seed);
    let m = Model::sequential(None);
    m.add(Input::new(&[8])).unwrap();
    m.add(Dense::new(16).activation("relu")).unwrap();
    m.add(BatchNormalization::new()).unwrap();
    m.add(Dense::new(3).activation("softmax")).unwrap();
    m
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ff_keras_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn fit_learns_and_reports_validation() {
    let _serial = serial();
    let (x, y) = blobs(300);
    let mut m = mlp(1);
    m.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])
        .unwrap();
    let h = m
        .fit(
            &x,
            &y,
            quiet().epochs(15).batch_size(16).validation_split(0.2),
        )
        .unwrap();
    assert_eq!(h.epoch.len(), 15);
    for k in ["loss", "accuracy", "val_loss", "val_accuracy"] {
        assert_eq!(h.get(k).unwrap().len(), 15, "{k}");
    }
    assert!(h.last("val_accuracy").unwrap() > 0.9, "{:?}", h.history);
    let logs = m.evaluate(&x, &y, 64).unwrap();
    assert!(logs["accuracy"] > 0.9);
    let p = m.predict(&x, 7).unwrap();
    assert_eq!(p[0].shape(), &[300, 3]);
    // train_on_batch / test_on_batch return the batch logs.
    let l = m.train_on_batch(&x, &y).unwrap();
    assert!(l.contains_key("loss") && l.contains_key("accuracy"));
    assert!(m.test_on_batch(&x, &y).unwrap()["accuracy"] > 0.9);
}

#[test]
fn fit_is_deterministic_for_a_seed() {
    let _serial = serial();
    let (x, y) = blobs(120);
    let run = || {
        let mut m = mlp(7);
        m.compile("adam", "sparse_categorical_crossentropy", &[])
            .unwrap();
        random::set_seed(7);
        m.fit(&x, &y, quiet().epochs(3).batch_size(10)).unwrap();
        m.get_weights()
    };
    for (a, b) in run().iter().zip(run()) {
        assert_eq!(a.to_f64_vec(), b.to_f64_vec());
    }
}

#[test]
fn compiled_and_eager_fit_agree() {
    let _serial = serial();
    let (x, y) = blobs(90);
    let run = |eager: bool| {
        random::set_seed(3);
        let m = Model::sequential(None);
        m.add(Input::new(&[8])).unwrap();
        m.add(Dense::new(16).activation("relu")).unwrap();
        m.add(Dropout::new(0.3).unwrap()).unwrap();
        m.add(BatchNormalization::new()).unwrap();
        m.add(Dense::new(3).activation("softmax")).unwrap();
        let mut m = m;
        m.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])
            .unwrap();
        m.set_run_eagerly(eager).unwrap();
        // 90 samples in batches of 20: a full-batch and a partial-batch step signature.
        let h = m
            .fit(
                &x,
                &y,
                quiet().epochs(3).batch_size(20).validation_split(0.2),
            )
            .unwrap();
        (m.get_weights(), h.history["val_loss"].clone())
    };
    // Same dropout masks and updates; fused reductions (BatchNormalization's moments, bias
    // gradients) may round differently in the last bits.
    let (compiled, eager) = (run(false), run(true));
    let close = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-5 * y.abs().max(1e-2))
    };
    for (a, b) in compiled.0.iter().zip(&eager.0) {
        assert!(close(&a.to_f64_vec(), &b.to_f64_vec()));
    }
    assert!(
        close(&compiled.1, &eager.1),
        "{:?} vs {:?}",
        compiled.1,
        eager.1
    );
}

#[test]
fn frozen_layers_do_not_change() {
    let _serial = serial();
    let (x, y) = blobs(90);
    let mut m = mlp(2);
    let first = m.layers()[0].clone();
    first.set_trainable(false);
    let before = first.weights()[0].variable.read_untracked();
    m.compile("adam", "sparse_categorical_crossentropy", &[])
        .unwrap();
    m.fit(&x, &y, quiet().epochs(2)).unwrap();
    assert_eq!(
        before.to_f64_vec(),
        first.weights()[0].variable.read_untracked().to_f64_vec()
    );
    assert!(
        m.summary().contains("Non-trainable params: 176"),
        "{}",
        m.summary()
    );
}

#[test]
fn callbacks_do_their_jobs() {
    let _serial = serial();
    let (x, y) = blobs(150);
    let dir = tmp("callbacks");
    std::fs::create_dir_all(&dir).unwrap();
    let mut m = mlp(3);
    m.compile(
        Optimizer::adam(0.01),
        "sparse_categorical_crossentropy",
        &["accuracy"],
    )
    .unwrap();
    let csv = dir.join("log.csv");
    let opts = quiet()
        .epochs(40)
        .validation_split(0.2)
        .callback(EarlyStopping::new("val_accuracy", 2).restore_best_weights(true))
        .callback(CSVLogger::new(&csv))
        .callback(
            ModelCheckpoint::new(dir.join("best").to_str().unwrap()).save_best_only("val_accuracy"),
        )
        .callback(TensorBoard::new(dir.join("tb")))
        .callback(LearningRateScheduler::new(|epoch, lr| {
            if epoch < 2 {
                lr
            } else {
                lr * 0.9
            }
        }));
    let h = m.fit(&x, &y, opts).unwrap();
    assert!(h.epoch.len() < 40, "early stopping never fired");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with("epoch,accuracy,loss,val_accuracy,val_loss\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), h.epoch.len() + 1);
    assert!(load_model(dir.join("best")).is_ok());
    let events: Vec<_> = std::fs::read_dir(dir.join("tb/train")).unwrap().collect();
    assert_eq!(events.len(), 1);
    assert!(std::fs::read_dir(dir.join("tb/validation")).is_ok());
    let lr = m.optimizer().unwrap().learning_rate();
    assert!(lr < 0.01 && lr > 0.001, "{lr}");
    // ReduceLROnPlateau on a metric that cannot improve.
    let mut m = mlp(4);
    m.compile(Optimizer::sgd(0.1), "sparse_categorical_crossentropy", &[])
        .unwrap();
    let zeros = Tensor::zeros(&[30, 8], DType::F32).unwrap();
    let labels = Tensor::zeros(&[30], DType::I64).unwrap();
    let mut plateau = ReduceLROnPlateau::new("loss")
        .patience(1)
        .factor(0.5)
        .min_lr(0.02);
    plateau.min_delta = 10.0; // nothing counts as an improvement
    m.fit(
        &zeros,
        &labels,
        quiet().epochs(6).shuffle(false).callback(plateau),
    )
    .unwrap();
    // Five epochs without improvement, patience 1: 0.1 -> 0.05 -> 0.025 -> 0.02 (min_lr).
    assert!((m.optimizer().unwrap().learning_rate() - 0.02).abs() < 1e-12);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn save_load_resumes_exactly_and_rejects_bad_files() {
    let _serial = serial();
    let (x, y) = blobs(64);
    let dir = tmp("save");
    let opts = || quiet().epochs(1).batch_size(16).shuffle(false);
    // Two epochs straight...
    let mut a = mlp(9);
    a.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])
        .unwrap();
    a.fit(&x, &y, opts()).unwrap();
    a.save(&dir).unwrap();
    a.fit(&x, &y, opts()).unwrap();
    // ...equal one epoch, save, load, one more epoch.
    let mut b = load_model(&dir).unwrap();
    assert_eq!(b.optimizer().unwrap().iterations(), 4);
    b.fit(&x, &y, opts()).unwrap();
    for (p, q) in a.get_weights().iter().zip(b.get_weights()) {
        assert_eq!(p.to_f64_vec(), q.to_f64_vec());
    }
    assert_eq!(
        a.predict(&x, 32).unwrap()[0].to_f64_vec(),
        b.predict(&x, 32).unwrap()[0].to_f64_vec()
    );
    // A corrupt weights file is an error and leaves the model as it was.
    let before = b.get_weights();
    let wpath = dir.join("model.weights.safetensors");
    let mut bytes = std::fs::read(&wpath).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&wpath, &bytes).unwrap();
    assert!(b.load_weights(&wpath).is_err());
    assert!(load_model(&dir).is_err());
    // Weights of another architecture are refused by name/shape, also without changes.
    let other = Model::sequential(None);
    other.add(Input::new(&[8])).unwrap();
    other.add(Dense::new(5)).unwrap();
    let wrong = dir.join("other.safetensors");
    other.save_weights(&wrong).unwrap();
    let err = b.load_weights(&wrong).unwrap_err().to_string();
    assert!(err.contains("other.safetensors"), "{err}");
    for (p, q) in before.iter().zip(b.get_weights()) {
        assert_eq!(p.to_f64_vec(), q.to_f64_vec());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn embedding_model_with_weights_and_dropout() {
    let _serial = serial();
    random::set_seed(21);
    let tokens = Input::with(vec![Some(6)], DType::I64, Some("tokens"));
    use ferroflow_keras::SymbolicCall;
    let h = Embedding::new(50, 8).apply(&tokens).unwrap();
    let h = GlobalAveragePooling1D::new().apply(&h).unwrap();
    let h = Dropout::new(0.2).unwrap().apply(&h).unwrap();
    let out = Dense::new(1).activation("sigmoid").apply(&h).unwrap();
    let mut m = Model::new(&[tokens], &[out]).unwrap();
    m.compile(
        Optimizer::adam(0.05),
        "binary_crossentropy",
        &["accuracy", "auc"],
    )
    .unwrap();
    // Label: whether token 7 occurs.
    let ids: Vec<i64> = (0..600)
        .map(|i| ((i * 37 + i / 6 * 11) % 50) as i64)
        .collect();
    let x = Tensor::from_vec(ids.clone(), &[100, 6]).unwrap();
    let labels: Vec<f32> = ids
        .chunks(6)
        .map(|r| r.iter().any(|&t| t < 10) as u8 as f32)
        .collect();
    let y = Tensor::from_vec(labels, &[100, 1]).unwrap();
    let mut weights = std::collections::HashMap::new();
    weights.insert(0usize, 1.0);
    weights.insert(1usize, 2.0);
    let h = m
        .fit(
            &x,
            &y,
            quiet().epochs(30).batch_size(20).class_weight(weights),
        )
        .unwrap();
    assert!(h.last("accuracy").unwrap() > 0.8, "{:?}", h.history);
    assert!(h.last("auc").unwrap() > 0.85, "{:?}", h.history);
}

#[test]
fn fit_on_datasets() {
    use ferroflow_data::{Dataset, AUTOTUNE};
    let _serial = serial();
    let (x, y) = blobs(240);
    // Batches from a dataset train exactly like the same batches from arrays.
    let mut a = mlp(31);
    a.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])
        .unwrap();
    a.fit(&x, &y, quiet().epochs(2).batch_size(16).shuffle(false))
        .unwrap();
    let mut b = mlp(31);
    b.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])
        .unwrap();
    let ds = Dataset::from_tensor_slices((x.clone(), y.clone()))
        .unwrap()
        .batch(16, false)
        .unwrap();
    b.fit_dataset(&ds, quiet().epochs(2)).unwrap();
    for (p, q) in a.get_weights().iter().zip(b.get_weights()) {
        assert_eq!(p.to_f64_vec(), q.to_f64_vec());
    }
    // A full pipeline with validation on a dataset.
    let train = Dataset::from_tensor_slices((x.clone(), y.clone()))
        .unwrap()
        .shuffle(240, Some(1), true)
        .batch(16, false)
        .unwrap()
        .prefetch(AUTOTUNE);
    let val = Dataset::from_tensor_slices((x.clone(), y.clone()))
        .unwrap()
        .batch(64, false)
        .unwrap();
    let mut m = mlp(32);
    m.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])
        .unwrap();
    let h = m
        .fit_dataset(&train, quiet().epochs(10).validation_dataset(val.clone()))
        .unwrap();
    assert!(h.last("val_accuracy").unwrap() > 0.9, "{:?}", h.history);
    assert!(m.evaluate_dataset(&val).unwrap()["accuracy"] > 0.9);
    assert_eq!(m.predict_dataset(&val).unwrap()[0].shape(), &[240, 3]);
    // An infinite dataset needs steps_per_epoch.
    let forever = train.repeat(None);
    assert!(m
        .fit_dataset(&forever, quiet().epochs(1))
        .unwrap_err()
        .to_string()
        .contains("steps_per_epoch"));
    let h = m
        .fit_dataset(&forever, quiet().epochs(2).steps_per_epoch(5))
        .unwrap();
    assert_eq!(h.epoch.len(), 2);
    // Elements that are not (x, y) are refused with their structure named.
    let xs_only = Dataset::from_tensor_slices(x.clone())
        .unwrap()
        .batch(8, false)
        .unwrap();
    let err = m.fit_dataset(&xs_only, quiet()).unwrap_err().to_string();
    assert!(
        err.contains("(x, y)") && err.contains("float32[8, 8]"),
        "{err}"
    );
}
