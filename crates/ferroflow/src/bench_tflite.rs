//! `ferroflow bench tflite`: batch-1 latency of a model's float and int8 `.tflite` files in
//! ferroflow's interpreter; `tools/bench_compare.py tflite` runs the same files in LiteRT.

use crate::bench_core::{best_of, report};
use ferroflow as ff;
use std::path::Path;

/// Single-row invocations per timed repetition.
const CALLS: usize = 200;

/// ms per batch-1 call of the model in `file` on the first row of `x`, best of `reps`.
fn latency_ms(file: &Path, x: &ff::Tensor, reps: usize) -> ff::Result<f64> {
    let interp = ff::lite::Interpreter::from_file(file)?;
    // The first sample, whatever the rank (images too).
    let mut size = vec![-1isize; x.rank()];
    if let Some(first) = size.first_mut() {
        *first = 1;
    }
    let row = x
        .slice(&vec![0; x.rank()], &size)?
        .cast(ff::DType::F32)?
        .contiguous();
    let t = best_of(reps, || {
        for _ in 0..CALLS {
            interp.run_float(std::slice::from_ref(&row))?;
        }
        Ok(())
    })?;
    Ok(t / CALLS as f64 * 1e3)
}

/// Prints `cnn_{float,int8}_ms` and the files' sizes for the model directory `dir`.
pub fn run(json: bool, reps: usize, dir: Option<&Path>) -> ff::Result<()> {
    let dir = dir.ok_or_else(|| {
        ff::Error::invalid(
            "bench",
            "the tflite suite needs --model DIR (a directory saved by `ferroflow demo`)",
        )
    })?;
    let x = ff::npy::read_npy(dir.join("sample_inputs.npy"))?;
    let mut rows = Vec::new();
    for (name, file) in [("float", "model.tflite"), ("int8", "model_int8.tflite")] {
        let path = dir.join(file);
        let size = std::fs::metadata(&path)
            .map_err(|source| ff::Error::Io {
                path: path.display().to_string(),
                source,
            })?
            .len() as f64;
        rows.push((format!("cnn_{name}_ms"), latency_ms(&path, &x, reps)?, "ms"));
        rows.push((format!("cnn_{name}_kib"), size / 1024.0, "KiB"));
    }
    let refs: Vec<(&str, f64, &str)> = rows.iter().map(|(n, v, u)| (n.as_str(), *v, *u)).collect();
    report(&refs, json);
    Ok(())
}
