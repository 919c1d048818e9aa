//! `ferroflow web`: serves the browser demo for one model on localhost: the page at `/`,
//! the ES module at `/ferroflow.js` with the wasm bundle beside it, and the model's files
//! under `/model/` (so the page's `loadModel('/model/')` works). Every response carries the
//! cross-origin isolation headers (COOP/COEP) that a threaded wasm build needs.

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ferroflow as ff;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `ferroflow web` options.
#[derive(clap::Args)]
pub struct WebArgs {
    /// The model: a ferroflow model directory, or a `.keras`, `.h5` or `.tflite` file.
    #[arg(long)]
    pub model: PathBuf,
    /// Port on localhost (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The browser bundle built by `tools/build_wasm.sh` (default: the source tree's
    /// `target/ferroflow-web`, built on first use when missing).
    #[arg(long)]
    pub bundle: Option<PathBuf>,
}

/// The files of the bundle the server hands out, with their content types.
const BUNDLE_FILES: [(&str, &str); 6] = [
    ("index.html", "text/html; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("ferroflow.js", "text/javascript; charset=utf-8"),
    ("ferroflow.d.ts", "text/plain; charset=utf-8"),
    ("ferroflow_wasm.js", "text/javascript; charset=utf-8"),
    ("ferroflow_wasm_bg.wasm", "application/wasm"),
];

/// The source tree this binary was built from (where `tools/build_wasm.sh` lives).
fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bundle directory: `--bundle`, or the source tree's, built now if missing.
fn bundle_dir(args: &WebArgs) -> ff::Result<PathBuf> {
    if let Some(b) = &args.bundle {
        return check_bundle(b);
    }
    let root = source_root();
    let dir = root.join("target/ferroflow-web");
    if check_bundle(&dir).is_err() {
        let script = root.join("tools/build_wasm.sh");
        if !script.is_file() {
            return Err(ff::Error::invalid(
                "web",
                format!(
                    "no browser bundle at {} and no source tree to build it from: build it \
                     with tools/build_wasm.sh and pass --bundle DIR",
                    dir.display()
                ),
            ));
        }
        eprintln!("building the browser bundle once ({})", script.display());
        let ok = std::process::Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(ff::Error::invalid(
                "web",
                format!(
                    "{} failed (it needs rustup's wasm32-unknown-unknown target and \
                     wasm-bindgen-cli, which it installs when missing)",
                    script.display()
                ),
            ));
        }
    }
    check_bundle(&dir)
}

fn check_bundle(dir: &Path) -> ff::Result<PathBuf> {
    match BUNDLE_FILES.iter().find(|(f, _)| !dir.join(f).is_file()) {
        None => Ok(dir.to_path_buf()),
        Some((f, _)) => Err(ff::Error::invalid(
            "web",
            format!(
                "{} is not a browser bundle: {f} is missing (tools/build_wasm.sh builds one)",
                dir.display()
            ),
        )),
    }
}

struct Site {
    bundle: PathBuf,
    /// Directory whose files are served under `/model/`.
    model_dir: PathBuf,
    /// Only this file of `model_dir` for a single-file model; any file for a directory.
    model_file: Option<String>,
    /// `/model.json`: what the page loads.
    descriptor: String,
}

/// Serves until the process is stopped.
pub fn run(args: &WebArgs) -> ff::Result<()> {
    let model = &args.model;
    let io_err = |source| ff::Error::Io {
        path: model.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(model).map_err(io_err)?;
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let (model_dir, model_file, url) = if meta.is_dir() {
        for f in ff::keras::saving::SAVED_MODEL_FILES {
            if !model.join(f).is_file() {
                return Err(ff::Error::invalid(
                    "web",
                    format!(
                        "{} is not a ferroflow model directory: no {f} in it",
                        model.display()
                    ),
                ));
            }
        }
        (model.clone(), None, "/model/".to_string())
    } else {
        let parent = model
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (
            parent.to_path_buf(),
            Some(name.clone()),
            format!("/model/{name}"),
        )
    };
    let site = Arc::new(Site {
        bundle: bundle_dir(args)?,
        model_dir,
        model_file,
        descriptor: serde_json::json!({"name": name, "url": url}).to_string(),
    });
    let app = Router::new()
        .route("/", get(|s| bundle_file(s, UrlPath("index.html".into()))))
        .route("/model.json", get(descriptor))
        .route("/model/{file}", get(model_file_route))
        .route("/{file}", get(bundle_file))
        .with_state(site);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ff::Error::invalid("web", e.to_string()))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .map_err(|e| {
                ff::Error::invalid(
                    "web",
                    format!("cannot bind {}:{}: {e}", args.host, args.port),
                )
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| ff::Error::invalid("web", e.to_string()))?;
        println!(
            "serving {} at http://{addr}/ (Ctrl-C stops)",
            model.display()
        );
        axum::serve(listener, app)
            .await
            .map_err(|e| ff::Error::invalid("web", e.to_string()))
    })
}

/// A response with the content type and the cross-origin isolation headers.
fn file_response(bytes: Vec<u8>, content_type: &'static str) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-embedder-policy",
        HeaderValue::from_static("require-corp"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("not found: {what}\n")).into_response()
}

async fn descriptor(State(site): State<Arc<Site>>) -> Response {
    file_response(
        site.descriptor.clone().into_bytes(),
        "application/json; charset=utf-8",
    )
}

async fn bundle_file(State(site): State<Arc<Site>>, UrlPath(file): UrlPath<String>) -> Response {
    let Some(&(name, ty)) = BUNDLE_FILES.iter().find(|(f, _)| *f == file) else {
        return not_found(&file);
    };
    match tokio::fs::read(site.bundle.join(name)).await {
        Ok(b) => file_response(b, ty),
        Err(_) => not_found(&file),
    }
}

/// A file of the model: a plain name (no separators, not hidden) that is a regular file of
/// the model's directory, or the model file itself for a single-file model.
async fn model_file_route(
    State(site): State<Arc<Site>>,
    UrlPath(file): UrlPath<String>,
) -> Response {
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && !file.contains(['/', '\\'])
        && site.model_file.as_ref().is_none_or(|f| *f == file);
    let path = site.model_dir.join(&file);
    if !plain || !path.is_file() {
        return not_found(&file);
    }
    let ty = if file.ends_with(".json") {
        "application/json; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    match tokio::fs::read(&path).await {
        Ok(b) => file_response(b, ty),
        Err(_) => not_found(&file),
    }
}
