//! `ferroflow web` over loopback, with a stand-in bundle (the real one is the browser
//! test's, `web-tests/`): the page, the module and the model's files are served with the
//! cross-origin isolation headers; nothing outside the model's directory is reachable.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BUNDLE: [&str; 6] = [
    "index.html",
    "app.js",
    "ferroflow.js",
    "ferroflow.d.ts",
    "ferroflow_wasm.js",
    "ferroflow_wasm_bg.wasm",
];

struct Web {
    child: Child,
    url: String,
    agent: ureq::Agent,
}

impl Web {
    fn start(model: &Path, bundle: &Path) -> Web {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferroflow"))
            .args(["web", "--port", "0", "--model"])
            .arg(model)
            .arg("--bundle")
            .arg(bundle)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split(" at ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Web { child, url, agent }
    }

    /// Status, content type, COEP header and body of `GET path`.
    fn get(&self, path: &str) -> (u16, String, String, Vec<u8>) {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.url))
            .call()
            .unwrap();
        let header = |k: &str| {
            r.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (ty, coep) = (
            header("content-type"),
            header("cross-origin-embedder-policy"),
        );
        let body = r.body_mut().read_to_vec().unwrap();
        (r.status().as_u16(), ty, coep, body)
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fake_bundle(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in BUNDLE {
        std::fs::write(dir.join(f), format!("contents of {f}")).unwrap();
    }
}

#[test]
fn serves_the_page_the_module_and_the_model_files_isolated() {
    let tmp = std::env::temp_dir().join(format!("ff_web_{}", std::process::id()));
    let (bundle, model) = (tmp.join("bundle"), tmp.join("m"));
    fake_bundle(&bundle);
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), "{}").unwrap();
    std::fs::write(model.join("model.weights.safetensors"), "w").unwrap();
    std::fs::write(tmp.join("secret.txt"), "outside").unwrap();
    let web = Web::start(&model, &bundle);

    let (status, ty, coep, body) = web.get("/");
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"contents of index.html"[..])
    );
    assert!(ty.starts_with("text/html"), "{ty}");
    assert_eq!(coep, "require-corp");
    let (status, ty, _, _) = web.get("/ferroflow_wasm_bg.wasm");
    assert_eq!((status, ty.as_str()), (200, "application/wasm"));
    let (status, ty, _, _) = web.get("/ferroflow.js");
    assert!(status == 200 && ty.starts_with("text/javascript"), "{ty}");
    let (_, _, _, body) = web.get("/model.json");
    let desc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(desc["url"], "/model/");
    let (status, _, coep, body) = web.get("/model/config.json");
    assert_eq!(
        (status, coep.as_str(), body.as_slice()),
        (200, "require-corp", &b"{}"[..])
    );
    for bad in [
        "/model/..%2Fsecret.txt",
        "/model/%2E%2E%2Fsecret.txt",
        "/model/.hidden",
        "/secret.txt",
        "/Cargo.toml",
        "/model/nothing",
    ] {
        assert_eq!(web.get(bad).0, 404, "{bad}");
    }
    drop(web);

    // A single-file model is served alone under /model/<name>.
    std::fs::write(tmp.join("m.tflite"), "tfl").unwrap();
    let web = Web::start(&tmp.join("m.tflite"), &bundle);
    let (_, _, _, body) = web.get("/model.json");
    let desc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(desc["url"], "/model/m.tflite");
    assert_eq!(web.get("/model/m.tflite").0, 200);
    assert_eq!(web.get("/model/secret.txt").0, 404);
    drop(web);
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn bad_models_and_bundles_are_errors() {
    let tmp = std::env::temp_dir().join(format!("ff_web_bad_{}", std::process::id()));
    let bundle = tmp.join("bundle");
    fake_bundle(&bundle);
    let run = |model: &Path, bundle: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_ferroflow"))
            .args(["web", "--port", "0", "--model"])
            .arg(model)
            .arg("--bundle")
            .arg(bundle)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&tmp.join("nope"), &bundle);
    assert!(err.contains("nope"), "{err}");
    let err = run(&bundle, &bundle);
    assert!(err.contains("not a ferroflow model directory"), "{err}");
    std::fs::remove_file(bundle.join("app.js")).unwrap();
    std::fs::write(tmp.join("m.tflite"), "tfl").unwrap();
    let err = run(&tmp.join("m.tflite"), &bundle);
    assert!(err.contains("app.js is missing"), "{err}");
    std::fs::remove_dir_all(&tmp).ok();
}
