//! `custom_gradient` and `stop_gradient`.

use super::record::{pause_recording, Recorder};
use crate::{Result, Tensor};

/// The backward function of [`custom_gradient`]: upstream gradient to one gradient per input.
pub type CustomRule = Box<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>>>;

/// Runs `forward` on `inputs` without recording it, and records its output with the
/// gradient rule it returns (`@tf.custom_gradient`). The rule's ops are themselves
/// recorded by outer tapes, so higher derivatives go through it.
///
/// ```
/// use ferroflow_core::{custom_gradient, GradientTape, Tensor};
/// let x = Tensor::scalar(2.0f32);
/// let tape = GradientTape::new();
/// tape.watch(&x);
/// // Identity forward, gradient clipped to [-0.5, 0.5].
/// let y = custom_gradient(&[x.clone()], |xs| {
///     Ok((xs[0].clone(), Box::new(|g: &Tensor| Ok(vec![Some(g.clip_scalar(-0.5, 0.5)?)]))))
/// })?;
/// let g = tape.gradient(&y.mul_scalar(3.0)?, &[&x])?;
/// assert_eq!(g[0].as_ref().unwrap().to_dense()?.to_scalar::<f32>()?, 0.5);
/// # Ok::<(), ferroflow_core::Error>(())
/// ```
pub fn custom_gradient(
    inputs: &[Tensor],
    forward: impl FnOnce(&[Tensor]) -> Result<(Tensor, CustomRule)>,
) -> Result<Tensor> {
    let (out, rule) = {
        let _p = pause_recording();
        forward(inputs)?
    };
    let out = out.identity();
    let refs: Vec<&Tensor> = inputs.iter().collect();
    if let Some(r) = Recorder::new(&refs) {
        let n = inputs.len();
        r.finish(&out, move |g, _| {
            let mut grads = rule(g)?;
            grads.resize(n, None);
            Ok(grads)
        });
    }
    Ok(out)
}

impl Tensor {
    /// The same values, cut off from gradient computation (`tf.stop_gradient`).
    pub fn stop_gradient(&self) -> Tensor {
        self.identity()
    }

    /// A new identity for the same values, which a tracer sees as an op (so a traced
    /// function keeps the dependency).
    fn identity(&self) -> Tensor {
        let out = self.detached();
        crate::trace::record(
            "identity",
            crate::trace::OpKind::Identity,
            String::new,
            &[self],
            &out,
            |t| Ok(t[0].identity()),
        );
        out
    }

    /// A new tensor identity sharing this tensor's buffer and layout (never recorded).
    pub(crate) fn detached(&self) -> Tensor {
        self.with_layout(self.layout().clone())
    }
}
