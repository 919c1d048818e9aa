//! `ferroflow bench core`: the tensor-core workloads that `tools/bench_compare.py core`
//! also runs in NumPy and TensorFlow. Reports the best of N runs.

use ferroflow as ff;
use std::time::Instant;

/// Best wall time in seconds of `reps` calls of `f` (after one warm-up call).
pub(crate) fn best_of(reps: usize, mut f: impl FnMut() -> ff::Result<()>) -> ff::Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Runs every workload and prints `name value unit` lines (or one JSON object).
pub fn run(json: bool, reps: usize) -> ff::Result<()> {
    let f32t = ff::DType::F32;
    let mut rows: Vec<(&str, f64, &str)> = Vec::new();
    for (name, m, k, n) in [
        ("matmul_1024", 1024, 1024, 1024),
        ("matmul_2048", 2048, 2048, 2048),
        ("matmul_64x784x128", 64, 784, 128),
    ] {
        let a = ff::random::normal(&[m, k], 0.0, 1.0, f32t, Some(1))?;
        let b = ff::random::normal(&[k, n], 0.0, 1.0, f32t, Some(2))?;
        let r = if m >= 2048 { reps.min(3) } else { reps * 3 };
        let t = best_of(r, || a.matmul(&b).map(|_| ()))?;
        rows.push((name, 2.0 * (m * k * n) as f64 / t / 1e9, "GFLOP/s"));
    }
    let n = 1 << 24;
    let x = ff::random::uniform(&[n], -1.0, 1.0, f32t, Some(3))?;
    let y = ff::random::uniform(&[n], -1.0, 1.0, f32t, Some(4))?;
    let t = best_of(reps, || x.add(&y).map(|_| ()))?;
    rows.push(("add_2^24", 12.0 * n as f64 / t / 1e9, "GB/s"));
    let t = best_of(reps, || x.exp().map(|_| ()))?;
    rows.push(("exp_2^24", 8.0 * n as f64 / t / 1e9, "GB/s"));
    let t = best_of(reps, || x.sum(ff::Axes::All, false).map(|_| ()))?;
    rows.push(("sum_2^24", 4.0 * n as f64 / t / 1e9, "GB/s"));
    let img = ff::random::normal(&[32, 32, 32, 64], 0.0, 1.0, f32t, Some(5))?;
    let ker = ff::random::normal(&[3, 3, 64, 64], 0.0, 0.1, f32t, Some(6))?;
    let t = best_of(reps, || {
        img.conv2d(&ker, (1, 1), ff::ops::conv::Padding::Same, (1, 1))
            .map(|_| ())
    })?;
    rows.push((
        "conv2d_32x32x64_3x3x64_b32",
        2.0 * (32 * 32 * 32 * 64 * 64 * 9) as f64 / t / 1e9,
        "GFLOP/s",
    ));
    let a = ff::Tensor::from_vec(vec![1.0f32], &[1])?;
    let b = ff::Tensor::from_vec(vec![2.0f32], &[1])?;
    let iters = 200_000;
    let t = best_of(reps, || {
        for _ in 0..iters {
            std::hint::black_box(a.add(&b)?);
        }
        Ok(())
    })?;
    rows.push(("tiny_add", t / iters as f64 * 1e9, "ns"));
    report(&rows, json);
    Ok(())
}

/// `rows` as a JSON object of name to value.
pub(crate) fn json_rows(rows: &[(&str, f64, &str)]) -> serde_json::Map<String, serde_json::Value> {
    rows.iter()
        .map(|(k, v, _)| (k.to_string(), serde_json::json!(v)))
        .collect()
}

/// Prints `name value unit` rows, or one JSON object of `name: value`.
pub(crate) fn report(rows: &[(&str, f64, &str)], json: bool) {
    if json {
        println!("{}", serde_json::Value::Object(json_rows(rows)));
    } else {
        for (k, v, u) in rows {
            println!("{k:<30} {v:>10.2} {u}");
        }
    }
}
