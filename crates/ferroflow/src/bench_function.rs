//! `ferroflow bench function`: the training steps of [`ferroflow::workloads`] eagerly and
//! compiled; `tools/bench_compare.py function` compares them with TensorFlow's
//! `tf.function(jit_compile=True)`.

use crate::bench_core::{best_of, report};
use ferroflow as ff;
use ff::workloads::Workload;

/// ms per step, best of `reps` runs.
fn measure(w: Workload, reps: usize, compiled: bool) -> ff::Result<f64> {
    let steps = match w {
        Workload::Mlp(_) => 30,
        Workload::Cnn(_) => 5,
    };
    let mut run = w.runner(compiled)?;
    let t = best_of(reps, || run(steps))?;
    Ok(t / steps as f64 * 1e3)
}

/// The peak resident memory of this process so far, in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Peak resident memory while running MLP batch-128 steps after warm-up (tracing
/// included in the warm-up), in MiB: the peak is reset (`/proc/self/clear_refs`) once the
/// steps are in their steady state.
fn steady_peak_rss_mib(compiled: bool) -> ff::Result<f64> {
    let mut run = Workload::Mlp(128).runner(compiled)?;
    run(5)?;
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    run(50)?;
    Ok(peak_rss_mib())
}

/// Prints `<workload>_<eager|compiled>_ms` for every workload (or only `mode`, then also
/// the process's `peak_rss_mib`, for running each mode in its own process).
pub fn run(json: bool, reps: usize, mode: Option<&str>) -> ff::Result<()> {
    let mut figures: Vec<(String, f64, &str)> = Vec::new();
    for w in [Workload::Mlp(32), Workload::Mlp(128), Workload::Cnn(32)] {
        for compiled in [false, true] {
            let label = if compiled { "compiled" } else { "eager" };
            if mode.is_some_and(|m| m != label) {
                continue;
            }
            figures.push((
                format!("{}_{label}_ms", w.name()),
                measure(w, reps, compiled)?,
                "ms",
            ));
        }
    }
    if let Some(m) = mode {
        figures.push((
            format!("{m}_peak_rss_mib"),
            steady_peak_rss_mib(m == "compiled")?,
            "MiB",
        ));
    }
    let refs: Vec<(&str, f64, &str)> = figures
        .iter()
        .map(|(n, v, u)| (n.as_str(), *v, *u))
        .collect();
    report(&refs, json);
    Ok(())
}
