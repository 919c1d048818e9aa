//! The `ferroflow` command-line tool.

mod bench_core;
mod bench_train;

use clap::{Parser, Subcommand};
use ferroflow as ff;

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
    /// Runs the main demo (today: a tour of the tensor API; a trained model once Keras lands).
    Demo {
        /// Seed for all randomness.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Where to write the demo's output array (.npy).
        #[arg(long, default_value = "demo_output.npy")]
        save: std::path::PathBuf,
    },
    /// Runs a benchmark suite and prints its figures.
    Bench {
        /// The suite: `core` or `train`.
        suite: String,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Repetitions per workload (best of N is reported).
        #[arg(long, default_value_t = 7)]
        reps: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { seed, save } => demo(seed, &save),
        Command::Bench { suite, json, reps } => match suite.as_str() {
            "core" => bench_core::run(json, reps),
            "train" => bench_train::run(json, reps),
            other => Err(ff::Error::invalid(
                "bench",
                format!("unknown suite '{other}' (available: core, train)"),
            )),
        },
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// A tour of the tensor API: a small conv net forward pass on random images.
fn demo(seed: u64, save: &std::path::Path) -> ff::Result<()> {
    ff::random::set_seed(seed);
    let images = ff::random::uniform(&[8, 28, 28, 1], 0.0, 1.0, ff::DType::F32, None)?;
    let k1 = ff::random::truncated_normal(&[3, 3, 1, 16], 0.0, 0.3, ff::DType::F32, None)?;
    let k2 = ff::random::truncated_normal(&[3, 3, 16, 32], 0.0, 0.1, ff::DType::F32, None)?;
    let w = ff::random::truncated_normal(&[32, 10], 0.0, 0.2, ff::DType::F32, None)?;
    let padding = ff::ops::conv::Padding::Same;
    let h = images.conv2d(&k1, (1, 1), padding, (1, 1))?.relu()?;
    let h = h.max_pool2d((2, 2), (2, 2), ff::ops::conv::Padding::Valid)?;
    let h = h.conv2d(&k2, (2, 2), padding, (1, 1))?.gelu()?;
    let features = h.global_avg_pool()?;
    let probs = features.matmul(&w)?.softmax(-1)?;
    let classes = probs.argmax(-1)?;
    println!("input            {:?}", images.shape());
    println!("conv+pool+conv   {:?}", h.shape());
    println!("probabilities    {probs}");
    println!("predicted class  {classes}");
    ff::npy::write_npy(save, &probs)?;
    println!("saved probabilities to {}", save.display());
    Ok(())
}
