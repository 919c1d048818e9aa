//! `ferroflow serve` end to end: the real binary on a loopback port, spoken to over HTTP
//! as TF Serving's REST clients do.

use ferroflow::keras::layers::{Concatenate, Dense};
use ferroflow::keras::{Input, Model, SymbolicCall};
use ferroflow::{DType, Tensor};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Model building draws from the global random stream; one test at a time.
static BUILD: Mutex<()> = Mutex::new(());

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ff_serve_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A one-input MLP: 4 features to 3 softmax scores.
fn mlp() -> Model {
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let x = Input::with(vec![Some(4)], DType::F32, Some("features"));
    let h = Dense::new(8).activation("relu").apply(&x).unwrap();
    let y = Dense::new(3)
        .activation("softmax")
        .name("scores")
        .apply(&h)
        .unwrap();
    Model::named(&[x], &[y], "mlp").unwrap()
}

/// Two inputs (`a` [3], `b` [2]) and two outputs (`p` [2], `q` [1]).
fn two_in_two_out() -> Model {
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let a = Input::with(vec![Some(3)], DType::F32, Some("a"));
    let b = Input::with(vec![Some(2)], DType::F32, Some("b"));
    let c = Concatenate::new(-1)
        .call_many(&[a.clone(), b.clone()])
        .unwrap()
        .remove(0);
    let p = Dense::new(2).name("p").apply(&c).unwrap();
    let q = Dense::new(1).name("q").apply(&b).unwrap();
    Model::named(&[a, b], &[p, q], "two").unwrap()
}

fn rows(n: usize, width: usize, salt: f32) -> Vec<Vec<f32>> {
    (0..n)
        .map(|r| {
            (0..width)
                .map(|c| ((r * width + c) as f32 * 0.37 + salt).sin())
                .collect()
        })
        .collect()
}

fn tensor(rows: &[Vec<f32>]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, &[rows.len(), rows[0].len()]).unwrap()
}

fn predict(model: &Model, xs: &[Tensor]) -> Vec<Vec<f32>> {
    model
        .predict(xs.to_vec(), 64)
        .unwrap()
        .iter()
        .map(|t| t.to_vec::<f32>().unwrap())
        .collect()
}

/// Every number in a JSON value, in order.
fn numbers(v: &Value) -> Vec<f32> {
    match v {
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        Value::Array(a) => a.iter().flat_map(numbers).collect(),
        _ => panic!("not numbers: {v}"),
    }
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-6 * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

/// The running server; killed when dropped.
struct Server {
    child: Child,
    url: String,
    /// The gRPC API's `host:port`.
    grpc: String,
    log: Arc<Mutex<Vec<String>>>,
    agent: ureq::Agent,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferroflow"))
            .arg("serve")
            .args([
                "--rest_api_port",
                "0",
                "--port",
                "0",
                "--rest_api_bind_address",
                "127.0.0.1",
            ])
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut grpc = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("Running gRPC ModelServer at ").nth(1) {
                    grpc = addr.trim_end_matches(" ...").to_string();
                }
                if let Some(addr) = line.split("Exporting HTTP/REST API at:").nth(1) {
                    let _ = tx.send((addr.trim_end_matches(" ...").to_string(), grpc.clone()));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (addr, grpc) = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {:?}", log.lock().unwrap());
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Server {
            child,
            url: format!("http://{addr}"),
            grpc,
            log,
            agent,
        }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.url))
            .call()
            .unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        (r.status().as_u16(), parse(&text))
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .send(body)
            .unwrap();
        let text = r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap();
        (r.status().as_u16(), parse(&text))
    }

    fn text(&self, path: &str) -> String {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.url))
            .call()
            .unwrap();
        r.body_mut().read_to_string().unwrap()
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Saves `model` as version `v` under `base` (written aside, then renamed into place).
fn save_version(model: &Model, base: &Path, v: u64) {
    let staging = base.with_extension(format!("staging{v}"));
    let _ = std::fs::remove_dir_all(&staging);
    model.save(&staging).unwrap();
    std::fs::rename(&staging, base.join(v.to_string())).unwrap();
}

/// An MLP saved as version 1 of model `mlp` and a server for it, with `extra` flags.
fn serve_mlp(dir: &str, extra: &[&str]) -> (Model, Server, PathBuf) {
    let base = tmp(dir);
    let m = mlp();
    save_version(&m, &base, 1);
    let mut args = vec![
        "--model_name",
        "mlp",
        "--model_base_path",
        base.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    (m, s, base)
}

fn instances(x: &[Vec<f32>]) -> String {
    json!({ "instances": x }).to_string()
}

#[test]
fn predict_in_row_and_columnar_format_matches_the_model() {
    let base = tmp("formats");
    let m = mlp();
    save_version(&m, &base, 1);
    let base2 = tmp("formats_two");
    let m2 = two_in_two_out();
    save_version(&m2, &base2, 1);
    let config = base.with_extension("config");
    std::fs::write(
        &config,
        format!(
            "model_config_list {{\n  config {{ name: 'mlp' base_path: '{}' }}\n  config {{ name: 'two' base_path: '{}' }}\n}}\n",
            base.display(),
            base2.display()
        ),
    )
    .unwrap();
    let s = Server::start(&["--model_config_file", config.to_str().unwrap()]);

    // One input, one output: `instances` is the list of rows, `predictions` too.
    let x = rows(5, 4, 0.1);
    let want = predict(&m, &[tensor(&x)]);
    let (code, v) = s.post("/v1/models/mlp:predict", &instances(&x));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["predictions"].as_array().unwrap().len(), 5);
    assert_close(&numbers(&v["predictions"]), &want[0]);
    let (code, v) = s.post(
        "/v1/models/mlp:predict",
        &json!({"signature_name": "serving_default", "inputs": x}).to_string(),
    );
    assert_eq!(code, 200, "{v}");
    assert_close(&numbers(&v["outputs"]), &want[0]);
    // Named inputs in either format also work for a one-input model.
    let named: Vec<Value> = x.iter().map(|r| json!({ "features": r })).collect();
    let (code, v) = s.post(
        "/v1/models/mlp:predict",
        &json!({ "instances": named }).to_string(),
    );
    assert_eq!(code, 200, "{v}");
    assert_close(&numbers(&v["predictions"]), &want[0]);

    // Two inputs, two outputs.
    let (a, b) = (rows(3, 3, 0.5), rows(3, 2, 0.9));
    let want = predict(&m2, &[tensor(&a), tensor(&b)]);
    let inst: Vec<Value> = a
        .iter()
        .zip(&b)
        .map(|(a, b)| json!({"a": a, "b": b}))
        .collect();
    let (code, v) = s.post(
        "/v1/models/two:predict",
        &json!({ "instances": inst }).to_string(),
    );
    assert_eq!(code, 200, "{v}");
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 3);
    let p: Vec<f32> = preds.iter().flat_map(|r| numbers(&r["p"])).collect();
    let q: Vec<f32> = preds.iter().flat_map(|r| numbers(&r["q"])).collect();
    assert_close(&p, &want[0]);
    assert_close(&q, &want[1]);
    let (code, v) = s.post(
        "/v1/models/two:predict",
        &json!({"inputs": {"b": b, "a": a}}).to_string(),
    );
    assert_eq!(code, 200, "{v}");
    assert_close(&numbers(&v["outputs"]["p"]), &want[0]);
    assert_close(&numbers(&v["outputs"]["q"]), &want[1]);
    assert_eq!(
        v["outputs"]["q"].as_array().unwrap()[0]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // :regress on the one-value output is not possible with two outputs; :classify on
    // the MLP gives class-index labels with the scores.
    let (code, v) = s.post(
        "/v1/models/mlp:classify",
        &json!({"examples": [{"features": x[0]}, {"features": x[1]}]}).to_string(),
    );
    assert_eq!(code, 200, "{v}");
    let first = v["result"][0].as_array().unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(first[2][0], "2");
    let mlp_want = predict(&m, &[tensor(&x)]);
    assert_close(&numbers(&first[2][1]), &mlp_want[0][2..3]);
    let (code, v) = s.post(
        "/v1/models/two:regress",
        &json!({"examples": [{"a": a[0], "b": b[0]}]}).to_string(),
    );
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("one output"), "{v}");
}

#[test]
fn metadata_status_version_pinning_and_labels() {
    let base = tmp("versions");
    let (m1, m2) = (mlp(), mlp());
    save_version(&m1, &base, 1);
    save_version(&m2, &base, 2);
    let config = base.with_extension("config");
    std::fs::write(
        &config,
        format!(
            "model_config_list {{ config {{ name: 'mlp' base_path: '{}'\n model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}\n version_labels {{ key: 'stable' value: 1 }} }} }}",
            base.display()
        ),
    )
    .unwrap();
    let s = Server::start(&["--model_config_file", config.to_str().unwrap()]);

    let (code, v) = s.get("/v1/models/mlp");
    assert_eq!(code, 200);
    let versions: Vec<&str> = v["model_version_status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["state"], "AVAILABLE");
            assert_eq!(s["status"]["error_code"], "OK");
            s["version"].as_str().unwrap()
        })
        .collect();
    assert_eq!(versions, ["2", "1"]);
    let (code, v) = s.get("/v1/models/mlp/versions/1");
    assert_eq!(code, 200);
    assert_eq!(v["model_version_status"].as_array().unwrap().len(), 1);

    let (code, v) = s.get("/v1/models/mlp/metadata");
    assert_eq!(code, 200);
    assert_eq!(v["model_spec"]["version"], "2");
    let sig = &v["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(sig["method_name"], "tensorflow/serving/predict");
    let input = &sig["inputs"]["features"];
    assert_eq!(input["dtype"], "DT_FLOAT");
    assert_eq!(input["tensor_shape"]["dim"][0]["size"], "-1");
    assert_eq!(input["tensor_shape"]["dim"][1]["size"], "4");
    assert_eq!(
        sig["outputs"]["scores"]["tensor_shape"]["dim"][1]["size"],
        "3"
    );
    let (_, v) = s.get("/v1/models/mlp/labels/stable/metadata");
    assert_eq!(v["model_spec"]["version"], "1");

    let x = rows(2, 4, 0.3);
    let body = instances(&x);
    let (w1, w2) = (predict(&m1, &[tensor(&x)]), predict(&m2, &[tensor(&x)]));
    let got = |path: &str| {
        let (code, v) = s.post(path, &body);
        assert_eq!(code, 200, "{path}: {v}");
        numbers(&v["predictions"])
    };
    assert_close(&got("/v1/models/mlp:predict"), &w2[0]);
    assert_close(&got("/v1/models/mlp/versions/2:predict"), &w2[0]);
    assert_close(&got("/v1/models/mlp/versions/1:predict"), &w1[0]);
    assert_close(&got("/v1/models/mlp/labels/stable:predict"), &w1[0]);

    let (code, v) = s.post("/v1/models/mlp/versions/3:predict", &body);
    assert_eq!(code, 404);
    assert_eq!(
        v["error"],
        "Servable not found for request: Specific(mlp, 3)"
    );
    let (code, v) = s.post("/v1/models/mlp/labels/canary:predict", &body);
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("canary"));
    let (code, _) = s.get("/v1/models/mlp/versions/7");
    assert_eq!(code, 404);
}

#[test]
fn bad_requests_get_the_right_codes_and_the_server_keeps_answering() {
    let (m, s, _base) = serve_mlp("bad", &["--rest_api_max_body_bytes", "4096"]);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "/v1/models/mlp:predict",
            "{\"instances\": [[1, 2".into(),
            400,
            "JSON Parse error",
        ),
        (
            "/v1/models/mlp:predict",
            "{\"instances\": [[1, 2, 3]]}".into(),
            400,
            "dimension 1 must be 4",
        ),
        (
            "/v1/models/mlp:predict",
            "{\"instances\": [[1, 2, 3, 4], [1]]}".into(),
            400,
            "ragged",
        ),
        (
            "/v1/models/mlp:predict",
            "{\"instances\": [[1, 2, \"x\", 4]]}".into(),
            400,
            "string",
        ),
        (
            "/v1/models/mlp:predict",
            "{\"instancez\": []}".into(),
            400,
            "unknown key",
        ),
        (
            "/v1/models/mlp:predict",
            "{\"inputs\": {\"pixels\": [[1, 2, 3, 4]]}}".into(),
            400,
            "no value for input 'features'",
        ),
        (
            "/v1/models/nope:predict",
            instances(&rows(1, 4, 0.0)),
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            "/v1/models/mlp:explain",
            instances(&rows(1, 4, 0.0)),
            404,
            "Malformed request",
        ),
        (
            "/v1/models/mlp:predict",
            instances(&rows(300, 4, 0.0)),
            413,
            "larger than the limit of 4096 bytes",
        ),
    ];
    for (path, body, code, msg) in &cases {
        let (got, v) = s.post(path, body);
        assert_eq!(got, *code, "{path} {body:.60}: {v}");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.contains(msg), "{path}: expected '{msg}' in '{e}'");
    }
    let (code, v) = s.get("/v1/models/nope");
    assert_eq!(code, 404, "{v}");
    let (code, _) = s.get("/v2/whatever");
    assert_eq!(code, 404);
    // Non-finite numbers, as TF Serving's JSON allows, reach the model.
    let (code, v) = s.post(
        "/v1/models/mlp:predict",
        "{\"instances\": [[NaN, 1, 2, 3]]}",
    );
    assert_eq!(code, 200, "{v}");
    // Still answering, with the right numbers.
    let x = rows(3, 4, 0.7);
    let (code, v) = s.post("/v1/models/mlp:predict", &instances(&x));
    assert_eq!(code, 200, "{v}");
    assert_close(&numbers(&v["predictions"]), &predict(&m, &[tensor(&x)])[0]);
    let metrics = s.text("/monitoring/prometheus/metrics");
    assert!(
        metrics.contains(":tensorflow:serving:request_count_total{model_name=\"mlp\",status=\"INVALID_ARGUMENT\"} 6"),
        "{metrics}"
    );
    assert!(metrics
        .contains(":tensorflow:serving:request_count_total{model_name=\"mlp\",status=\"OK\"} 2"));
    assert!(metrics.contains(":tensorflow:serving:request_latency_bucket{"));
}

#[test]
fn a_new_version_is_swapped_in_under_load_without_failed_requests() {
    let base = tmp("reload");
    let (m1, m2) = (mlp(), mlp());
    save_version(&m1, &base, 1);
    let s = Arc::new(Server::start(&[
        "--model_name",
        "mlp",
        "--model_base_path",
        base.to_str().unwrap(),
        "--file_system_poll_wait_seconds",
        "1",
    ]));
    let x = rows(4, 4, 0.2);
    let body = instances(&x);
    let (w1, w2) = (
        predict(&m1, &[tensor(&x)])[0].clone(),
        predict(&m2, &[tensor(&x)])[0].clone(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, seen_v2) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(AtomicUsize::new(0)),
    );
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (s, body, stop, ok, failed, seen_v2) = (
                s.clone(),
                body.clone(),
                stop.clone(),
                ok.clone(),
                failed.clone(),
                seen_v2.clone(),
            );
            let (w1, w2) = (w1.clone(), w2.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (code, v) = s.post("/v1/models/mlp:predict", &body);
                    if code != 200 {
                        failed.lock().unwrap().push(format!("{code} {v}"));
                        continue;
                    }
                    let got = numbers(&v["predictions"]);
                    let close = |w: &[f32]| got.iter().zip(w).all(|(g, w)| (g - w).abs() < 1e-5);
                    if close(&w2) {
                        seen_v2.fetch_add(1, Ordering::Relaxed);
                    } else if !close(&w1) {
                        failed
                            .lock()
                            .unwrap()
                            .push(format!("unexpected outputs {got:?}"));
                    }
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    save_version(&m2, &base, 2);
    let t0 = Instant::now();
    while seen_v2.load(Ordering::Relaxed) < 50 && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failed = failed.lock().unwrap();
    assert!(
        failed.is_empty(),
        "failed requests: {:?}",
        &failed[..failed.len().min(5)]
    );
    assert!(
        seen_v2.load(Ordering::Relaxed) >= 50,
        "version 2 never answered"
    );
    assert!(ok.load(Ordering::Relaxed) > 100);
    let (_, v) = s.get("/v1/models/mlp");
    let states: Vec<(String, String)> = v["model_version_status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["version"].as_str().unwrap().into(),
                e["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("2".into(), "AVAILABLE".into()), ("1".into(), "END".into())]
    );
    let log = s.log.lock().unwrap().join("\n");
    assert!(
        log.contains("Unloaded servable version {name: mlp version: 1}"),
        "{log}"
    );
}

#[test]
fn batching_merges_concurrent_requests_into_fewer_model_calls() {
    let base = tmp("batching");
    let m = mlp();
    save_version(&m, &base, 1);
    let params = base.with_extension("batching");
    std::fs::write(
        &params,
        "max_batch_size { value: 64 }\nbatch_timeout_micros { value: 50000 }\nnum_batch_threads { value: 1 }\n",
    )
    .unwrap();
    let s = Arc::new(Server::start(&[
        "--model_name",
        "mlp",
        "--model_base_path",
        base.to_str().unwrap(),
        "--enable_batching",
        "--batching_parameters_file",
        params.to_str().unwrap(),
    ]));
    let n = 12;
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let x = rows(1 + i % 3, 4, i as f32);
                let (code, v) = s.post("/v1/models/mlp:predict", &instances(&x));
                (x, code, v)
            })
        })
        .collect();
    let m_out: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (x, code, v) in &m_out {
        assert_eq!(*code, 200, "{v}");
        assert_eq!(v["predictions"].as_array().unwrap().len(), x.len());
        assert_close(&numbers(&v["predictions"]), &predict(&m, &[tensor(x)])[0]);
    }
    let metrics = s.text("/monitoring/prometheus/metrics");
    let count = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in {metrics}"))
    };
    let batches = count(":tensorflow:serving:batching_session:requests_per_batch_count");
    let requests = count(":tensorflow:serving:batching_session:requests_per_batch_sum");
    assert_eq!(requests as usize, n);
    assert!(
        batches < n as f64,
        "{batches} batches for {n} requests: nothing merged"
    );
}

#[test]
fn tflite_versions_are_served() {
    let base = tmp("tflite");
    let m = mlp();
    std::fs::create_dir_all(base.join("1")).unwrap();
    let lite = ferroflow::lite::convert::from_keras(&m).unwrap();
    std::fs::write(
        base.join("1/model.tflite"),
        ferroflow::lite::write::to_bytes(&lite),
    )
    .unwrap();
    let s = Server::start(&[
        "--model_name",
        "lite",
        "--model_base_path",
        base.to_str().unwrap(),
    ]);
    let x = rows(3, 4, 0.4);
    let (code, v) = s.post("/v1/models/lite:predict", &instances(&x));
    assert_eq!(code, 200, "{v}");
    assert_close(&numbers(&v["predictions"]), &predict(&m, &[tensor(&x)])[0]);
    let (_, v) = s.get("/v1/models/lite/metadata");
    let sig = &v["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(sig["inputs"].as_object().unwrap().len(), 1);
    let log = s.log.lock().unwrap().join("\n");
    assert!(log.contains("(tflite)"), "{log}");
}

#[test]
fn onnx_versions_are_served() {
    // ferroflow's own ONNX export of the MLP, served from a version folder.
    let base = tmp("onnx");
    let m = mlp();
    std::fs::create_dir_all(base.join("1")).unwrap();
    let exported =
        ferroflow::onnx::export_model(&m, &ferroflow::onnx::ExportOptions::default()).unwrap();
    ferroflow::onnx::save_model(&exported, base.join("1/model.onnx")).unwrap();
    let s = Server::start(&[
        "--model_name",
        "onnx",
        "--model_base_path",
        base.to_str().unwrap(),
    ]);
    let x = rows(3, 4, 0.4);
    let (code, v) = s.post("/v1/models/onnx:predict", &instances(&x));
    assert_eq!(code, 200, "{v}");
    assert_close(&numbers(&v["predictions"]), &predict(&m, &[tensor(&x)])[0]);
    let (code, v) = s.post("/v1/models/onnx:predict", &instances(&rows(2, 5, 0.1)));
    assert_eq!(code, 400, "{v}");
    let log = s.log.lock().unwrap().join("\n");
    assert!(log.contains("(onnx)"), "{log}");
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let (_m, mut s, _base) = serve_mlp("sigterm", &[]);
    let addr = s.url.trim_start_matches("http://").to_string();
    let body = instances(&rows(2, 4, 0.0));
    let (first, rest) = body.split_at(body.len() / 2);
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /v1/models/mlp:predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    conn.write_all(rest.as_bytes()).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"predictions\""), "{response}");
    let t0 = Instant::now();
    let exit = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "server did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    // New connections are refused once it has stopped.
    assert!(std::net::TcpStream::connect(&addr).is_err());
}

#[test]
fn a_request_past_the_deadline_gets_504_and_the_server_goes_on() {
    let (_m, s, _base) = serve_mlp("deadline", &["--rest_api_timeout_in_ms", "1"]);
    // 50,000 rows take well over a millisecond to decode and run.
    let big = json!({ "inputs": rows(50_000, 4, 0.0) }).to_string();
    let (code, v) = s.post("/v1/models/mlp:predict", &big);
    assert_eq!(code, 504, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("longer than 1 ms"),
        "{v}"
    );
    let (code, v) = s.get("/v1/models/mlp");
    assert_eq!(code, 200, "{v}");
}

#[test]
fn bad_flags_and_files_are_errors_at_startup() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ferroflow"))
            .arg("serve")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(run(&["--model_name", "m"]).contains("--model_base_path"));
    assert!(run(&["--model_base_path", "/nonexistent/ff"]).contains("not a directory"));
    let cfg = tmp("badcfg").join("models.config");
    std::fs::write(
        &cfg,
        "model_config_list { config { name: 'a' base_pth: '/tmp' } }",
    )
    .unwrap();
    let e = run(&["--model_config_file", cfg.to_str().unwrap()]);
    assert!(
        e.contains("unknown field 'base_pth'") && e.contains("line 1"),
        "{e}"
    );
}

#[test]
fn keras_files_are_served() {
    // A two-input, two-output model saved by Python Keras, served from `1/model.keras`.
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ferroflow-keras/tests/fixtures/keras");
    let base = tmp("keras_version");
    std::fs::create_dir_all(base.join("1")).unwrap();
    std::fs::copy(fx.join("multi_io.keras"), base.join("1/model.keras")).unwrap();
    let s = Server::start(&[
        "--model_name",
        "mio",
        "--model_base_path",
        base.to_str().unwrap(),
    ]);
    let a = ferroflow::npy::read_npy(fx.join("multi_io_x0.npy")).unwrap();
    let b = ferroflow::npy::read_npy(fx.join("multi_io_x1.npy")).unwrap();
    let rows = |t: &Tensor| -> Vec<Vec<f32>> {
        let w = t.shape()[1];
        t.to_vec::<f32>()
            .unwrap()
            .chunks(w)
            .map(<[f32]>::to_vec)
            .collect()
    };
    let body = json!({"inputs": {"a": rows(&a), "b": rows(&b)}}).to_string();
    let (code, v) = s.post("/v1/models/mio:predict", &body);
    assert_eq!(code, 200, "{v}");
    for (name, file) in [("p", "multi_io_y0.npy"), ("q", "multi_io_y1.npy")] {
        let want = ferroflow::npy::read_npy(fx.join(file))
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let got = numbers(&v["outputs"][name]);
        assert!(
            got.iter()
                .zip(&want)
                .all(|(g, w)| (g - w).abs() <= 1e-4 * w.abs().max(1.0)),
            "{name}"
        );
    }
}

#[test]
fn a_request_shaped_to_claim_terabytes_is_refused_and_nothing_else_is_affected() {
    // A text model with a dynamic sequence length (`Input((None,))`).
    let base = tmp("text");
    let model = {
        let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        let ids = Input::with(vec![None], DType::I32, Some("tokens"));
        let e = ferroflow::keras::layers::Embedding::new(100, 4)
            .apply(&ids)
            .unwrap();
        let h = ferroflow::keras::layers::GlobalAveragePooling1D::new()
            .apply(&e)
            .unwrap();
        let y = Dense::new(2).name("scores").apply(&h).unwrap();
        Model::named(&[ids], &[y], "text").unwrap()
    };
    save_version(&model, &base, 1);
    let s = Server::start(&[
        "--model_name",
        "text",
        "--model_base_path",
        base.to_str().unwrap(),
    ]);
    // 20 MB: a first row of 4 * 10^6 ids, then 4 * 10^6 empty rows. Read from its first
    // elements the shape is [4e6, 4e6] (64 TB of int32).
    let n = 4_000_000;
    let mut body = String::with_capacity(21 << 20);
    body.push_str("{\"instances\": [[");
    body.push_str(&"0,".repeat(n - 1));
    body.push_str("0]");
    body.push_str(&",[]".repeat(n - 1));
    body.push_str("]}");
    let (code, v) = s.post("/v1/models/text:predict", &body);
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("ragged"), "{v}");
    // The server is still there, and right.
    let (code, v) = s.post(
        "/v1/models/text:predict",
        "{\"instances\": [[1, 2, 3], [4, 5, 6]]}",
    );
    assert_eq!(code, 200, "{v}");
    let x = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], &[2, 3]).unwrap();
    assert_close(&numbers(&v["predictions"]), &predict(&model, &[x])[0]);
}

mod grpc {
    //! The gRPC API through the client generated from the same protos.
    use super::*;
    use ferroflow::serve::grpc::proto::tensorflow::serving as pb;
    use ferroflow::serve::grpc::proto::tensorflow::{DataType, TensorProto};
    use ferroflow::serve::grpc::tensor_proto::{data_type, tensor_to_proto};
    use pb::prediction_service_client::PredictionServiceClient;

    fn predict_request(model: &str, x: &Tensor) -> pb::PredictRequest {
        pb::PredictRequest {
            model_spec: Some(pb::ModelSpec {
                name: model.into(),
                ..Default::default()
            }),
            inputs: [("features".to_string(), tensor_to_proto(x))].into(),
            output_filter: Vec::new(),
        }
    }

    fn values(p: &TensorProto) -> Vec<f32> {
        assert_eq!(p.dtype, data_type(DType::F32) as i32);
        p.tensor_content
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn predict_metadata_and_status_codes_over_grpc() {
        let (m, s, _base) = serve_mlp(
            "grpc",
            &[
                "--grpc_channel_arguments",
                "grpc.max_receive_message_length=65536",
            ],
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = PredictionServiceClient::connect(format!("http://{}", s.grpc))
                .await
                .unwrap();
            let x = tensor(&rows(5, 4, 0.3));
            let r = c
                .predict(predict_request("mlp", &x))
                .await
                .unwrap()
                .into_inner();
            assert_close(
                &values(&r.outputs["scores"]),
                &predict(&m, std::slice::from_ref(&x))[0],
            );
            assert_eq!(
                r.model_spec.unwrap().version_choice,
                Some(pb::model_spec::VersionChoice::Version(1))
            );
            let code = |r: Result<tonic::Response<pb::PredictResponse>, tonic::Status>| {
                r.map(|_| tonic::Code::Ok).unwrap_or_else(|e| e.code())
            };
            assert_eq!(
                code(c.predict(predict_request("nope", &x)).await),
                tonic::Code::NotFound
            );
            let wrong = tensor(&rows(5, 3, 0.0));
            assert_eq!(
                code(c.predict(predict_request("mlp", &wrong)).await),
                tonic::Code::InvalidArgument
            );
            let big = tensor(&rows(8000, 4, 0.0));
            assert_eq!(
                code(c.predict(predict_request("mlp", &big)).await),
                tonic::Code::ResourceExhausted
            );
            // A deadline that passes (tonic's client gives up itself, with CANCELLED; the
            // server's DEADLINE_EXCEEDED is checked in its unit tests and by TF Serving's
            // Python client in CI).
            let mut slow =
                tonic::Request::new(predict_request("mlp", &tensor(&rows(4000, 4, 0.0))));
            slow.set_timeout(Duration::from_micros(200));
            let c2 = code(c.predict(slow).await);
            assert!(
                matches!(c2, tonic::Code::DeadlineExceeded | tonic::Code::Cancelled),
                "{c2:?}"
            );
            let md = c
                .get_model_metadata(pb::GetModelMetadataRequest {
                    model_spec: Some(pb::ModelSpec {
                        name: "mlp".into(),
                        ..Default::default()
                    }),
                    metadata_field: vec!["signature_def".into()],
                })
                .await
                .unwrap()
                .into_inner();
            let any = &md.metadata["signature_def"];
            assert_eq!(
                any.type_url,
                "type.googleapis.com/tensorflow.serving.SignatureDefMap"
            );
            let map =
                <pb::SignatureDefMap as prost::Message>::decode(any.value.as_slice()).unwrap();
            let sig = &map.signature_def["serving_default"];
            assert_eq!(sig.inputs["features"].dtype, DataType::DtFloat as i32);
            // Still answering.
            let r = c
                .predict(predict_request("mlp", &x))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(values(&r.outputs["scores"]).len(), 15);
        });
        let metrics = s.text("/monitoring/prometheus/metrics");
        assert!(
            metrics.contains("api=\"predict\"") || metrics.contains("request_count"),
            "{metrics}"
        );
    }
}

#[test]
fn a_retrieval_index_serves_the_top_k_it_predicts() {
    use ferroflow::keras::layers::{Embedding, StringLookup};
    use ferroflow::keras::retrieval::BruteForce;
    use ferroflow::keras::LayerRef;
    // user id -> lookup -> embedding -> BruteForce over 300 titled items.
    let model = {
        let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        let users: Vec<ferroflow::TfString> = (0..30).map(|i| format!("u{i}").into()).collect();
        let lookup: LayerRef = Arc::new(StringLookup::new().vocabulary(users, None).unwrap());
        let emb: LayerRef = Arc::new(Embedding::new(31, 8));
        let input = Input::with(vec![], DType::String, Some("user_id"));
        let q = (&lookup).apply(&input).unwrap();
        let q = (&emb).apply(&q).unwrap();
        let items: Vec<f32> = (0..300 * 8).map(|i| (i as f32 * 0.713).sin()).collect();
        let titles: Vec<String> = (0..300).map(|i| format!("Movie {i}")).collect();
        let index = BruteForce::new(5).unwrap().name("top_k");
        index
            .index(
                &Tensor::from_vec(items, &[300, 8]).unwrap(),
                Some(&Tensor::from_strings(&titles, &[300]).unwrap()),
            )
            .unwrap();
        let outs = index.call_many(&[q]).unwrap();
        Model::named(&[input], &outs, "recommender").unwrap()
    };
    let base = tmp("retrieval");
    save_version(&model, &base, 1);
    let s = Server::start(&[
        "--model_name",
        "rec",
        "--model_base_path",
        base.to_str().unwrap(),
    ]);
    let users = ["u3", "u17", "nobody", "u3"];
    let want = model
        .predict(vec![Tensor::from_strings(&users, &[4]).unwrap()], 4)
        .unwrap();
    let (scores, titles) = (
        want[0].to_vec::<f32>().unwrap(),
        want[1].to_strings().unwrap(),
    );
    let (code, v) = s.post(
        "/v1/models/rec:predict",
        &json!({ "instances": users }).to_string(),
    );
    assert_eq!(code, 200, "{v}");
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 4, "{v}");
    for (r, p) in preds.iter().enumerate() {
        let got: Vec<String> = p["top_k_1"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, titles[r * 5..(r + 1) * 5], "row {r}: {p}");
        assert_close(&numbers(&p["top_k_0"]), &scores[r * 5..(r + 1) * 5]);
    }
}
