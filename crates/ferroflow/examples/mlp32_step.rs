use ferroflow::workloads::Workload;
fn main() {
    let compiled = std::env::args().nth(1).as_deref() == Some("compiled");
    let mut run = Workload::Mlp(32).runner(compiled).unwrap();
    run(20).unwrap();
    let t = std::time::Instant::now();
    run(2000).unwrap();
    println!("{} ms/step", t.elapsed().as_secs_f64() * 1e3 / 2000.0);
}
