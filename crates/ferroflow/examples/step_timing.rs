//! Times MLP training steps: `cargo run --release --example step_timing -- eager|compiled [batch]`.
//! Prints the best and the median of 30 windows of 100 steps (this machine is noisy).
use ferroflow::workloads::Workload;
fn main() {
    let compiled = std::env::args().nth(1).as_deref() == Some("compiled");
    let batch: usize = std::env::args()
        .nth(2)
        .and_then(|b| b.parse().ok())
        .unwrap_or(32);
    let mut run = Workload::Mlp(batch).runner(compiled).unwrap();
    run(20).unwrap();
    let mut ms: Vec<f64> = (0..30)
        .map(|_| {
            let t = std::time::Instant::now();
            run(100).unwrap();
            t.elapsed().as_secs_f64() * 1e3 / 100.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!("best {:.3} median {:.3} ms/step", ms[0], ms[15]);
}
