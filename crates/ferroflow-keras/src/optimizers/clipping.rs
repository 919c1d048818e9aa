//! Gradient clipping as Keras computes it (`clip_by_norm`, `clip_by_global_norm`).

use ferroflow_core::{Axes, Result, Tensor};

/// Scales `g` so its L2 norm is at most `clip` (zero gradients stay zero).
pub(crate) fn clip_by_norm(g: &Tensor, clip: f64) -> Result<Tensor> {
    let l2sum = g.square()?.sum(Axes::All, false)?;
    let norm = l2sum.sqrt()?;
    let denom = norm.maximum(&norm.scalar_like(clip)?)?;
    g.mul_scalar(clip)?.div(&denom)
}

/// Scales every gradient by `clip / max(global_norm, clip)`; a non-finite global norm
/// makes every gradient NaN, as in TF.
pub(crate) fn clip_by_global_norm(grads: &[Tensor], clip: f64) -> Result<Vec<Tensor>> {
    let mut total = 0.0f64;
    for g in grads {
        total += g.square()?.sum(Axes::All, false)?.to_f64_vec()[0];
    }
    let norm = total.sqrt();
    let scale = if norm.is_finite() {
        clip * (1.0 / norm).min(1.0 / clip)
    } else {
        f64::NAN
    };
    grads.iter().map(|g| g.mul_scalar(scale)).collect()
}
