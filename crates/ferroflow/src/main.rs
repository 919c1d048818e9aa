//! The `ferroflow` command-line tool.

mod bench_apps;
mod bench_core;
mod bench_data;
mod bench_function;
mod bench_keras;
mod bench_tflite;
mod bench_train;
mod convert;
mod demo;
mod heap_meter;
mod predict;

use clap::{Parser, Subcommand};
use ferroflow as ff;

#[global_allocator]
static ALLOCATOR: heap_meter::HeapMeter = heap_meter::HeapMeter;

#[derive(Parser)]
#[command(
    name = "ferroflow",
    version,
    about = "A TensorFlow-class deep-learning framework in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trains a digits classifier Keras-style, evaluates it on held-out data and saves it.
    Demo {
        /// `mlp` or `cnn`.
        #[arg(long, default_value = "mlp")]
        model: String,
        /// Seed for all randomness (data split, initial weights, shuffling, dropout).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Number of epochs (default: 40 for the MLP, 20 for the CNN; early stopping may end sooner).
        #[arg(long)]
        epochs: Option<usize>,
        /// Directory to save the trained model to (default: digits_<model>).
        #[arg(long)]
        save: Option<std::path::PathBuf>,
        /// Write TensorBoard event files (per-epoch scalars) under this directory.
        #[arg(long)]
        logdir: Option<std::path::PathBuf>,
        /// Train op by op instead of with the compiled train step (Keras `run_eagerly`).
        #[arg(long)]
        run_eagerly: bool,
    },
    /// Runs a saved model on inputs from .npy files and writes its outputs as .npy.
    Predict {
        /// A saved model: a ferroflow model directory, a Keras `.keras` or legacy `.h5`
        /// file, or a `.tflite` file.
        #[arg(long)]
        model: std::path::PathBuf,
        /// One .npy per model input, in the model's input order.
        #[arg(long, required = true)]
        input: Vec<std::path::PathBuf>,
        /// Output .npy (further outputs go to NAME_1.npy, NAME_2.npy...).
        #[arg(long)]
        output: std::path::PathBuf,
        /// Batch size.
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
    },
    /// Converts a saved model to another format (`tflite`).
    Convert(convert::ConvertArgs),
    /// Serves models over TF Serving's REST API (`tensorflow_model_server` flags).
    Serve(ferroflow_serve::ServeArgs),
    /// Prints the Keras-style summary of a saved model.
    Summary {
        /// A ferroflow model directory or a Keras `.keras` / `.h5` file.
        #[arg(long)]
        model: std::path::PathBuf,
    },
    /// Runs a benchmark suite and prints its figures.
    Bench {
        /// The suite: `core`, `train`, `keras`, `data`, `function` or `tflite`.
        suite: String,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Repetitions per workload (best of N is reported).
        #[arg(long, default_value_t = 7)]
        reps: usize,
        /// `function` suite: run just `eager` or `compiled` and report peak memory;
        /// `keras` suite: `efficientnet` runs EfficientNetV2B0 inference instead of `fit`.
        #[arg(long)]
        mode: Option<String>,
        /// `tflite` suite: a directory with `model.tflite`, `model_int8.tflite` and
        /// `sample_inputs.npy` (what `ferroflow demo` saves).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo {
            model,
            seed,
            epochs,
            save,
            logdir,
            run_eagerly,
        } => demo::run(&demo::DemoArgs {
            model,
            seed,
            epochs,
            save,
            logdir,
            run_eagerly,
        }),
        Command::Predict {
            model,
            input,
            output,
            batch_size,
        } => predict::run(&model, &input, &output, batch_size),
        Command::Convert(args) => convert::run(&args),
        Command::Serve(args) => {
            ferroflow_serve::run(&args).map_err(|e| ff::Error::invalid("serve", e))
        }
        Command::Summary { model } => {
            ff::keras::load_model(&model).map(|m| print!("{}", m.summary()))
        }
        Command::Bench {
            suite,
            json,
            reps,
            mode,
            model,
        } => match suite.as_str() {
            "tflite" => bench_tflite::run(json, reps, model.as_deref()),
            "function" => bench_function::run(json, reps, mode.as_deref()),
            "core" => bench_core::run(json, reps),
            "train" => bench_train::run(json, reps),
            "keras" if mode.as_deref() == Some("efficientnet") => bench_apps::run(json, reps),
            "keras" => bench_keras::run(json, 3),
            "data" => bench_data::run(json, reps.min(3)),
            other => Err(ff::Error::invalid(
                "bench",
                format!(
                    "unknown suite '{other}' (available: core, train, keras, data, function, tflite)"
                ),
            )),
        },
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
