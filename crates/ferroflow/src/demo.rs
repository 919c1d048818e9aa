//! `ferroflow demo`: trains a digits classifier (MLP or CNN) Keras-style, evaluates it on a
//! held-out split, saves it and exports it to TFLite (float32 and int8).

use ferroflow as ff;
use ff::distribute::Strategy;
use ff::keras::callbacks::{EarlyStopping, TensorBoard};
use ff::keras::datasets::digits;
use ff::keras::layers::{Conv2D, Dense, Dropout, Flatten, MaxPooling2D, Rescaling, Reshape};
use ff::keras::{FitOptions, Input, Model, SymbolicCall};
use ff::ops::conv::Padding;
use std::path::{Path, PathBuf};

/// The demo's two models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoModel {
    /// A Keras-style MLP (64-64-10 with dropout).
    Mlp,
    /// A small Conv2D network.
    Cnn,
}

impl DemoModel {
    fn name(self) -> &'static str {
        match self {
            DemoModel::Mlp => "mlp",
            DemoModel::Cnn => "cnn",
        }
    }
}

/// The demo's settings.
pub struct DemoArgs {
    /// Which model to train.
    pub model: DemoModel,
    /// Seed for all randomness.
    pub seed: u64,
    /// Epochs to train (the default depends on the model).
    pub epochs: Option<usize>,
    /// Where to save the trained model.
    pub save: Option<PathBuf>,
    /// Where to write TensorBoard logs, if anywhere.
    pub logdir: Option<PathBuf>,
    /// Train op by op instead of with the compiled train step.
    pub run_eagerly: bool,
    /// Train with `MultiWorkerMirroredStrategy` on the workers of the MPI job.
    pub distributed: bool,
}

/// Pixels 0-16 in, class probabilities out: Rescaling is part of the model.
fn mlp() -> ff::Result<Model> {
    let inputs = Input::new(&[64]);
    let x = Rescaling::new(1.0 / 16.0, 0.0).apply(&inputs)?;
    let x = Dense::new(128).activation("relu").apply(&x)?;
    let x = Dropout::new(0.2)?.apply(&x)?;
    let x = Dense::new(64).activation("relu").apply(&x)?;
    let outputs = Dense::new(10).activation("softmax").apply(&x)?;
    Model::named(&[inputs], &[outputs], "digits_mlp")
}

fn cnn() -> ff::Result<Model> {
    let model = Model::sequential(Some("digits_cnn"));
    model.add(Input::new(&[64]))?;
    model.add(Rescaling::new(1.0 / 16.0, 0.0))?;
    model.add(Reshape::new(&[8, 8, 1])?)?;
    model.add(
        Conv2D::new(32, &[3])
            .padding(Padding::Same)
            .activation("relu"),
    )?;
    model.add(
        Conv2D::new(64, &[3])
            .padding(Padding::Same)
            .activation("relu"),
    )?;
    model.add(MaxPooling2D::new(&[2]))?;
    model.add(Flatten::new())?;
    model.add(Dropout::new(0.25)?)?;
    model.add(Dense::new(128).activation("relu"))?;
    model.add(Dense::new(10).activation("softmax"))?;
    Ok(model)
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> ff::Result<()> {
    // First, so that the workers share the cores before any kernel starts rayon's pool.
    let strategy = if args.distributed {
        Some(ff::distribute::MultiWorkerMirroredStrategy::new()?)
    } else {
        None
    };
    ff::random::set_seed(args.seed);
    let ((x_train, y_train), (x_test, y_test)) = digits::load_split(0.2, args.seed)?;
    let build = || -> ff::Result<(Model, usize)> {
        let (mut model, epochs) = match args.model {
            DemoModel::Mlp => (mlp()?, args.epochs.unwrap_or(40)),
            DemoModel::Cnn => (cnn()?, args.epochs.unwrap_or(20)),
        };
        model.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])?;
        Ok((model, epochs))
    };
    let (mut model, epochs) = match &strategy {
        Some(s) => s.scope(build)?,
        None => build()?,
    };
    // Under a strategy only the chief prints and writes files.
    let chief = model.is_chief();
    if chief {
        println!(
            "digits: {} training and {} held-out images of 8x8 pixels (0-16), 10 classes",
            y_train.shape()[0],
            y_test.shape()[0]
        );
        if let Some(s) = &strategy {
            println!(
                "training on {} workers (MultiWorkerMirroredStrategy over MPI), global batch 32",
                s.num_replicas_in_sync()
            );
        }
        print!("{}", model.summary());
    }
    model.set_run_eagerly(args.run_eagerly)?;
    let start = std::time::Instant::now();
    let early = EarlyStopping::new("val_loss", 8).restore_best_weights(true);
    let mut options = FitOptions::new()
        .epochs(epochs)
        .batch_size(32)
        .validation_split(0.1)
        .callback(early);
    if let Some(dir) = &args.logdir {
        options = options.callback(TensorBoard::new(dir));
    }
    let history = model.fit(&x_train, &y_train, options)?;
    let secs = start.elapsed().as_secs_f64();
    let logs = model.evaluate(&x_test, &y_test, 256)?;
    if !chief {
        return Ok(());
    }
    println!("trained {} epochs in {secs:.1} s", history.epoch.len());
    let save = args
        .save
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("digits_{}", args.model.name())));
    model.save(&save)?;
    write_samples(&save, &x_test, &y_test)?;
    println!(
        "saved the model to {} (predict with: ferroflow predict --model {} --input {} --output predictions.npy)",
        save.display(),
        save.display(),
        save.join("sample_inputs.npy").display()
    );
    println!("test loss: {:.4}", logs["loss"]);
    println!("val_accuracy: {:.3}", logs["accuracy"]);
    export_tflite(&model, &save, &x_train, &x_test, &y_test)?;
    Ok(())
}

/// Rows of training data used to calibrate the int8 model.
const CALIBRATION_ROWS: usize = 256;

/// Writes `model.tflite` (float32) and `model_int8.tflite` (full-integer, int8 inputs and
/// outputs, calibrated on training rows) into `dir`, and reports their held-out accuracy
/// in ferroflow's TFLite interpreter.
fn export_tflite(
    model: &Model,
    dir: &Path,
    x_train: &ff::Tensor,
    x_test: &ff::Tensor,
    y_test: &ff::Tensor,
) -> ff::Result<()> {
    use ff::lite::quantize::{calibration_batches, full_integer, IoType};
    let float = ff::lite::convert::from_keras(model)?;
    let samples = calibration_batches(&float, std::slice::from_ref(x_train), CALIBRATION_ROWS)?;
    let int8 = full_integer(&float, &samples, IoType::Int8)?;
    let labels = y_test.cast(ff::DType::I64)?.to_vec::<i64>()?;
    for (file, lite) in [("model.tflite", &float), ("model_int8.tflite", &int8)] {
        let bytes = ff::lite::write::to_bytes(lite);
        let path = dir.join(file);
        ff::atomic_file::write_atomic(&path, &bytes)?;
        let interp = ff::lite::Interpreter::from_bytes(&bytes)?;
        let probs = interp.run_float(&[x_test.cast(ff::DType::F32)?])?.remove(0);
        let predicted = probs.argmax(-1)?.cast(ff::DType::I64)?.to_vec::<i64>()?;
        let correct = predicted
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p == l)
            .count();
        println!(
            "exported {} ({} KiB): held-out accuracy {:.3} in ferroflow's TFLite interpreter",
            path.display(),
            bytes.len().div_ceil(1024),
            correct as f64 / labels.len().max(1) as f64
        );
    }
    Ok(())
}

/// A few held-out images and labels next to the model, to try `ferroflow predict` on.
fn write_samples(dir: &Path, x: &ff::Tensor, y: &ff::Tensor) -> ff::Result<()> {
    let n = x.shape()[0].min(16);
    ff::npy::write_npy(
        dir.join("sample_inputs.npy"),
        &x.slice(&[0, 0], &[n as isize, -1])?.contiguous(),
    )?;
    ff::npy::write_npy(
        dir.join("sample_labels.npy"),
        &y.slice(&[0], &[n as isize])?.contiguous(),
    )
}
