//! Adam and AdamW (`keras.optimizers.Adam`, `AdamW`: AdamW is Adam with the optimiser's
//! decoupled `weight_decay` set, 0.004 by default).

use super::optimizer::{RowUpdate, UpdateRule};
use ferroflow_core::{DType, Result, SharedMut, Tensor};

/// Adam with Keras 3's update:
/// `m += (g - m)(1 - β1); v += (g² - v)(1 - β2); α = lr·√(1 - β2^t)/(1 - β1^t);
/// var -= α·m / (√v + ε)` (with `v` replaced by its running maximum when `amsgrad`).
///
/// Sparse gradients (an `Embedding`'s) follow Keras by default: the moments of every row
/// decay at every step, so the whole table is updated. With `lazy` (TF Addons'
/// `LazyAdam`), only the rows in the gradient are read and written, in place: a step on a
/// 10M-row table costs what its batch's rows cost.
#[derive(Clone, Debug)]
pub struct Adam {
    /// Decay of the first moment.
    pub beta_1: f64,
    /// Decay of the second moment.
    pub beta_2: f64,
    /// Added to the denominator.
    pub epsilon: f64,
    /// Use the running maximum of the second moment (AMSGrad).
    pub amsgrad: bool,
    /// Update only the rows of a sparse gradient (LazyAdam); not part of Keras's config.
    pub lazy: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
            lazy: false,
        }
    }
}

impl Adam {
    /// `lr·√(1 - β2^t) / (1 - β1^t)` in the variable's precision, as Keras computes it
    /// (early in training `1 - β2^t` is small, so the rounding of `β2^t` shows).
    fn alpha(&self, lr: &Tensor, step: &Tensor) -> Result<Tensor> {
        let b1p = step.scalar_like(self.beta_1)?.pow(step)?;
        let b2p = step.scalar_like(self.beta_2)?.pow(step)?;
        let correction = b2p
            .neg()?
            .add_scalar(1.0)?
            .sqrt()?
            .div(&b1p.neg()?.add_scalar(1.0)?)?;
        lr.mul(&correction)
    }

    /// The same arithmetic as the composed update, in one pass over the four buffers;
    /// returns (momentum, velocity, variable). A traced step records it as one op.
    fn update_fused_f32(
        &self,
        var: &Tensor,
        g: &Tensor,
        m0: &Tensor,
        v0: &Tensor,
        alpha: &Tensor,
    ) -> Result<Vec<Tensor>> {
        let out = self.fused_kernel(var, g, m0, v0, alpha)?;
        let me = self.clone();
        let (b1, b2, eps) = (self.beta_1, self.beta_2, self.epsilon);
        ferroflow_core::trace::record_owned(
            "adam_update",
            ferroflow_core::trace::OpKind::Other,
            || format!("beta_1={b1}, beta_2={b2}, epsilon={eps}"),
            &[var, g, m0, v0, alpha],
            &[&out[0], &out[1], &out[2]],
            move |t| me.update_owned(t),
        );
        Ok(out)
    }

    /// The update on owned inputs `[var, g, m, v, alpha]`: over the old buffers when they
    /// are not shared (a compiled step hands them over), else into new ones.
    fn update_owned(&self, mut t: Vec<Tensor>) -> Result<Vec<Tensor>> {
        if t.len() != 5 {
            return Err(ferroflow_core::Error::invalid(
                "adam_update",
                "needs 5 inputs",
            ));
        }
        let alpha = t.pop().expect("5 inputs");
        let v0 = t.pop().expect("5 inputs");
        let m0 = t.pop().expect("5 inputs");
        let g = t.pop().expect("5 inputs");
        let var = t.pop().expect("5 inputs");
        let n = var.numel();
        let same = [&g, &m0, &v0]
            .iter()
            .all(|x| x.shape() == var.shape() && x.dtype() == DType::F32);
        if !same || var.dtype() != DType::F32 {
            return self.fused_kernel(&var, &g, &m0, &v0, &alpha);
        }
        let shape = var.shape().to_vec();
        let owned = (
            var.try_into_vec::<f32>(),
            m0.try_into_vec::<f32>(),
            v0.try_into_vec::<f32>(),
        );
        let (mut w, mut m, mut v) = match owned {
            (Ok(w), Ok(m), Ok(v)) if w.len() == n && m.len() == n && v.len() == n => (w, m, v),
            (w, m, v) => {
                let back = |r: std::result::Result<Vec<f32>, Tensor>| match r {
                    Ok(buf) => Tensor::from_vec(buf, &shape),
                    Err(t) => Ok(t),
                };
                return self.fused_kernel(&back(w)?, &g, &back(m)?, &back(v)?, &alpha);
            }
        };
        let step = self.scalars(&alpha)?;
        let gd = g.data::<f32>()?;
        let (pw, pm, pv) = (
            SharedMut(w.as_mut_ptr()),
            SharedMut(m.as_mut_ptr()),
            SharedMut(v.as_mut_ptr()),
        );
        for_each_weight_run(&shape, |r| {
            // SAFETY: the runs are disjoint ranges of the three `n`-long buffers, which
            // outlive the call.
            let (w, m, v) = unsafe { (pw.slice(&r), pm.slice(&r), pv.slice(&r)) };
            let gd = &gd[r];
            ferroflow_core::with_best_isa(
                #[inline(always)]
                || {
                    for (((w, m), v), &g) in w.iter_mut().zip(m).zip(v).zip(gd) {
                        (*m, *v, *w) = step.apply(*w, g, *m, *v);
                    }
                },
            )
        });
        drop(gd);
        Ok(vec![
            Tensor::from_vec(m, &shape)?,
            Tensor::from_vec(v, &shape)?,
            Tensor::from_vec(w, &shape)?,
        ])
    }

    /// The f32 constants of one step with step size `alpha`.
    fn scalars(&self, alpha: &Tensor) -> Result<AdamStep> {
        Ok(AdamStep {
            alpha: alpha.to_scalar::<f32>()?,
            b1: (1.0 - self.beta_1) as f32,
            b2: (1.0 - self.beta_2) as f32,
            eps: self.epsilon as f32,
        })
    }

    fn fused_kernel(
        &self,
        var: &Tensor,
        g: &Tensor,
        m0: &Tensor,
        v0: &Tensor,
        alpha: &Tensor,
    ) -> Result<Vec<Tensor>> {
        let step = self.scalars(alpha)?;
        let (w, gd) = (var.data::<f32>()?, g.data::<f32>()?);
        let (m0, v0) = (m0.data::<f32>()?, v0.data::<f32>()?);
        let n = w.len();
        // Every element of the three outputs is written below.
        let fresh = ferroflow_core::alloc::overwritable::<f32>;
        let (mut m, mut v, mut out) = (fresh(n), fresh(n), fresh(n));
        let (pm, pv, po) = (
            SharedMut(m.as_mut_ptr()),
            SharedMut(v.as_mut_ptr()),
            SharedMut(out.as_mut_ptr()),
        );
        for_each_weight_run(var.shape(), |r| {
            // SAFETY: the runs are disjoint ranges of the three `n`-long outputs, which
            // outlive the call.
            let (m, v, out) = unsafe { (pm.slice(&r), pv.slice(&r), po.slice(&r)) };
            let (w, gd, m0, v0) = (&w[r.clone()], &gd[r.clone()], &m0[r.clone()], &v0[r]);
            let inputs = w.iter().zip(gd).zip(m0).zip(v0);
            let outputs = m.iter_mut().zip(v.iter_mut()).zip(out.iter_mut());
            ferroflow_core::with_best_isa(
                #[inline(always)]
                || {
                    for ((((w, g), m0), v0), ((m, v), out)) in inputs.zip(outputs) {
                        (*m, *v, *out) = step.apply(*w, *g, *m0, *v0);
                    }
                },
            )
        });
        let shape = var.shape().to_vec();
        Ok(vec![
            Tensor::from_vec(m, &shape)?,
            Tensor::from_vec(v, &shape)?,
            Tensor::from_vec(out, &shape)?,
        ])
    }
}

impl UpdateRule for Adam {
    fn config(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        crate::config::obj([
            ("beta_1", Value::from(self.beta_1)),
            ("beta_2", Value::from(self.beta_2)),
            ("epsilon", Value::from(self.epsilon)),
            ("amsgrad", Value::from(self.amsgrad)),
        ])
    }

    fn name(&self) -> &'static str {
        "Adam"
    }

    fn slot_names(&self) -> Vec<&'static str> {
        if self.amsgrad {
            vec!["momentum", "velocity", "velocity_hat"]
        } else {
            vec!["momentum", "velocity"]
        }
    }

    fn updates_rows_in_place(&self) -> bool {
        self.lazy && !self.amsgrad
    }

    fn update_rows(&self, u: RowUpdate<'_>, lr: &Tensor, step: &Tensor) -> Result<()> {
        let step = self.scalars(&self.alpha(lr, step)?)?;
        u.for_each_row(
            "Adam",
            #[inline(always)]
            |w, [m, v], g| {
                for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                    (*m, *v, *w) = step.apply(*w, g, *m, *v);
                }
            },
        )
    }

    fn update(
        &self,
        var: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        lr: &Tensor,
        step: &Tensor,
    ) -> Result<Tensor> {
        let alpha = self.alpha(lr, step)?;
        if var.dtype() == DType::F32 && !self.amsgrad {
            let mut out = self.update_fused_f32(var, g, &slots[0], &slots[1], &alpha)?;
            let new = out.remove(2);
            slots[1] = out.remove(1);
            slots[0] = out.remove(0);
            return Ok(new);
        }
        let m = slots[0].add(&g.sub(&slots[0])?.mul_scalar(1.0 - self.beta_1)?)?;
        let v = slots[1].add(&g.square()?.sub(&slots[1])?.mul_scalar(1.0 - self.beta_2)?)?;
        slots[0] = m.clone();
        slots[1] = v.clone();
        let v = if self.amsgrad {
            slots[2] = slots[2].maximum(&v)?;
            slots[2].clone()
        } else {
            v
        };
        var.sub(&m.mul(&alpha)?.div(&v.sqrt()?.add_scalar(self.epsilon)?)?)
    }
}

/// Runs `f` over the elements of a variable of `shape` in blocks of whole rows, one per
/// thread (see [`ferroflow_core::for_each_row_block`]).
fn for_each_weight_run(shape: &[usize], f: impl Fn(std::ops::Range<usize>) + Sync) {
    /// Elements from which the update is shared between threads.
    const PAR_MIN: usize = 1 << 14;
    let cols = shape.last().copied().unwrap_or(1);
    let rows = shape.iter().product::<usize>() / cols.max(1);
    ferroflow_core::for_each_row_block(rows, cols, PAR_MIN, f);
}

/// The f32 constants of one Adam step: `alpha` (learning rate with bias correction),
/// `1 - β1`, `1 - β2` and ε.
#[derive(Clone, Copy)]
struct AdamStep {
    alpha: f32,
    b1: f32,
    b2: f32,
    eps: f32,
}

impl AdamStep {
    /// One element: (momentum, velocity, variable) after the step, from the variable `w`,
    /// gradient `g` and the old momentum `m` and velocity `v`.
    #[inline(always)]
    fn apply(self, w: f32, g: f32, m: f32, v: f32) -> (f32, f32, f32) {
        let m = m + (g - m) * self.b1;
        let v = v + (g * g - v) * self.b2;
        (m, v, w - (m * self.alpha) / (v.sqrt() + self.eps))
    }
}
