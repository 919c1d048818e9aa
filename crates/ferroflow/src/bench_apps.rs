//! `ferroflow bench keras --mode efficientnet`: EfficientNetV2B0 inference (224x224, random
//! weights, ImageNet top) at batch 1 and 16 through the compiled predict step; best of
//! `reps` calls each, and the peak resident memory of the process. `tools/bench_compare.py
//! keras` runs the same in Keras 3 (`predict_on_batch`).

use crate::bench_core::report;
use crate::heap_meter::peak_rss_mib;
use ferroflow as ff;
use ff::keras::applications::{efficientnet_v2_b0, AppOptions};
use std::time::Instant;

/// Best of `reps` predictions at `batch` rows, in milliseconds.
fn best_ms(model: &ff::keras::Model, batch: usize, reps: usize) -> ff::Result<f64> {
    let x = ff::random::uniform(&[batch, 224, 224, 3], 0.0, 255.0, ff::DType::F32, Some(5))?;
    model.predict(vec![x.clone()], batch)?; // traces and compiles the plan
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        model.predict(vec![x.clone()], batch)?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

/// Runs the workload and prints its figures.
pub fn run(json: bool, reps: usize) -> ff::Result<()> {
    ff::random::set_seed(0);
    let model = efficientnet_v2_b0(&AppOptions::default())?;
    let b1 = best_ms(&model, 1, reps * 2)?;
    let b16 = best_ms(&model, 16, reps)?;
    report(
        &[
            ("effnetv2b0_b1_ms", b1, "ms"),
            ("effnetv2b0_b16_ms", b16, "ms"),
            ("effnetv2b0_peak_rss_mib", peak_rss_mib(), "MiB"),
        ],
        json,
    );
    Ok(())
}
