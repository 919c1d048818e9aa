//! `ferroflow bench function`: the training steps of [`ferroflow::workloads`] eagerly and
//! compiled; `tools/bench_compare.py function` compares them with TensorFlow's
//! `tf.function(jit_compile=True)`.

use crate::bench_core::report;
use crate::heap_meter;
use ferroflow as ff;
use ff::workloads::Workload;

/// ms per step of each requested mode (eager, compiled), best of `reps` runs (three
/// times as many for the MLPs). The modes' runs alternate, so a burst of load on a shared
/// machine slows both alike.
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

/// Memory of MLP batch-128 steps after warm-up (tracing included in the warm-up), in
/// MiB: the process's peak resident memory (the peak is reset through
/// `/proc/self/clear_refs` once the steps are in their steady state), and the most heap
/// the steps held above what was in use before them (run with `FERROFLOW_POOL_MB=0`
/// for the steps' own need, without the buffer cache's keeping).
fn steady_peaks_mib(compiled: bool) -> ff::Result<(f64, f64)> {
    let mut run = Workload::Mlp(128).runner(compiled)?;
    run(5)?;
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = heap_meter::reset_peak();
    run(50)?;
    let step = heap_meter::peak().saturating_sub(before) as f64 / (1 << 20) as f64;
    Ok((heap_meter::peak_rss_mib(), step))
}

fn label(compiled: bool) -> &'static str {
    if compiled {
        "compiled"
    } else {
        "eager"
    }
}

/// Prints `<workload>_<eager|compiled>_ms` for every workload (or only `mode`, then also
/// `<mode>_peak_rss_mib` and `<mode>_step_peak_heap_mib`, for running each mode in its own
/// process).
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
        let (rss, step) = steady_peaks_mib(m == "compiled")?;
        figures.push((format!("{m}_peak_rss_mib"), rss, "MiB"));
        figures.push((format!("{m}_step_peak_heap_mib"), step, "MiB"));
    }
    let refs: Vec<(&str, f64, &str)> = figures
        .iter()
        .map(|(n, v, u)| (n.as_str(), *v, *u))
        .collect();
    report(&refs, json);
    Ok(())
}
