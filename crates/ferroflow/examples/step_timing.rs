//! Times MLP training steps: `cargo run --release --example step_timing -- eager|compiled [batch]`.
use ferroflow::workloads::Workload;
fn main() {
    let compiled = std::env::args().nth(1).as_deref() == Some("compiled");
    let batch: usize = std::env::args()
        .nth(2)
        .and_then(|b| b.parse().ok())
        .unwrap_or(32);
    let mut run = Workload::Mlp(batch).runner(compiled).unwrap();
    run(20).unwrap();
    let t = std::time::Instant::now();
    run(2000).unwrap();
    println!("{} ms/step", t.elapsed().as_secs_f64() * 1e3 / 2000.0);
}
