//! Times one 2-D convolution (eager, best and median of 50):
//! `cargo run --release -p ferroflow --example conv_timing -- N H W CIN K COUT STRIDE`;
//! COUT 0 times a depthwise convolution (channel multiplier 1) instead; with
//! `FERROFLOW_PACKED=1` a convolution runs with its filter packed once
//! ([`ff::PackedConvFilter`], where this CPU has the packed kernel).
use ferroflow as ff;
fn main() -> ff::Result<()> {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("integer arguments"))
        .collect();
    let [n, h, w, cin, k, cout, s] = a[..] else {
        panic!("usage: N H W CIN K COUT STRIDE");
    };
    let x = ff::random::normal(&[n, h, w, cin], 0.0, 1.0, ff::DType::F32, Some(1))?;
    let depthwise = cout == 0;
    let f = if depthwise {
        ff::random::normal(&[k, k, cin, 1], 0.0, 0.1, ff::DType::F32, Some(2))?
    } else {
        ff::random::normal(&[k, k, cin, cout], 0.0, 0.1, ff::DType::F32, Some(2))?
    };
    let same = ff::ops::conv::Padding::Same;
    let packed = match std::env::var("FERROFLOW_PACKED").as_deref() {
        Ok("1") if !depthwise => ff::PackedConvFilter::new(&f)?,
        _ => None,
    };
    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
    {
        let t = std::time::Instant::now();
        out = Some(if depthwise {
            x.depthwise_conv2d(&f, (s, s), same, (1, 1))?
        } else if let Some(p) = &packed {
            x.conv2d_packed(p, (s, s), same, (1, 1), Default::default())?
        } else {
            x.conv2d(&f, (s, s), same, (1, 1))?
        });
        times.push(t.elapsed().as_secs_f64());
    }
    let o = out.expect("ran");
    times.sort_by(f64::total_cmp);
    let (best, median) = (times[0], times[times.len() / 2]);
    let per_output = if depthwise { k * k } else { k * k * cin };
    let flops = 2.0 * o.numel() as f64 * per_output as f64;
    println!(
        "{:?} -> {:?}: best {:.2} ms, {:.1} GFLOP/s; median {:.2} ms",
        x.shape(),
        o.shape(),
        best * 1e3,
        flops / best / 1e9,
        median * 1e3
    );
    Ok(())
}
