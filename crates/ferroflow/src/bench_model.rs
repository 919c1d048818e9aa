//! `ferroflow bench tflite|keras --model PATH`: latency of any model file on inputs its
//! signature asks for (random values of the declared dtype and shape, `--batch` rows
//! where the first dimension is dynamic), as p50 and p99 of single calls, and the peak
//! resident memory of the process; for `.tflite` files, optionally the time and achieved
//! GFLOP/s of the heaviest layers (`--profile N`).

use crate::bench_core::{json_rows, report};
use crate::heap_meter::peak_rss_mib;
use ferroflow as ff;
use std::path::Path;
use std::time::Instant;

/// Dynamic dimensions other than the batch (a text model's sequence length) are this long.
const DYNAMIC_LEN: usize = 32;

/// A random input of `dtype` and `shape` (`None`: the batch for the first dimension,
/// [`DYNAMIC_LEN`] elsewhere): floats in [0, 1), integers in [0, 2) (valid ids for any
/// embedding), booleans.
pub fn random_input(
    shape: &[Option<usize>],
    dtype: ff::DType,
    batch: usize,
    seed: u64,
) -> ff::Result<ff::Tensor> {
    let dims: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, d)| d.unwrap_or(if i == 0 { batch } else { DYNAMIC_LEN }))
        .collect();
    let u = ff::random::uniform(&dims, 0.0, 1.0, ff::DType::F32, Some(seed))?;
    match dtype {
        d if d.is_float() => u.cast(d),
        ff::DType::Bool => u.greater(&ff::Tensor::scalar(0.5f32)),
        // Casting truncates: 0 or 1.
        d => u.mul_scalar(2.0)?.cast(d),
    }
}

/// What the timed calls measured.
struct Timed {
    /// p50 and p99 in ms.
    p50: f64,
    p99: f64,
    /// The process's peak resident memory right after them, in MiB (so that the
    /// profiled calls after them, which run a batch whole, do not count).
    peak_rss_mib: f64,
}

/// `reps` timed calls of `f` after two warm-up calls.
fn percentiles(reps: usize, mut f: impl FnMut() -> ff::Result<()>) -> ff::Result<Timed> {
    f()?;
    f()?;
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f().map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<ff::Result<_>>()?;
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok(Timed {
        p50: at(0.5),
        p99: at(0.99),
        peak_rss_mib: peak_rss_mib(),
    })
}

/// Prints `<stem>_b<batch>_p50_ms`, `_p99_ms` and `peak_rss_mib` for `f`, and from
/// the profiled operators `ops`, the `top` with the most work and the time per builtin
/// (`layers` and `op_ms` in JSON).
fn print(stem: &str, batch: usize, p: Timed, json: bool, ops: &[ff::lite::OpProfile], top: usize) {
    let layers = heaviest(ops, top);
    let by_op = time_by_op(ops);
    let (p50, p99) = (
        format!("{stem}_b{batch}_p50_ms"),
        format!("{stem}_b{batch}_p99_ms"),
    );
    let rows = [
        (p50.as_str(), p.p50, "ms"),
        (p99.as_str(), p.p99, "ms"),
        ("peak_rss_mib", p.peak_rss_mib, "MiB"),
    ];
    if !json {
        report(&rows, false);
        for (op, t) in &by_op {
            println!("{op:<30} {:>10.3} ms", t * 1e3);
        }
        for l in &layers {
            println!(
                "op {:<4} {:<20} {:<22} {:>9.3} ms {:>8.1} {}",
                l.index,
                l.op,
                format!("{:?}", l.output_shape),
                l.seconds * 1e3,
                l.gflops(),
                if l.int8 { "GOP/s (int8)" } else { "GFLOP/s" }
            );
        }
        return;
    }
    let mut obj = json_rows(&rows);
    if !layers.is_empty() {
        let list = layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "index": l.index,
                    "op": l.op,
                    "output_shape": l.output_shape,
                    "ms": l.seconds * 1e3,
                    "macs": l.macs,
                    "gflops": l.gflops(),
                    "int8": l.int8,
                })
            })
            .collect();
        obj.insert("layers".into(), serde_json::Value::Array(list));
        let op_ms = by_op
            .iter()
            .map(|(op, t)| (op.to_string(), serde_json::json!(t * 1e3)))
            .collect();
        obj.insert("op_ms".into(), serde_json::Value::Object(op_ms));
    }
    println!("{}", serde_json::Value::Object(obj));
}

/// Every operator's median time over `reps` profiled calls of `interp`, in execution
/// order.
fn profile_ops(
    interp: &ff::lite::Interpreter,
    inputs: &[ff::Tensor],
    reps: usize,
) -> ff::Result<Vec<ff::lite::OpProfile>> {
    let runs = (0..reps.max(1))
        .map(|_| interp.run_profiled(inputs).map(|(_, p)| p))
        .collect::<ff::Result<Vec<_>>>()?;
    let mut median = runs[0].clone();
    for (k, op) in median.iter_mut().enumerate() {
        let mut times: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.get(k))
            .map(|p| p.seconds)
            .collect();
        times.sort_by(f64::total_cmp);
        op.seconds = times[times.len() / 2];
    }
    Ok(median)
}

/// Total time per builtin (`CONV_2D`: 12.3 ms, ...), most first.
fn time_by_op(ops: &[ff::lite::OpProfile]) -> Vec<(&'static str, f64)> {
    let mut totals: Vec<(&'static str, f64)> = Vec::new();
    for p in ops {
        match totals.iter_mut().find(|(name, _)| *name == p.op) {
            Some((_, t)) => *t += p.seconds,
            None => totals.push((p.op, p.seconds)),
        }
    }
    totals.sort_by(|a, b| b.1.total_cmp(&a.1));
    totals
}

/// The `top` operators of `ops` with the most multiply-adds, most work first.
fn heaviest(ops: &[ff::lite::OpProfile], top: usize) -> Vec<ff::lite::OpProfile> {
    let mut heavy: Vec<_> = ops.iter().filter(|p| p.macs > 0).cloned().collect();
    heavy.sort_by(|a, b| b.macs.cmp(&a.macs).then(b.seconds.total_cmp(&a.seconds)));
    heavy.truncate(top);
    heavy
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// Times a `.tflite` file in ferroflow's interpreter (on `threads` threads of its own;
/// 0: the shared pool).
pub fn tflite(
    path: &Path,
    batch: usize,
    threads: usize,
    reps: usize,
    profile: usize,
    json: bool,
) -> ff::Result<()> {
    let interp = ff::lite::Interpreter::from_file(path)?.with_threads(threads)?;
    let inputs = interp
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let shape: Vec<Option<usize>> = t
                .shape
                .iter()
                .enumerate()
                .map(|(d, &v)| (t.signature.get(d) != Some(&-1)).then_some(v as usize))
                .collect();
            random_input(&shape, ff::lite::core_dtype(t.dtype), batch, i as u64)
        })
        .collect::<ff::Result<Vec<_>>>()?;
    let p = percentiles(reps, || interp.run(&inputs).map(|_| ()))?;
    let ops = if profile > 0 {
        profile_ops(&interp, &inputs, reps)?
    } else {
        Vec::new()
    };
    print(&stem(path), batch, p, json, &ops, profile);
    Ok(())
}

/// Times a saved model, `.keras` or `.h5` file through the compiled predict step.
pub fn keras(path: &Path, batch: usize, reps: usize, json: bool) -> ff::Result<()> {
    let model = ff::keras::load_model(path)?;
    let specs = model.input_specs().ok_or_else(|| {
        ff::Error::invalid(
            "bench",
            format!(
                "model '{}' has no known input specs to make inputs from",
                model.name()
            ),
        )
    })?;
    let inputs = specs
        .iter()
        .enumerate()
        .map(|(i, s)| random_input(&s.shape, s.dtype, batch, i as u64))
        .collect::<ff::Result<Vec<_>>>()?;
    let p = percentiles(reps, || model.predict(inputs.clone(), batch).map(|_| ()))?;
    print(&stem(path), batch, p, json, &[], 0);
    Ok(())
}

/// Times an imported `.onnx` file (compiled with `function`); with `profile` > 0 also
/// prints that many of the plan's slowest nodes (the batch run whole).
pub fn onnx(path: &Path, batch: usize, reps: usize, profile: usize, json: bool) -> ff::Result<()> {
    let model = ff::onnx::load(path)?;
    let inputs = model
        .model()
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, t)| random_input(&t.shape, t.dtype, batch, i as u64))
        .collect::<ff::Result<Vec<_>>>()?;
    let p = percentiles(reps, || model.call(&inputs).map(|_| ()))?;
    print(&stem(path), batch, p, json, &[], 0);
    if profile > 0 {
        let table = model.profile(&inputs, reps.max(1))?;
        table
            .lines()
            .take(profile + 2)
            .for_each(|l| eprintln!("{l}"));
    }
    Ok(())
}
