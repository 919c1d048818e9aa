//! A gRPC load generator for `tools/bench_compare.py serve`: CONNECTIONS HTTP/2
//! connections, each with one `Predict` call in flight at a time, for SECONDS; prints
//! `{"rps", "p50_ms", "p99_ms", "errors"}` as JSON.
//!
//! `cargo run --release -p ferroflow --example grpc_load -- ADDR MODEL INPUT ROWS COLS
//! CONNECTIONS SECONDS` (the input is ROWS x COLS float32, sent as `tensor_content`).

use ferroflow as ff;
use ff::serve::grpc::proto::tensorflow::serving as pb;
use ff::serve::grpc::tensor_proto::tensor_to_proto;
use pb::prediction_service_client::PredictionServiceClient;
use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} ({what}) is missing or invalid"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: String = arg(&args, 0, "ADDR");
    let model: String = arg(&args, 1, "MODEL");
    let input: String = arg(&args, 2, "INPUT");
    let (rows, cols): (usize, usize) = (arg(&args, 3, "ROWS"), arg(&args, 4, "COLS"));
    let connections: usize = arg(&args, 5, "CONNECTIONS");
    let seconds: f64 = arg(&args, 6, "SECONDS");
    let x = ff::random::uniform(&[rows, cols], 0.0, 16.0, ff::DType::F32, Some(1)).expect("input");
    let request = pb::PredictRequest {
        model_spec: Some(pb::ModelSpec {
            name: model,
            ..Default::default()
        }),
        inputs: [(input, tensor_to_proto(&x))].into(),
        output_filter: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (latencies, errors) = rt.block_on(async move {
        let end = Instant::now() + Duration::from_secs_f64(seconds);
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let request = request.clone();
            let url = format!("http://{addr}");
            tasks.push(tokio::spawn(async move {
                let mut client = PredictionServiceClient::connect(url)
                    .await
                    .expect("connects");
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < end {
                    let t = Instant::now();
                    match client.predict(request.clone()).await {
                        Ok(_) => lat.push(t.elapsed().as_secs_f64() * 1e3),
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.expect("task");
            all.extend(l);
            errors += e;
        }
        (all, errors)
    });
    let mut lat = latencies;
    lat.sort_by(f64::total_cmp);
    let at = |q: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{}",
        serde_json::json!({
            "rps": lat.len() as f64 / seconds,
            "p50_ms": at(0.5),
            "p99_ms": at(0.99),
            "errors": errors,
        })
    );
}
