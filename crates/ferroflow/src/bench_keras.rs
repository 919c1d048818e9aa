//! `ferroflow bench keras`: `fit` of an MLP 784-256-128-10 (Adam, batch 128) on 60,000
//! synthetic MNIST-shaped samples for 3 epochs; reports the best epoch time and the peak
//! resident memory. `tools/bench_compare.py keras` runs the same in Keras 3 (TF backend).

use crate::bench_core::report;
use crate::heap_meter::peak_rss_mib;
use ferroflow as ff;
use ff::keras::callbacks::Callback;
use ff::keras::layers::Dense;
use ff::keras::training::progress::Verbosity;
use ff::keras::{FitOptions, Input, Logs, Model};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Records each epoch's wall time.
struct EpochTimer {
    start: Option<Instant>,
    times: Arc<Mutex<Vec<f64>>>,
}

impl Callback for EpochTimer {
    fn on_epoch_begin(&mut self, _epoch: usize, _model: &mut Model) -> ff::Result<()> {
        self.start = Some(Instant::now());
        Ok(())
    }

    fn on_epoch_end(&mut self, _epoch: usize, _logs: &Logs, _model: &mut Model) -> ff::Result<()> {
        if let Some(s) = self.start {
            self.times
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(s.elapsed().as_secs_f64());
        }
        Ok(())
    }
}

/// Runs the workload and prints its figures.
pub fn run(json: bool, epochs: usize) -> ff::Result<()> {
    ff::random::set_seed(0);
    let n = 60_000;
    let x = ff::random::uniform(&[n, 784], 0.0, 1.0, ff::DType::F32, Some(1))?;
    let labels: Vec<i64> = (0..n).map(|i| ((i * 7) % 10) as i64).collect();
    let y = ff::Tensor::from_vec(labels, &[n])?;
    let model = Model::sequential(Some("bench_mlp"));
    model.add(Input::new(&[784]))?;
    model.add(Dense::new(256).activation("relu"))?;
    model.add(Dense::new(128).activation("relu"))?;
    model.add(Dense::new(10).activation("softmax"))?;
    let mut model = model;
    model.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])?;
    let times = Arc::new(Mutex::new(Vec::new()));
    let timer = EpochTimer {
        start: None,
        times: times.clone(),
    };
    model.fit(
        &x,
        &y,
        FitOptions::new()
            .epochs(epochs.max(1))
            .batch_size(128)
            .verbose(Verbosity::Silent)
            .callback(timer),
    )?;
    let t = times.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let best = t.iter().copied().fold(f64::INFINITY, f64::min);
    report(
        &[
            ("fit_epoch_s", best, "s"),
            ("fit_peak_rss_mib", peak_rss_mib(), "MiB"),
        ],
        json,
    );
    Ok(())
}
