//! `ferroflow bench function`: the training steps of [`ferroflow::workloads`] eagerly and
//! compiled; `tools/bench_compare.py function` compares them with TensorFlow's
//! `tf.function(jit_compile=True)`.

use crate::bench_core::report;
use ferroflow as ff;
use ff::workloads::Workload;

/// ms per step of each requested mode (eager, compiled), best of `reps` runs (three
/// times as many for the MLPs). The modes'
/// runs alternate, so a burst of load on a shared machine slows both alike.
fn measure(w: Workload, reps: usize, modes: &[bool]) -> ff::Result<Vec<f64>> {
    let steps = match w {
        Workload::Mlp(_) => 30,
        Workload::Cnn(_) => 5,
    };
    let mut runners = modes
        .iter()
        .map(|&compiled| w.runner(compiled))
        .collect::<ff::Result<Vec<_>>>()?;
    let mut best = vec![f64::INFINITY; modes.len()];
    for run in runners.iter_mut() {
        run(steps)?;
    }
    // MLP steps are short: more windows even out this machine's bursts of load.
    let windows = match w {
        Workload::Mlp(_) => reps.max(1) * 3,
        Workload::Cnn(_) => reps.max(1),
    };
    for _ in 0..windows {
        for (run, b) in runners.iter_mut().zip(best.iter_mut()) {
            let t = std::time::Instant::now();
            run(steps)?;
            *b = b.min(t.elapsed().as_secs_f64());
        }
    }
    Ok(best.into_iter().map(|t| t / steps as f64 * 1e3).collect())
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

fn label(compiled: bool) -> &'static str {
    if compiled {
        "compiled"
    } else {
        "eager"
    }
}

/// Prints `<workload>_<eager|compiled>_ms` for every workload (or only `mode`, then also
/// the process's `peak_rss_mib`, for running each mode in its own process).
pub fn run(json: bool, reps: usize, mode: Option<&str>) -> ff::Result<()> {
    let mut figures: Vec<(String, f64, &str)> = Vec::new();
    let modes: Vec<bool> = [false, true]
        .into_iter()
        .filter(|&c| mode.is_none_or(|m| m == label(c)))
        .collect();
    for w in [Workload::Mlp(32), Workload::Mlp(128), Workload::Cnn(32)] {
        for (&compiled, ms) in modes.iter().zip(measure(w, reps, &modes)?) {
            figures.push((format!("{}_{}_ms", w.name(), label(compiled)), ms, "ms"));
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
