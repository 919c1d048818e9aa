//! Times a dense layer's product `x · wᵀ` (eager, best and median of 200):
//! `cargo run --release -p ferroflow --example fc_timing -- M K N`.
use ferroflow as ff;
fn main() -> ff::Result<()> {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("integer"))
        .collect();
    let [m, k, n] = a[..] else {
        panic!("usage: M K N")
    };
    let x = ff::random::normal(&[m, k], 0.0, 1.0, ff::DType::F32, Some(1))?;
    let w = ff::random::normal(&[n, k], 0.0, 0.1, ff::DType::F32, Some(2))?;
    // FERROFLOW_FC_PACKED=1: the weights transposed once, as an interpreter keeps them.
    let packed = std::env::var("FERROFLOW_FC_PACKED").as_deref() == Ok("1");
    let wt = w.t()?.contiguous();
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = std::time::Instant::now();
        let y = if packed {
            x.matmul(&wt)?
        } else {
            x.matmul_t(&w, false, true)?
        };
        times.push(t.elapsed().as_secs_f64());
        std::hint::black_box(y);
    }
    times.sort_by(f64::total_cmp);
    let flops = 2.0 * (m * k * n) as f64;
    println!(
        "{m}x{k} · ({n}x{k})ᵀ: best {:.3} ms ({:.1} GFLOP/s), median {:.3} ms",
        times[0] * 1e3,
        flops / times[0] / 1e9,
        times[100] * 1e3
    );
    Ok(())
}
