//! The HTTP surface: TF Serving's `/v1/models/...` endpoints and the Prometheus page.

use crate::error::{json_response, Code, ServeError, ServeResult};
use crate::json::{Budget, Json, MEMORY_PER_BODY_BYTE};
use crate::manager::{metadata_json, LoadedVersion, ModelManager, VersionSpec};
use crate::metrics::{Entrypoint, Metrics};
use crate::request::{self, Format, Method};
use crate::run_cost::{blocking, timed};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ferroflow_core::Tensor;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every handler shares.
pub struct AppState {
    /// The served models.
    pub manager: Arc<ModelManager>,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// Per-request time limit (`--rest_api_timeout_in_ms`).
    pub timeout: Duration,
    /// Request body limit in bytes.
    pub max_body: usize,
}

/// The server's routes.
pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.max_body;
    Router::new()
        .route("/v1/models/{*rest}", get(get_model).post(post_model))
        .route("/monitoring/prometheus/metrics", get(metrics_page))
        .fallback(unknown_path)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn unknown_path(uri: axum::http::Uri) -> Response {
    ServeError::not_found(format!("Malformed request: {}", uri.path())).into_response()
}

async fn metrics_page(State(st): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}

/// `name`, `name/versions/{v}` or `name/labels/{l}`.
fn parse_model_path(parts: &[&str]) -> ServeResult<(String, VersionSpec)> {
    match parts {
        [name] if !name.is_empty() => Ok((name.to_string(), VersionSpec::Latest)),
        [name, "versions", v] if !name.is_empty() => {
            let v = v.parse().map_err(|_| {
                ServeError::invalid(format!("version '{v}' is not a non-negative integer"))
            })?;
            Ok((name.to_string(), VersionSpec::Number(v)))
        }
        [name, "labels", l] if !name.is_empty() && !l.is_empty() => {
            Ok((name.to_string(), VersionSpec::Label(l.to_string())))
        }
        _ => Err(ServeError::not_found(format!(
            "Malformed request: /v1/models/{}",
            parts.join("/")
        ))),
    }
}

/// `GET /v1/models/{name}[/versions/{v}|/labels/{l}][/metadata]`.
async fn get_model(State(st): State<Arc<AppState>>, Path(rest): Path<String>) -> Response {
    let parts: Vec<&str> = rest.split('/').collect();
    let result = match parts.split_last() {
        Some((&"metadata", model)) => parse_model_path(model).and_then(|(name, spec)| {
            let v = st.manager.get(&name, &spec)?;
            Ok(metadata_json(&name, v.version, v.servable.signature()))
        }),
        _ => parse_model_path(&parts).and_then(|(name, spec)| st.manager.status(&name, &spec)),
    };
    match result {
        Ok(v) => json_response(StatusCode::OK, pretty(&v)),
        Err(e) => e.into_response(),
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// `POST /v1/models/{name}[/versions/{v}|/labels/{l}]:(predict|classify|regress)`.
async fn post_model(
    State(st): State<Arc<AppState>>,
    Path(rest): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let start = Instant::now();
    let target = parse_post_path(&rest);
    let (model, api) = match &target {
        Ok((name, _, method)) => (name.clone(), method.verb()),
        Err(_) => (String::new(), "unknown"),
    };
    let result = match target {
        Err(e) => Err(e),
        Ok((name, spec, method)) => {
            let work = handle_post(st.clone(), name, spec, method, body);
            match tokio::time::timeout(st.timeout, work).await {
                Ok(r) => r,
                Err(_) => Err(ServeError::new(
                    Code::DeadlineExceeded,
                    format!("the request took longer than {} ms", st.timeout.as_millis()),
                )),
            }
        }
    };
    let status = match &result {
        Ok(_) => "OK",
        Err(e) => e.code.name(),
    };
    st.metrics
        .record_request(&model, api, Entrypoint::Rest, status, start.elapsed());
    match result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => e.into_response(),
    }
}

fn parse_post_path(rest: &str) -> ServeResult<(String, VersionSpec, Method)> {
    let malformed = || ServeError::not_found(format!("Malformed request: POST /v1/models/{rest}"));
    let (path, verb) = rest.rsplit_once(':').ok_or_else(malformed)?;
    let method = match verb {
        "predict" => Method::Predict,
        "classify" => Method::Classify,
        "regress" => Method::Regress,
        _ => return Err(malformed()),
    };
    let parts: Vec<&str> = path.split('/').collect();
    let (name, spec) = parse_model_path(&parts)?;
    Ok((name, spec, method))
}

/// Bodies smaller than this are decoded and encoded on the async worker (and run there
/// too when the model is quick and unbatched); larger ones on a blocking thread.
const INLINE_BODY: usize = 64 * 1024;

async fn handle_post(
    st: Arc<AppState>,
    name: String,
    spec: VersionSpec,
    method: Method,
    body: Result<Bytes, BytesRejection>,
) -> ServeResult<String> {
    let body = body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ServeError::new(
                Code::ResourceExhausted,
                format!(
                    "the request body is larger than the limit of {} bytes",
                    st.max_body
                ),
            )
        } else {
            ServeError::invalid(format!("cannot read the request body: {rej}"))
        }
    })?;
    let version = st.manager.get(&name, &spec)?;
    let metrics = st.metrics.clone();
    let small = body.len() < INLINE_BODY;
    if version.batcher.is_none() {
        // Decoding, the model and encoding in one place: here when the body is small and
        // the model quick, else with one hop to a blocking thread.
        let cost = version.cost.clone();
        let run = move || {
            let (inputs, format) = decode(&body, st.max_body, &version, method)?;
            let (outputs, took) = timed(|| version.servable.run(&inputs))?;
            metrics.record_runtime(&name, method.verb(), Entrypoint::Rest, took);
            Ok((encode(&outputs, &version, method, format)?, took))
        };
        return cost.run(small, run).await;
    }
    let (inputs, format) = if small {
        decode(&body, st.max_body, &version, method)?
    } else {
        let v = version.clone();
        let max_body = st.max_body;
        blocking(move || decode(&body, max_body, &v, method)).await?
    };
    let rows = version.servable.signature().check(&inputs)?;
    let t0 = Instant::now();
    let batcher = version
        .batcher
        .as_ref()
        .ok_or_else(|| ServeError::internal("no batcher"))?;
    let outputs = batcher.run(inputs, rows).await?;
    metrics.record_runtime(&name, method.verb(), Entrypoint::Rest, t0.elapsed());
    if small {
        encode(&outputs, &version, method, format)
    } else {
        blocking(move || encode(&outputs, &version, method, format)).await
    }
}

/// Decodes a body within the memory budget that `max_body` (the body size limit) sets.
fn decode(
    body: &[u8],
    max_body: usize,
    version: &LoadedVersion,
    method: Method,
) -> ServeResult<(Vec<Tensor>, Format)> {
    let sig = version.servable.signature();
    let budget = Budget::new(max_body.saturating_mul(MEMORY_PER_BODY_BYTE));
    let json = Json::parse(body, &budget)?;
    match method {
        Method::Predict => request::predict_inputs(json, sig, &budget),
        m => Ok((request::example_inputs(json, sig, m, &budget)?, Format::Row)),
    }
}

fn encode(
    outputs: &[Tensor],
    version: &LoadedVersion,
    method: Method,
    format: Format,
) -> ServeResult<String> {
    let sig = version.servable.signature();
    match method {
        Method::Predict => request::predict_response(outputs, sig, format),
        Method::Classify => request::classify_response(outputs, sig),
        Method::Regress => request::regress_response(outputs, sig),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_paths_parse_as_tf_serving_writes_them() {
        let (n, s, m) = parse_post_path("digits:predict").unwrap();
        assert_eq!(
            (n.as_str(), s, m),
            ("digits", VersionSpec::Latest, Method::Predict)
        );
        let (_, s, m) = parse_post_path("digits/versions/3:classify").unwrap();
        assert_eq!((s, m), (VersionSpec::Number(3), Method::Classify));
        let (_, s, _) = parse_post_path("digits/labels/stable:regress").unwrap();
        assert_eq!(s, VersionSpec::Label("stable".into()));
        assert_eq!(
            parse_post_path("digits:explain").unwrap_err().code,
            Code::NotFound
        );
        assert_eq!(parse_post_path("digits").unwrap_err().code, Code::NotFound);
        assert_eq!(
            parse_post_path("digits/versions/x:predict")
                .unwrap_err()
                .code,
            Code::InvalidArgument
        );
    }
}
