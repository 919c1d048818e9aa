//! `ferroflow serve`: TF Serving's command-line flags, startup, the model poller and
//! graceful shutdown.

use crate::config::{self, BatchingParameters, ModelConfig};
use crate::grpc::GrpcOptions;
use crate::manager::ModelManager;
use crate::metrics::Metrics;
use crate::routes::{router, AppState};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The flags, named as `tensorflow_model_server` names them.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Name of the model in request URLs (with --model_base_path).
    #[arg(long = "model_name", default_value = "default")]
    pub model_name: String,
    /// Directory of numbered version folders (DIR/1/, DIR/2/...), each a saved ferroflow
    /// model or a folder with one .keras or .tflite file; the newest is served.
    #[arg(long = "model_base_path")]
    pub model_base_path: Option<PathBuf>,
    /// A ModelServerConfig text file (model_config_list { config { ... } }) for several
    /// models, version policies and labels.
    #[arg(long = "model_config_file")]
    pub model_config_file: Option<PathBuf>,
    /// Port of the gRPC API (PredictionService, ModelService; 0 picks a free one,
    /// printed at startup).
    #[arg(long = "port", default_value_t = 8500)]
    pub port: u16,
    /// Calls the gRPC API answers at once (default: four per core); the rest wait.
    #[arg(long = "grpc_max_threads")]
    pub grpc_max_threads: Option<usize>,
    /// gRPC server arguments, `key=value` separated by commas: grpc.max_receive_message_length,
    /// grpc.max_send_message_length (-1: no limit), grpc.max_concurrent_streams,
    /// grpc.keepalive_time_ms, grpc.keepalive_timeout_ms; others are ignored with a warning.
    #[arg(long = "grpc_channel_arguments", default_value = "")]
    pub grpc_channel_arguments: String,
    /// Port of the REST API (0 picks a free one, printed at startup).
    #[arg(long = "rest_api_port", default_value_t = 8501)]
    pub rest_api_port: u16,
    /// Address to listen on.
    #[arg(long = "rest_api_bind_address", default_value = "0.0.0.0")]
    pub rest_api_bind_address: String,
    /// Threads answering HTTP requests (default: one per core).
    #[arg(long = "rest_api_num_threads")]
    pub rest_api_num_threads: Option<usize>,
    /// Per-request time limit in milliseconds.
    #[arg(long = "rest_api_timeout_in_ms", default_value_t = 30_000)]
    pub rest_api_timeout_in_ms: u64,
    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long = "rest_api_max_body_bytes", default_value_t = 64 << 20)]
    pub rest_api_max_body_bytes: usize,
    /// Seconds between scans of the base paths for new versions (0: scan once).
    #[arg(long = "file_system_poll_wait_seconds", default_value_t = 1)]
    pub file_system_poll_wait_seconds: u64,
    /// Merge concurrent requests into one model call.
    #[arg(long = "enable_batching", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    pub enable_batching: bool,
    /// A BatchingParameters text file (max_batch_size { value: 32 } ...).
    #[arg(long = "batching_parameters_file")]
    pub batching_parameters_file: Option<PathBuf>,
}

impl ServeArgs {
    /// The models to serve, from the flags or the config file.
    pub fn model_configs(&self) -> Result<Vec<ModelConfig>, String> {
        let configs = match (&self.model_base_path, &self.model_config_file) {
            (Some(_), Some(_)) => {
                return Err("give --model_base_path or --model_config_file, not both".into())
            }
            (None, None) => {
                return Err(
                    "give --model_base_path (with --model_name) or --model_config_file".into(),
                )
            }
            (Some(base), None) => vec![ModelConfig::new(&self.model_name, base)],
            (None, Some(file)) => config::read_model_config_file(file)?,
        };
        for c in &configs {
            if !c.base_path.is_dir() {
                return Err(format!(
                    "model '{}': base path {} is not a directory",
                    c.name,
                    c.base_path.display()
                ));
            }
        }
        Ok(configs)
    }

    /// The gRPC server's options, from `--grpc_max_threads` and `--grpc_channel_arguments`.
    pub fn grpc_options(&self) -> Result<GrpcOptions, String> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut o = GrpcOptions {
            max_receive_bytes: self.rest_api_max_body_bytes,
            max_send_bytes: i32::MAX as usize,
            max_concurrent_calls: self.grpc_max_threads.unwrap_or(4 * cores).max(1),
            max_concurrent_streams: None,
            keepalive: None,
        };
        let (mut keep_time, mut keep_timeout) = (None, Duration::from_secs(20));
        for arg in self
            .grpc_channel_arguments
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| format!("--grpc_channel_arguments: '{arg}' is not key=value"))?;
            let n: i64 = value.trim().parse().map_err(|_| {
                format!("--grpc_channel_arguments: {key} must be an integer, got '{value}'")
            })?;
            let size = |n: i64| if n < 0 { usize::MAX } else { n as usize };
            match key.trim() {
                "grpc.max_receive_message_length" => o.max_receive_bytes = size(n),
                "grpc.max_send_message_length" => o.max_send_bytes = size(n),
                "grpc.max_concurrent_streams" => o.max_concurrent_streams = u32::try_from(n).ok(),
                "grpc.keepalive_time_ms" => {
                    keep_time = Some(Duration::from_millis(n.max(1) as u64))
                }
                "grpc.keepalive_timeout_ms" => {
                    keep_timeout = Duration::from_millis(n.max(1) as u64)
                }
                other => eprintln!("ferroflow serve: ignoring gRPC channel argument {other}"),
            }
        }
        o.keepalive = keep_time.map(|t| (t, keep_timeout));
        Ok(o)
    }

    /// The batching parameters when batching is on.
    pub fn batching(&self) -> Result<Option<BatchingParameters>, String> {
        match (&self.batching_parameters_file, self.enable_batching) {
            (Some(_), false) => Err("--batching_parameters_file needs --enable_batching".into()),
            (Some(f), true) => config::read_batching_parameters(f).map(Some),
            (None, true) => Ok(Some(BatchingParameters::default())),
            (None, false) => Ok(None),
        }
    }
}

/// Loads the models, serves until SIGTERM or Ctrl-C, then finishes in-flight requests.
pub fn run(args: &ServeArgs) -> Result<(), String> {
    let configs = args.model_configs()?;
    let batching = args.batching()?;
    let metrics = Arc::new(Metrics::new());
    let manager = Arc::new(ModelManager::new(configs, batching, metrics.clone()));
    manager.poll();
    if args.file_system_poll_wait_seconds > 0 {
        let (m, wait) = (
            manager.clone(),
            Duration::from_secs(args.file_system_poll_wait_seconds),
        );
        std::thread::Builder::new()
            .name("model-poller".into())
            .spawn(move || loop {
                std::thread::sleep(wait);
                m.poll();
            })
            .map_err(|e| format!("cannot start the model poller: {e}"))?;
    }
    let grpc_options = args.grpc_options()?;
    let state = Arc::new(AppState {
        manager: manager.clone(),
        metrics: metrics.clone(),
        timeout: Duration::from_millis(args.rest_api_timeout_in_ms.max(1)),
        max_body: args.rest_api_max_body_bytes,
    });
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.rest_api_num_threads {
        rt.worker_threads(n.max(1));
    }
    // Requests decode and run on a fixed set of long-lived threads: as many as could
    // usefully compute at once, not one per concurrent request (tokio's default of up to
    // 512, each new thread with its own allocator arena and cold caches).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    rt.max_blocking_threads(2 * cores.max(2))
        .thread_keep_alive(Duration::from_secs(3600));
    let rt = rt
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let addr = format!("{}:{}", args.rest_api_bind_address, args.rest_api_port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let bound: SocketAddr = listener
            .local_addr()
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let grpc_addr = format!("{}:{}", args.rest_api_bind_address, args.port);
        let grpc_listener = tokio::net::TcpListener::bind(&grpc_addr)
            .await
            .map_err(|e| format!("cannot listen on {grpc_addr} (--port): {e}"))?;
        let grpc_bound: SocketAddr = grpc_listener
            .local_addr()
            .map_err(|e| format!("cannot listen on {grpc_addr}: {e}"))?;
        // The two lines TF Serving prints, which scripts wait for.
        eprintln!("ferroflow serve: Running gRPC ModelServer at {grpc_bound} ...");
        eprintln!("ferroflow serve: Exporting HTTP/REST API at:{bound} ...");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        });
        let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let rest = axum::serve(listener, router(state))
            .with_graceful_shutdown(until_stopped(stopped.clone()));
        let grpc = crate::grpc::serve(
            grpc_listener,
            manager,
            metrics,
            grpc_options,
            until_stopped(stopped),
        );
        let (rest, grpc) = tokio::join!(rest, grpc);
        rest.map_err(|e| format!("server error: {e}"))?;
        grpc?;
        eprintln!("ferroflow serve: stopped");
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    eprintln!("ferroflow serve: shutting down, finishing in-flight requests");
}
