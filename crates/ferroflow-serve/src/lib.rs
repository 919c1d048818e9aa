//! A model server compatible with TensorFlow Serving's REST API.
//!
//! `ferroflow serve --model_name NAME --model_base_path DIR --rest_api_port 8501` serves
//! the numbered version folders under `DIR` (saved ferroflow models or `.tflite` files)
//! at TF Serving's endpoints:
//! - `GET /v1/models/{name}[/versions/{v}|/labels/{l}]`: version status;
//! - `GET /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata`: the signature;
//! - `POST /v1/models/{name}[/versions/{v}|/labels/{l}]:(predict|classify|regress)`;
//! - `GET /monitoring/prometheus/metrics`.
//!
//! New versions are picked up while running and swapped in without failing requests;
//! concurrent requests can be merged into one model call (`--enable_batching`).

pub mod batching;
pub mod config;
pub mod error;
pub mod grpc;
pub mod json;
pub mod json_tensor;
pub mod manager;
pub mod metrics;
pub mod request;
pub mod routes;
pub mod run_cost;
pub mod servable;
pub mod server;
pub mod textproto;

pub use error::{Code, ServeError};
pub use server::{run, ServeArgs};
