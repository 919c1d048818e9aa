//! Gradient clipping as Keras computes it (`clip_by_norm`, `clip_by_global_norm`).

use ferroflow_core::{Axes, DType, Result, Tensor};

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
    let mut total: Option<Tensor> = None;
    for g in grads {
        let s = g.square()?.sum(Axes::All, false)?.cast(DType::F64)?;
        total = Some(match total {
            Some(t) => t.add(&s)?,
            None => s,
        });
    }
    let Some(total) = total else {
        return Ok(Vec::new());
    };
    let norm = total.sqrt()?;
    let scaled = norm
        .reciprocal()?
        .minimum(&norm.scalar_like(1.0 / clip)?)?
        .mul_scalar(clip)?;
    let finite = norm.less(&norm.scalar_like(f64::INFINITY)?)?;
    let scale = Tensor::where_(&finite, &scaled, &norm.scalar_like(f64::NAN)?)?;
    grads
        .iter()
        .map(|g| g.mul(&scale.cast(g.dtype())?))
        .collect()
}
