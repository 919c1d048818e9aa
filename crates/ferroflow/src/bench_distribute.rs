//! `ferroflow bench distribute`: one epoch of Keras `fit` on 60k x 784 inputs for the MLP
//! 784-256-128-10 (Adam, global batch 256), on this process or, launched under
//! `mpirun -np N`, on N workers with `MultiWorkerMirroredStrategy`: the workload that
//! `tools/bench_compare.py distribute` also runs in TensorFlow and PyTorch DDP.

use crate::bench_core::report;
use ferroflow as ff;
use ff::distribute::{MultiWorkerMirroredStrategy, Strategy};
use ff::keras::callbacks::Callback;
use ff::keras::layers::Dense;
use ff::keras::{FitOptions, Input, Model, SymbolicCall, Verbose};
use ff::{DType, Tensor};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Records each epoch's wall time.
struct EpochTimes(Arc<Mutex<Vec<f64>>>, Option<Instant>);

impl Callback for EpochTimes {
    fn on_epoch_begin(&mut self, _: usize, _: &mut Model) -> ff::Result<()> {
        self.1 = Some(Instant::now());
        Ok(())
    }
    fn on_epoch_end(&mut self, _: usize, _: &ff::keras::Logs, _: &mut Model) -> ff::Result<()> {
        if let Some(t) = self.1.take() {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(t.elapsed().as_secs_f64());
        }
        Ok(())
    }
}

fn mlp() -> ff::Result<Model> {
    let inputs = Input::new(&[784]);
    let h = Dense::new(256)
        .activation("relu")
        .name("d1")
        .apply(&inputs)?;
    let h = Dense::new(128).activation("relu").name("d2").apply(&h)?;
    let out = Dense::new(10).activation("softmax").name("d3").apply(&h)?;
    let mut m = Model::named(&[inputs], &[out], "mlp")?;
    m.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])?;
    Ok(m)
}

/// Whether this process was started by `mpirun` with other ranks.
fn under_mpirun() -> bool {
    std::env::var("OMPI_COMM_WORLD_SIZE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > 1)
}

/// Trains `reps + 1` epochs and reports the fastest after the first (`fit_epoch_s`) and
/// the samples per second it means; under mpirun only the chief prints.
pub fn run(json: bool, reps: usize) -> ff::Result<()> {
    let strategy = if under_mpirun() {
        Some(MultiWorkerMirroredStrategy::new()?)
    } else {
        None
    };
    ff::random::set_seed(1);
    let n = 60_000;
    let x = ff::random::normal(&[n, 784], 0.0, 1.0, DType::F32, Some(3))?;
    let labels: Vec<i64> = (0..n as i64).map(|i| (i * 7 + i / 13) % 10).collect();
    let y = Tensor::from_vec(labels, &[n])?;
    let mut model = match &strategy {
        Some(s) => s.scope(mlp)?,
        None => mlp()?,
    };
    let times = Arc::new(Mutex::new(Vec::new()));
    let opts = FitOptions::new()
        .epochs(reps.max(1) + 1)
        .batch_size(256)
        .verbose(Verbose::Silent)
        .callback(EpochTimes(times.clone(), None));
    model.fit(&x, &y, opts)?;
    if !model.is_chief() {
        return Ok(());
    }
    let times = times.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let best = times[1..].iter().copied().fold(f64::INFINITY, f64::min);
    let workers = strategy.as_ref().map_or(1, |s| s.num_replicas_in_sync());
    report(
        &[
            ("fit_epoch_s", best, "s"),
            ("samples_per_s", n as f64 / best, "samples/s"),
            ("workers", workers as f64, ""),
        ],
        json,
    );
    Ok(())
}
