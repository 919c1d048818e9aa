//! The `ferroflow` command-line tool.

mod bench_apps;
mod bench_core;
mod bench_data;
mod bench_distribute;
mod bench_function;
mod bench_keras;
mod bench_model;
mod bench_recsys;
mod bench_tflite;
mod bench_train;
mod convert;
mod demo;
mod heap_meter;
mod inspect;
mod predict;
mod web;

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
        /// The model to train.
        #[arg(long, value_enum, default_value_t = demo::DemoModel::Mlp)]
        model: demo::DemoModel,
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
        /// Train on every worker of an MPI job, one replica each
        /// (`mpirun -np 2 ferroflow demo --distributed`; needs the `mpi` feature).
        #[arg(long)]
        distributed: bool,
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
    /// Serves a browser demo of a model on localhost: the model runs in the page, in
    /// WebAssembly (`ferroflow.js`, `loadModel('/model/')`).
    Web(web::WebArgs),
    /// Prints the Keras-style summary of a saved model.
    Summary {
        /// A ferroflow model directory or a Keras `.keras` / `.h5` file.
        #[arg(long)]
        model: std::path::PathBuf,
    },
    /// Shows what a model file expects and contains: its inputs and outputs (names,
    /// dtypes, shapes), ops or layers, parameters, quantisation and format version, and
    /// for `.tflite` files the operators ferroflow cannot run.
    Inspect {
        /// A ferroflow model directory, a `.keras`, `.h5` or `.tflite` file.
        #[arg(long)]
        model: std::path::PathBuf,
        /// Print the description as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs a benchmark suite and prints its figures.
    Bench {
        /// The suite.
        #[arg(value_enum)]
        suite: Suite,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Repetitions per workload (best of N is reported; timed calls with --model).
        #[arg(long, default_value_t = 7)]
        reps: usize,
        /// `function` suite: run just `eager` or `compiled` and report peak memory;
        /// `keras` suite: `efficientnet` runs EfficientNetV2B0 inference instead of `fit`.
        #[arg(long)]
        mode: Option<String>,
        /// `tflite`, `keras` or `onnx` suite: time this model file (random inputs of its
        /// signature; p50/p99 latency and peak memory). For `tflite`, a directory saved by
        /// `ferroflow demo` times its `model.tflite` and `model_int8.tflite` on its samples.
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        /// Rows per call where the model's first dimension is dynamic (with --model).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// `tflite` with --model: the interpreter's threads (LiteRT's num_threads; 0: the
        /// shared pool).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// `tflite` with --model: also profile the calls per operator and report the N
        /// layers with the most multiply-adds (time and achieved GFLOP/s); `onnx`: print
        /// the N slowest nodes of the compiled plan over the timed calls.
        #[arg(long, default_value_t = 0)]
        profile: usize,
    },
}

/// The benchmark suites.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Suite {
    /// Tensor-core kernels (matmul, elementwise, reductions).
    Core,
    /// Training steps.
    Train,
    /// Keras `fit` (or EfficientNetV2B0 inference, or a model file).
    Keras,
    /// Input pipelines.
    Data,
    /// Compiled functions against eager execution.
    Function,
    /// The TFLite interpreter.
    Tflite,
    /// An imported `.onnx` model (`--model` required).
    Onnx,
    /// Keras `fit` of an MLP on 60k samples, on one worker or (under mpirun, with the
    /// `mpi` feature) on every rank.
    Distribute,
    /// The train step of an embedding-heavy model (`--mode ROWS:lazy_adam|adagrad`).
    Recsys,
}

/// Runs one command.
fn run(command: Command) -> ff::Result<()> {
    match command {
        Command::Demo {
            model,
            seed,
            epochs,
            save,
            logdir,
            run_eagerly,
            distributed,
        } => demo::run(&demo::DemoArgs {
            model,
            seed,
            epochs,
            save,
            logdir,
            run_eagerly,
            distributed,
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
        Command::Web(args) => web::run(&args),
        Command::Summary { model } => {
            ff::keras::load_model(&model).map(|m| print!("{}", m.summary()))
        }
        Command::Inspect { model, json } => inspect::run(&model, json),
        Command::Bench {
            suite,
            json,
            reps,
            mode,
            model,
            batch,
            threads,
            profile,
        } => match (suite, model) {
            (Suite::Tflite, Some(m)) if m.is_file() => {
                bench_model::tflite(&m, batch, threads, reps, profile, json)
            }
            (Suite::Tflite, m) => bench_tflite::run(json, reps, m.as_deref()),
            (Suite::Keras, Some(m)) => bench_model::keras(&m, batch, reps, json),
            (Suite::Onnx, Some(m)) => bench_model::onnx(&m, batch, reps, profile, json),
            (Suite::Onnx, None) => Err(ff::Error::invalid(
                "bench",
                "the onnx suite times a model file: pass --model m.onnx",
            )),
            (Suite::Keras, None) if mode.as_deref() == Some("efficientnet") => {
                bench_apps::run(json, reps)
            }
            (Suite::Keras, None) => bench_keras::run(json, 3),
            (Suite::Function, _) => bench_function::run(json, reps, mode.as_deref()),
            (Suite::Core, _) => bench_core::run(json, reps),
            (Suite::Train, _) => bench_train::run(json, reps),
            (Suite::Data, _) => bench_data::run(json, reps.min(3)),
            (Suite::Distribute, _) => bench_distribute::run(json, reps.min(3)),
            (Suite::Recsys, _) => bench_recsys::run(json, reps, mode.as_deref()),
        },
    }
}

/// Exit status for an error in what the user gave (a file, an input, a model): clap
/// exits with 2 for bad command-line use.
const EXIT_BAD_INPUT: i32 = 1;

/// Lets a command whose output goes to a pipe that closes early (`ferroflow inspect ... |
/// head`) end quietly, as Unix tools do, instead of panicking at its next print (Rust
/// ignores SIGPIPE, so the write fails and `println!` panics). Not for the servers: a log
/// reader that goes away must not stop them.
fn end_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: sets the disposition of one signal to its default, before any thread that
    // could be writing starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Web(_)) {
        end_quietly_on_closed_pipe();
    }
    if let Err(e) = run(cli.command) {
        // The cause first, in the user's terms; what ferroflow was doing on the lines after.
        eprintln!("error: {e}");
        std::process::exit(EXIT_BAD_INPUT);
    }
}
