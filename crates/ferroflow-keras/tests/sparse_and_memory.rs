//! Sparse embedding updates agree with dense ones; a long training loop keeps memory flat.

use ferroflow_core::{Axes, DType, GradientTape, Tensor, Variable};
use ferroflow_keras::optimizers::Optimizer;

mod common;
use common::embedding_step;

#[test]
fn sparse_updates_match_dense_updates() {
    let init = ferroflow_core::random::normal(&[10, 4], 0.0, 1.0, DType::F32, Some(1)).unwrap();
    for make in [
        || Optimizer::sgd(0.1),
        || Optimizer::adagrad(0.1),
        || Optimizer::adam(0.1),
    ] {
        let (a, b) = (Variable::new(init.clone()), Variable::new(init.clone()));
        let (mut oa, mut ob) = (make(), make());
        for _ in 0..3 {
            embedding_step(&mut oa, &a, false);
            embedding_step(&mut ob, &b, true);
        }
        let (x, y) = (
            a.read_untracked().to_vec::<f32>().unwrap(),
            b.read_untracked().to_vec::<f32>().unwrap(),
        );
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() < 1e-6, "{}: sparse {p} dense {q}", oa.name());
        }
    }
}

#[cfg(target_os = "linux")]
fn resident_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// 10k forward/backward/Adam steps of a small MLP: resident memory after the first 1k steps
/// may not grow by more than noise over the remaining 9k.
#[cfg(target_os = "linux")]
#[test]
fn training_loop_memory_is_flat() {
    let x = ferroflow_core::random::normal(&[32, 16], 0.0, 1.0, DType::F32, Some(2)).unwrap();
    let y = ferroflow_core::random::normal(&[32, 4], 0.0, 1.0, DType::F32, Some(3)).unwrap();
    let w1 = Variable::new(
        ferroflow_core::random::normal(&[16, 32], 0.0, 0.2, DType::F32, Some(4)).unwrap(),
    );
    let b1 = Variable::new(Tensor::zeros(&[32], DType::F32).unwrap());
    let w2 = Variable::new(
        ferroflow_core::random::normal(&[32, 4], 0.0, 0.2, DType::F32, Some(5)).unwrap(),
    );
    let vars = vec![w1.clone(), b1.clone(), w2.clone()];
    let mut opt = Optimizer::adam(1e-3);
    let mut step = |_: usize| {
        let tape = GradientTape::new();
        let h = x
            .matmul(&w1.value())
            .unwrap()
            .add(&b1.value())
            .unwrap()
            .relu()
            .unwrap();
        let loss = h
            .matmul(&w2.value())
            .unwrap()
            .sub(&y)
            .unwrap()
            .square()
            .unwrap()
            .mean(Axes::All, false)
            .unwrap();
        let grads = tape.gradient(&loss, &vars).unwrap();
        opt.apply_gradients(&grads, &vars).unwrap();
        loss.to_f64_vec()[0]
    };
    let first = step(0);
    (1..1000).for_each(|i| {
        step(i);
    });
    let warm = resident_kb();
    let mut last = 0.0;
    (1000..10_000).for_each(|i| last = step(i));
    let end = resident_kb();
    assert!(last < first, "loss should fall: {first} -> {last}");
    assert!(
        end <= warm + 2048,
        "resident memory grew from {warm} kB to {end} kB"
    );
}
