//! One epoch of training in ferroflow ends where Keras 3 (TF backend) ends: same model
//! config (read from Keras's own JSON), same initial weights, data order and optimiser.
//! Fixture: `tools/gen_keras_training_golden.py`.

mod common;

use common::{fixture, tensor};
use ferroflow_keras::models::serialize::model_from_json;
use ferroflow_keras::optimizers::Optimizer;
use ferroflow_keras::training::progress::Verbosity;
use ferroflow_keras::FitOptions;

#[test]
fn one_epoch_matches_keras() {
    let fx = fixture("keras_training.json");
    for c in fx["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let mut model = model_from_json(&c["model"]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let init: Vec<_> = c["initial_weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(tensor)
            .collect();
        model.set_weights(&init).unwrap();
        let opt = &c["optimizer"];
        let optimizer =
            Optimizer::from_config(opt["class_name"].as_str().unwrap(), &opt["config"]).unwrap();
        model
            .compile(optimizer, c["loss"].as_str().unwrap(), &[])
            .unwrap();
        let (x, y) = (tensor(&c["x"]), tensor(&c["y"]));
        let h = model
            .fit(
                &x,
                &y,
                FitOptions::new()
                    .batch_size(32)
                    .shuffle(false)
                    .verbose(Verbosity::Silent),
            )
            .unwrap();
        let keras_loss = c["keras_loss"].as_f64().unwrap();
        let loss = h.last("loss").unwrap();
        assert!(
            (loss - keras_loss).abs() <= 1e-4 * keras_loss.abs(),
            "{name}: epoch loss {loss} vs Keras {keras_loss}"
        );
        let finals: Vec<_> = c["final_weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(tensor)
            .collect();
        let mut worst = 0.0f64;
        for (k, (got, want)) in model.get_weights().iter().zip(&finals).enumerate() {
            assert_eq!(got.shape(), want.shape(), "{name}: weight {k}");
            let moved = got.to_f64_vec();
            let init_k = init[k].to_f64_vec();
            for (i, (g, w)) in moved.iter().zip(want.to_f64_vec()).enumerate() {
                // Relative to the weight's size, with a floor for weights near zero.
                let rel = (g - w).abs() / w.abs().max(1e-2);
                worst = worst.max(rel);
                assert!(
                    rel <= 1e-4,
                    "{name}: weight {k}[{i}] = {g}, Keras {w} (initial {})",
                    init_k[i]
                );
            }
        }
        eprintln!("{name}: worst relative weight difference {worst:.2e}");
    }
}
