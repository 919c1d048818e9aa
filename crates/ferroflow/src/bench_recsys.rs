//! `ferroflow bench recsys --mode ROWS:OPTIMIZER`: the train step of an embedding-heavy
//! model (a ROWS x 64 table, 1024 examples of 8 ids each, mean-pooled into a linear
//! output, squared error) with `lazy_adam` or `adagrad`: step time and the process's peak
//! memory, the workload `tools/bench_compare.py recsys` also runs in TensorFlow.

use crate::bench_core::report;
use ferroflow as ff;
use ff::keras::optimizers::Optimizer;
use ff::{Axes, DType, GradientTape, Tensor, Variable};
use std::time::Instant;

/// Width of the table's rows.
const DIM: usize = 64;
/// Examples per step.
const BATCH: usize = 1024;
/// Ids per example.
const IDS: usize = 8;

/// Parses `ROWS:OPTIMIZER`.
fn parse(mode: Option<&str>) -> ff::Result<(usize, String)> {
    let bad = || {
        ff::Error::invalid(
            "bench recsys",
            "--mode must be ROWS:lazy_adam or ROWS:adagrad",
        )
    };
    let (rows, opt) = mode
        .unwrap_or("1000000:lazy_adam")
        .split_once(':')
        .ok_or_else(bad)?;
    let rows = rows.parse::<usize>().map_err(|_| bad())?;
    if !matches!(opt, "lazy_adam" | "adagrad") || rows == 0 {
        return Err(bad());
    }
    Ok((rows, opt.to_string()))
}

/// Times `reps` steps after two warm-up steps; reports the median step and peak memory.
pub fn run(json: bool, reps: usize, mode: Option<&str>) -> ff::Result<()> {
    let (rows, opt) = parse(mode)?;
    let table = Variable::new(ff::random::uniform(
        &[rows, DIM],
        -0.05,
        0.05,
        DType::F32,
        Some(1),
    )?);
    let w = Variable::new(ff::random::uniform(
        &[DIM, 1],
        -0.1,
        0.1,
        DType::F32,
        Some(2),
    )?);
    let mut optimizer = match opt.as_str() {
        "lazy_adam" => Optimizer::lazy_adam(0.001),
        _ => Optimizer::adagrad(0.01),
    };
    let mut times = Vec::new();
    for step in 0..reps.max(1) + 2 {
        // Ids spread over the whole table, a different batch every step.
        let ids: Vec<i64> = (0..BATCH * IDS)
            .map(|i| ((i as u64 * 2_654_435_761 + step as u64 * 40_503) % rows as u64) as i64)
            .collect();
        let ids = Tensor::from_vec(ids, &[BATCH, IDS])?;
        let target = Tensor::full(&[BATCH, 1], 0.5, DType::F32)?;
        let start = Instant::now();
        let tape = GradientTape::new();
        let pooled = table.value().gather(&ids, 0)?.mean(Axes::from(1), false)?;
        let y = pooled.matmul(&w.value())?;
        let loss = y.sub(&target)?.square()?.mean(Axes::All, false)?;
        let grads = tape.gradient(&loss, &[&table, &w])?;
        optimizer.apply_gradients(&grads, &[&table, &w])?;
        if step >= 2 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let label = format!("{}m", rows / 1_000_000);
    report(
        &[
            (
                &format!("recsys_{label}_{opt}_step_ms"),
                times[times.len() / 2],
                "ms",
            ),
            (
                &format!("recsys_{label}_{opt}_peak_rss_mib"),
                crate::heap_meter::peak_rss_mib(),
                "MiB",
            ),
        ],
        json,
    );
    Ok(())
}
