//! Times EfficientNetV2B0 inference layer by layer (eager), to find the slow kernels:
//! `cargo run --release -p ferroflow --example effnet_profile -- [batch]`.

use ferroflow as ff;
use ff::keras::applications::{efficientnet_v2_b0, AppOptions};
use std::collections::BTreeMap;
use std::time::Instant;

fn main() -> ff::Result<()> {
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let model = efficientnet_v2_b0(&AppOptions::default())?;
    let x = ff::random::uniform(&[batch, 224, 224, 3], 0.0, 255.0, ff::DType::F32, Some(5))?;
    let g = model.network().layer_graph()?;
    let _pause = ff::autodiff::pause_recording();
    let mut by_class: BTreeMap<String, f64> = BTreeMap::new();
    for rep in 0..3 {
        let mut vals: Vec<Vec<ff::Tensor>> = Vec::new();
        for node in &g.nodes {
            let out = match &node.layer {
                None => vec![x.clone()],
                Some(l) => {
                    let ins: Vec<ff::Tensor> = node
                        .inputs
                        .iter()
                        .map(|&(n, k)| vals[n][k].clone())
                        .collect();
                    let t = Instant::now();
                    let y = l.call(&ins, ff::keras::layer::CallContext::default())?;
                    if rep == 2 {
                        let key =
                            if l.class_name() == "Conv2D" || l.class_name() == "DepthwiseConv2D" {
                                format!(
                                    "{} {:?}->{:?}",
                                    l.class_name(),
                                    ins[0].shape(),
                                    y[0].shape()
                                )
                            } else {
                                l.class_name().to_string()
                            };
                        *by_class.entry(key).or_default() += t.elapsed().as_secs_f64() * 1e3;
                    }
                    y
                }
            };
            vals.push(out);
        }
    }
    let mut rows: Vec<_> = by_class.into_iter().collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = rows.iter().map(|r| r.1).sum();
    println!("total {total:.1} ms");
    for (k, v) in rows.iter().take(30) {
        println!("{v:8.2} ms  {k}");
    }
    Ok(())
}
