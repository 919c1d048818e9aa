//! Criterion benches of training steps eager vs compiled with `function` (ferroflow
//! alone, tracked over time). `tools/bench_compare.py function` adds TensorFlow's
//! `tf.function(jit_compile=True)` on the same steps. The target: compiled at least 1.5x
//! faster than eager on the batch-32 MLP.

use criterion::{criterion_group, criterion_main, Criterion};
use ferroflow::workloads::Workload;

fn train_steps(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_step");
    g.sample_size(20);
    for w in [Workload::Mlp(32), Workload::Mlp(128), Workload::Cnn(32)] {
        for compiled in [false, true] {
            let mut run = w.runner(compiled).expect("workload builds");
            let label = if compiled { "compiled" } else { "eager" };
            g.bench_function(format!("{}_{label}", w.name()), |b| {
                b.iter(|| run(1).expect("step runs"))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, train_steps);
criterion_main!(benches);
