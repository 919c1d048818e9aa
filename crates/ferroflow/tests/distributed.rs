//! Multi-worker training over MPI: these tests start `mpirun -np 2` on this test binary;
//! under mpirun the same test runs its worker side (selected by `FF_MPI_SCENARIO`).
//! Needs the `mpi` feature and Open MPI's `mpirun` (`.ci/run` installs both).
#![cfg(feature = "mpi")]

use ferroflow as ff;
use ff::distribute::{MultiWorkerMirroredStrategy, Strategy};
use ff::keras::callbacks::{BackupAndRestore, Callback};
use ff::keras::datasets::digits;
use ff::keras::layers::{Dense, Rescaling};
use ff::keras::{FitOptions, Input, Model, SymbolicCall, Verbose};
use ff::{Result, Tensor};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The demo's MLP without dropout, every layer named (so names match across processes).
fn mlp(width: usize) -> Result<Model> {
    let inputs = Input::new(&[64]);
    let x = Rescaling::new(1.0 / 16.0, 0.0)
        .name("rescale")
        .apply(&inputs)?;
    let x = Dense::new(width)
        .activation("relu")
        .name("hidden1")
        .apply(&x)?;
    let x = Dense::new(64)
        .activation("relu")
        .name("hidden2")
        .apply(&x)?;
    let outputs = Dense::new(10)
        .activation("softmax")
        .name("probs")
        .apply(&x)?;
    let mut m = Model::named(&[inputs], &[outputs], "digits_mlp")?;
    m.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])?;
    Ok(m)
}

/// The digits training split (its shuffle depends on the global seed, fixed here).
fn data() -> Result<(Tensor, Tensor)> {
    ff::random::set_seed(100);
    Ok(digits::load_split(0.2, 7)?.0)
}

fn options(epochs: usize, shuffle: bool) -> FitOptions {
    FitOptions::new()
        .epochs(epochs)
        .batch_size(64)
        .shuffle(shuffle)
        .verbose(Verbose::Silent)
}

/// Runs `mpirun -np 2` on this test binary for `test`, the workers playing `scenario`.
fn mpirun(test: &str, scenario: &str, dir: &Path, extra_env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new("mpirun");
    cmd.args([
        "-np",
        "2",
        "--oversubscribe",
        "-x",
        "FF_MPI_SCENARIO",
        "-x",
        "FF_MPI_DIR",
    ]);
    for (k, _) in extra_env {
        cmd.args(["-x", k]);
    }
    cmd.arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env("FF_MPI_SCENARIO", scenario)
        .env("FF_MPI_DIR", dir)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .envs(extra_env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("mpirun (Open MPI) must be installed");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "mpirun for {test} hung (killed after 300 s)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// The worker side, when this process runs under mpirun for `scenario`.
fn worker(scenario: &str, run: impl FnOnce(&Path) -> Result<()>) -> bool {
    if std::env::var("FF_MPI_SCENARIO").as_deref() != Ok(scenario) {
        return false;
    }
    let dir = PathBuf::from(std::env::var("FF_MPI_DIR").expect("FF_MPI_DIR"));
    if let Err(e) = run(&dir) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    true
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ff_mpi_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn weights(path: &Path) -> Vec<Tensor> {
    let m = mlp(128).unwrap();
    m.load_weights(path).unwrap();
    m.get_weights()
}

fn assert_close(got: &[Tensor], want: &[Tensor], tol: f64, what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g.to_f64_vec(), w.to_f64_vec());
        let scale = w.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-3);
        let worst = g
            .iter()
            .zip(&w)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= tol * scale,
            "{what}: weight {i} differs by {worst:e}"
        );
    }
}

#[test]
fn two_workers_match_one_process() {
    if worker("equivalence", |dir| {
        // Buckets of 64 KiB: the output layers' sums start while hidden1's backward runs.
        let strategy = MultiWorkerMirroredStrategy::new()?.bucket_bytes(64 * 1024);
        assert_eq!(strategy.num_replicas_in_sync(), 2);
        let resolver = strategy.cluster_resolver();
        ff::random::set_seed(100);
        let mut m = strategy.scope(|| mlp(128))?;
        let (x, y) = data()?;
        if resolver.is_chief() {
            m.save_weights(dir.join("init.safetensors"))?;
        } else {
            // Other starting weights, which the chief's must replace.
            let zeros: Vec<Tensor> = m
                .get_weights()
                .iter()
                .map(|w| w.zeros_like())
                .collect::<Result<_>>()?;
            m.set_weights(&zeros)?;
        }
        m.fit(&x, &y, options(3, false))?;
        m.save_weights(dir.join(format!("final_{}.safetensors", resolver.task_id)))
    }) {
        return;
    }
    let dir = temp_dir("equivalence");
    let out = mpirun("two_workers_match_one_process", "equivalence", &dir, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reference = mlp(128).unwrap();
    reference
        .load_weights(dir.join("init.safetensors"))
        .unwrap();
    let (x, y) = data().unwrap();
    reference.fit(&x, &y, options(3, false)).unwrap();
    let want = reference.get_weights();
    for rank in 0..2 {
        let got = weights(&dir.join(format!("final_{rank}.safetensors")));
        assert_close(&got, &want, 1e-5, &format!("worker {rank}"));
    }
}

/// Token ids in, a class out: the embedding table's gradient stays sparse (IndexedSlices),
/// so the workers all-gather its rows instead of all-reducing a dense table.
fn embedding_model() -> Result<Model> {
    use ff::keras::layers::{Embedding, GlobalAveragePooling1D};
    let inputs = Input::with(vec![Some(8)], ff::DType::I64, Some("tokens"));
    let x = Embedding::new(17, 6).name("table").apply(&inputs)?;
    let x = GlobalAveragePooling1D::new().name("pool").apply(&x)?;
    let outputs = Dense::new(10)
        .activation("softmax")
        .name("probs")
        .apply(&x)?;
    let mut m = Model::named(&[inputs], &[outputs], "bag_of_tokens")?;
    m.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])?;
    Ok(m)
}

/// Eight token ids per digit image (its pixel values modulo 17), and its label.
fn tokens() -> Result<(Tensor, Tensor)> {
    let (x, y) = data()?;
    let ids: Vec<i64> = x
        .to_f64_vec()
        .chunks(64)
        .flat_map(|row| {
            row.iter()
                .step_by(8)
                .map(|v| (*v as i64) % 17)
                .collect::<Vec<_>>()
        })
        .collect();
    Ok((Tensor::from_vec(ids, &[y.shape()[0], 8])?, y))
}

#[test]
fn two_workers_match_one_process_with_sparse_gradients() {
    if worker("sparse", |dir| {
        let strategy = MultiWorkerMirroredStrategy::new()?;
        let rank = strategy.cluster_resolver().task_id;
        ff::random::set_seed(200 + rank as u64);
        let mut m = strategy.scope(embedding_model)?;
        let (x, y) = tokens()?;
        if rank == 0 {
            m.save_weights(dir.join("init.safetensors"))?;
        }
        m.fit(&x, &y, options(3, false))?;
        m.save_weights(dir.join(format!("final_{rank}.safetensors")))
    }) {
        return;
    }
    let dir = temp_dir("sparse");
    let out = mpirun(
        "two_workers_match_one_process_with_sparse_gradients",
        "sparse",
        &dir,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reference = embedding_model().unwrap();
    reference
        .load_weights(dir.join("init.safetensors"))
        .unwrap();
    let (x, y) = tokens().unwrap();
    reference.fit(&x, &y, options(3, false)).unwrap();
    let want = reference.get_weights();
    for rank in 0..2 {
        let m = embedding_model().unwrap();
        m.load_weights(dir.join(format!("final_{rank}.safetensors")))
            .unwrap();
        assert_close(&m.get_weights(), &want, 1e-5, &format!("worker {rank}"));
    }
}

/// Kills its own process with SIGKILL partway through one epoch.
struct KillAt {
    epoch: usize,
    batch: usize,
    current: usize,
}

impl Callback for KillAt {
    fn on_epoch_begin(&mut self, epoch: usize, _: &mut Model) -> Result<()> {
        self.current = epoch;
        Ok(())
    }
    fn on_train_batch_end(
        &mut self,
        batch: usize,
        _: &ff::keras::Logs,
        _: &mut Model,
    ) -> Result<()> {
        if self.current == self.epoch && batch == self.batch {
            let _ = Command::new("kill")
                .args(["-KILL", &std::process::id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(60));
        }
        Ok(())
    }
}

#[test]
fn a_killed_worker_resumes_from_its_backup() {
    if worker("backup", |dir| {
        let strategy = MultiWorkerMirroredStrategy::new()?;
        let rank = strategy.cluster_resolver().task_id;
        ff::random::set_seed(5);
        let mut m = strategy.scope(|| mlp(128))?;
        let (x, y) = data()?;
        let mut opts = options(4, true).callback(BackupAndRestore::new(dir.join("backup")));
        if rank == 1 && std::env::var("FF_KILL").is_ok() {
            opts = opts.callback(KillAt {
                epoch: 1,
                batch: 5,
                current: 0,
            });
        }
        m.fit(&x, &y, opts)?;
        m.save_weights(dir.join(format!("final_{rank}.safetensors")))
    }) {
        return;
    }
    let test = "a_killed_worker_resumes_from_its_backup";
    let clean = temp_dir("backup_clean");
    let out = mpirun(test, "backup", &clean, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = temp_dir("backup_killed");
    let out = mpirun(test, "backup", &dir, &[("FF_KILL", "1")]);
    assert!(!out.status.success(), "a job that lost a worker must fail");
    assert!(
        dir.join("backup").join("training_state.json").is_file(),
        "epoch 1's backup survives the crash"
    );
    assert!(!dir.join("final_0.safetensors").exists());
    let out = mpirun(test, "backup", &dir, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = weights(&clean.join("final_0.safetensors"));
    for rank in 0..2 {
        let got = weights(&dir.join(format!("final_{rank}.safetensors")));
        assert_close(&got, &want, 0.0, &format!("resumed worker {rank}"));
    }
}

#[test]
fn workers_that_build_different_models_fail_with_a_message() {
    if worker("mismatch", |_| {
        let strategy = MultiWorkerMirroredStrategy::new()?;
        let width = if strategy.cluster_resolver().is_chief() {
            128
        } else {
            96
        };
        let mut m = strategy.scope(|| mlp(width))?;
        let (x, y) = data()?;
        m.fit(&x, &y, options(1, false)).map(drop)
    }) {
        return;
    }
    let dir = temp_dir("mismatch");
    let out = mpirun(
        "workers_that_build_different_models_fail_with_a_message",
        "mismatch",
        &dir,
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("different models") && err.contains("hidden1"),
        "{err}"
    );
}

#[test]
fn the_demo_trains_on_two_workers_and_only_the_chief_speaks() {
    let dir = temp_dir("demo");
    let out = Command::new("mpirun")
        .args(["-np", "2", "--oversubscribe"])
        .arg(env!("CARGO_BIN_EXE_ferroflow"))
        .args(["demo", "--distributed", "--epochs", "3", "--save"])
        .arg(dir.join("model"))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .expect("mpirun");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("training on 2 workers"), "{text}");
    assert_eq!(text.matches("Epoch 1/3").count(), 1, "{text}");
    assert_eq!(text.matches("test loss").count(), 1, "{text}");
    assert!(dir.join("model").join("model.tflite").is_file());
}

#[test]
fn a_worker_that_fails_alone_ends_the_job_instead_of_hanging() {
    if worker("alone", |_| {
        let strategy = MultiWorkerMirroredStrategy::new()?;
        if !strategy.cluster_resolver().is_chief() {
            // A failure only this worker sees (a missing file, say), before training.
            return Err(ff::Error::invalid(
                "test",
                "worker 1 could not read its input",
            ));
        }
        let mut m = strategy.scope(|| mlp(128))?;
        let (x, y) = data()?;
        m.fit(&x, &y, options(1, false)).map(drop)
    }) {
        return;
    }
    let dir = temp_dir("alone");
    let start = Instant::now();
    let out = mpirun(
        "a_worker_that_fails_alone_ends_the_job_instead_of_hanging",
        "alone",
        &dir,
        &[("FERROFLOW_MPI_EXIT_TIMEOUT_S", "3")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("could not read its input"), "{err}");
    assert!(err.contains("ending the MPI job"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(60));
}
