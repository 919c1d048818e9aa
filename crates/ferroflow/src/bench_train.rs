//! `ferroflow bench train`: one training step (forward, tape backward, Adam update) of an
//! MLP 784-256-128-10 at batch 128 with softmax cross-entropy, the workload that
//! `tools/bench_compare.py train` also runs in TensorFlow (`tf.function`) and PyTorch.

use crate::bench_core::{best_of, report};
use ferroflow as ff;
use ff::keras::optimizers::Optimizer;
use ff::{Axes, DType, GradientTape, Tensor, Variable};

/// The MLP's variables, Glorot-uniform kernels and zero biases.
fn mlp(sizes: &[usize]) -> ff::Result<Vec<Variable>> {
    let mut vars = Vec::new();
    for (i, w) in sizes.windows(2).enumerate() {
        let limit = (6.0 / (w[0] + w[1]) as f64).sqrt();
        let k = ff::random::uniform(&[w[0], w[1]], -limit, limit, DType::F32, Some(i as u64))?;
        vars.push(Variable::with_options(k, "kernel", true));
        vars.push(Variable::with_options(
            Tensor::zeros(&[w[1]], DType::F32)?,
            "bias",
            true,
        ));
    }
    Ok(vars)
}

/// One step; returns the loss.
fn step(vars: &[Variable], opt: &mut Optimizer, x: &Tensor, onehot: &Tensor) -> ff::Result<Tensor> {
    let tape = GradientTape::new();
    let mut h = x.clone();
    let layers = vars.len() / 2;
    for (i, pair) in vars.chunks(2).enumerate() {
        h = h.matmul(&pair[0].value())?.add(&pair[1].value())?;
        if i + 1 < layers {
            h = h.relu()?;
        }
    }
    let loss = h
        .log_softmax(-1)?
        .mul(onehot)?
        .sum(-1, false)?
        .mean(Axes::All, false)?
        .neg()?;
    let grads = tape.gradient(&loss, vars)?;
    opt.apply_gradients(&grads, vars)?;
    Ok(loss)
}

/// Runs the workload and prints `mlp_train_step_ms` (per step, best of `reps` runs of 20).
pub fn run(json: bool, reps: usize) -> ff::Result<()> {
    let batch = 128;
    let x = ff::random::normal(&[batch, 784], 0.0, 1.0, DType::F32, Some(10))?;
    let labels: Vec<i32> = (0..batch as i32).map(|i| (i * 7) % 10).collect();
    let onehot = Tensor::from_vec(labels, &[batch])?.one_hot(10, 1.0, 0.0, DType::F32)?;
    let vars = mlp(&[784, 256, 128, 10])?;
    let mut opt = Optimizer::adam(1e-3);
    let steps = 20;
    let t = best_of(reps, || {
        for _ in 0..steps {
            step(&vars, &mut opt, &x, &onehot)?;
        }
        Ok(())
    })?;
    report(&[("mlp_train_step_ms", t / steps as f64 * 1e3, "ms")], json);
    Ok(())
}
