//! Times EfficientNetV2B0's compiled predict plan node by node, summed by node kind:
//! `cargo run --release -p ferroflow --example effnet_plan_profile -- [batch]`.

use ferroflow as ff;
use ff::keras::applications::{efficientnet_v2_b0, AppOptions};
use std::collections::BTreeMap;

fn main() -> ff::Result<()> {
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let model = efficientnet_v2_b0(&AppOptions::default())?;
    let x = ff::random::uniform(&[batch, 224, 224, 3], 0.0, 255.0, ff::DType::F32, Some(5))?;
    let (cf, _) = ff::graph::ConcreteFunction::trace(
        "predict",
        |a: &[ff::Tensor]| model.call(a, false),
        std::slice::from_ref(&x),
        ff::graph::OptLevel::Full,
    )?;
    let table = cf.profile(&[x], 3)?;
    let mut by_kind: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut lines = table.lines();
    println!("{}", lines.next().unwrap_or_default());
    for line in lines {
        let mut parts = line.split_whitespace();
        let us: f64 = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0.0);
        let kind = line.split_once("  %").map_or("", |(_, r)| r);
        let kind = kind.split_once(' ').map_or(kind, |(_, k)| k);
        let kind = kind.split(" [").next().unwrap_or(kind);
        let e = by_kind.entry(kind.to_string()).or_default();
        e.0 += us;
        e.1 += 1;
    }
    if std::env::var("NODES").is_ok() {
        for line in table.lines().skip(1).take(40) {
            println!("{line}");
        }
    }
    let mut rows: Vec<_> = by_kind.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    for (k, (us, n)) in rows.iter().take(25) {
        println!("{:9.2} ms {n:4}x  {k}", us / 1e3);
    }
    Ok(())
}
