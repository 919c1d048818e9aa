//! `BackupAndRestore`: a fit that dies in epoch 3 of 5 and is run again from the start of
//! the program ends with the weights of a fit that never stopped (shuffling and dropout
//! included). One test in this binary: it relies on the global random state.

use ferroflow_core::{random, Error, Result, Tensor};
use ferroflow_keras::callbacks::{BackupAndRestore, Callback};
use ferroflow_keras::layers::{Dense, Dropout};
use ferroflow_keras::{FitOptions, Input, Model, SymbolicCall, Verbose};

/// Fails at the start of one epoch, as a worker killed there would stop.
struct DieAt(usize);

impl Callback for DieAt {
    fn on_epoch_begin(&mut self, epoch: usize, _: &mut Model) -> Result<()> {
        if epoch == self.0 {
            return Err(Error::invalid("test", "killed"));
        }
        Ok(())
    }
}

fn data() -> Result<(Tensor, Tensor)> {
    let n = 96;
    let x: Vec<f32> = (0..n * 4)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
        .collect();
    let y: Vec<i64> = (0..n).map(|i| (i * 7 % 3) as i64).collect();
    Ok((Tensor::from_vec(x, &[n, 4])?, Tensor::from_vec(y, &[n])?))
}

/// The program up to `fit`: seed, model, compile (what a relaunched job does again).
fn program() -> Result<Model> {
    ferroflow_keras::clear_session();
    random::set_seed(11);
    let inputs = Input::new(&[4]);
    let h = Dense::new(16).activation("relu").apply(&inputs)?;
    let h = Dropout::new(0.3)?.apply(&h)?;
    let out = Dense::new(3).activation("softmax").apply(&h)?;
    let mut m = Model::new(&[inputs], &[out])?;
    m.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])?;
    Ok(m)
}

fn options() -> FitOptions {
    FitOptions::new()
        .epochs(5)
        .batch_size(16)
        .verbose(Verbose::Silent)
}

#[test]
fn a_resumed_fit_ends_where_an_uninterrupted_one_does() -> Result<()> {
    let (x, y) = data()?;
    let mut clean = program()?;
    clean.fit(&x, &y, options())?;
    let want = clean.get_weights();

    let dir = std::env::temp_dir().join(format!("ff_backup_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut first = program()?;
    let died = first.fit(
        &x,
        &y,
        options()
            .callback(BackupAndRestore::new(&dir))
            .callback(DieAt(2)),
    );
    assert!(died.is_err());
    assert!(
        dir.join("training_state.json").is_file(),
        "the backup of epoch 2 is there"
    );

    let mut again = program()?;
    let history = again.fit(&x, &y, options().callback(BackupAndRestore::new(&dir)))?;
    assert_eq!(
        history.epoch,
        vec![2, 3, 4],
        "resumes with the epoch that died"
    );
    for (i, (g, w)) in again.get_weights().iter().zip(&want).enumerate() {
        assert_eq!(g.to_f64_vec(), w.to_f64_vec(), "weight {i}");
    }
    assert!(
        !dir.exists(),
        "the backup is deleted once training completes"
    );
    Ok(())
}
