//! Prometheus metrics at `/monitoring/prometheus/metrics`, under TF Serving's names:
//! request counts by model and status, request and model-run latency histograms (in
//! microseconds), and the sizes of the batches server-side batching formed.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    model_name: String,
    status: String,
}

#[allow(non_snake_case)]
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    model_name: String,
    API: String,
    entrypoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model_name: String,
}

/// Latency buckets: 10 µs to about 40 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(10.0, 1.8, 27))
}

/// Batch size buckets: 1, 2, 4 ... 4096 rows or requests.
fn size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

/// Which API a request came in by (TF Serving's `entrypoint` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entrypoint {
    /// The HTTP/REST API.
    Rest,
    /// The gRPC API.
    Grpc,
}

impl Entrypoint {
    fn label(self) -> &'static str {
        match self {
            Entrypoint::Rest => "REST",
            Entrypoint::Grpc => "GRPC",
        }
    }
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_latency: Family<LatencyLabels, Histogram>,
    runtime_latency: Family<LatencyLabels, Histogram>,
    batch_rows: Family<ModelLabels, Histogram>,
    batch_requests: Family<ModelLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_latency = Family::<LatencyLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let runtime_latency = Family::<LatencyLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let batch_rows = Family::<ModelLabels, Histogram>::new_with_constructor(
            size_histogram as fn() -> Histogram,
        );
        let batch_requests = Family::<ModelLabels, Histogram>::new_with_constructor(
            size_histogram as fn() -> Histogram,
        );
        registry.register(
            ":tensorflow:serving:request_count",
            "The number of requests, by model and status.",
            requests.clone(),
        );
        registry.register(
            ":tensorflow:serving:request_latency",
            "Request latency in microseconds, from the body received to the response written.",
            request_latency.clone(),
        );
        registry.register(
            ":tensorflow:serving:runtime_latency",
            "Model run latency in microseconds (for batched requests, the wait for the batch included).",
            runtime_latency.clone(),
        );
        registry.register(
            ":tensorflow:serving:batching_session:processed_batch_size",
            "Rows per model call formed by server-side batching.",
            batch_rows.clone(),
        );
        registry.register(
            ":tensorflow:serving:batching_session:requests_per_batch",
            "Requests merged into one model call by server-side batching.",
            batch_requests.clone(),
        );
        Metrics {
            registry,
            requests,
            request_latency,
            runtime_latency,
            batch_rows,
            batch_requests,
        }
    }

    /// Counts a finished request and its latency; `status` is `OK` or a TF code name.
    pub fn record_request(
        &self,
        model: &str,
        api: &str,
        entrypoint: Entrypoint,
        status: &str,
        latency: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                model_name: model.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.request_latency
            .get_or_create(&latency_labels(model, api, entrypoint))
            .observe(latency.as_secs_f64() * 1e6);
    }

    /// Records how long the model took for one request.
    pub fn record_runtime(
        &self,
        model: &str,
        api: &str,
        entrypoint: Entrypoint,
        latency: Duration,
    ) {
        self.runtime_latency
            .get_or_create(&latency_labels(model, api, entrypoint))
            .observe(latency.as_secs_f64() * 1e6);
    }

    /// Records one batch formed by server-side batching.
    pub fn record_batch(&self, model: &str, rows: usize, requests: usize) {
        let labels = ModelLabels {
            model_name: model.to_string(),
        };
        self.batch_rows.get_or_create(&labels).observe(rows as f64);
        self.batch_requests
            .get_or_create(&labels)
            .observe(requests as f64);
    }

    /// The metrics in Prometheus's text exposition format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            out = format!("# encoding the metrics failed: {e}\n");
        }
        out
    }
}

fn latency_labels(model: &str, api: &str, entrypoint: Entrypoint) -> LatencyLabels {
    LatencyLabels {
        model_name: model.to_string(),
        API: api.to_string(),
        entrypoint: entrypoint.label().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_tf_serving_names_and_labels() {
        let m = Metrics::new();
        m.record_request(
            "digits",
            "predict",
            Entrypoint::Rest,
            "OK",
            Duration::from_micros(250),
        );
        m.record_request(
            "digits",
            "predict",
            Entrypoint::Grpc,
            "INVALID_ARGUMENT",
            Duration::from_micros(20),
        );
        m.record_batch("digits", 8, 3);
        let text = m.encode();
        assert!(
            text.contains(
                ":tensorflow:serving:request_count_total{model_name=\"digits\",status=\"OK\"} 1"
            ),
            "{text}"
        );
        for entrypoint in ["REST", "GRPC"] {
            assert!(text.contains(&format!(
                ":tensorflow:serving:request_latency_count{{model_name=\"digits\",API=\"predict\",entrypoint=\"{entrypoint}\"}} 1"
            )), "{text}");
        }
        assert!(text.contains(":tensorflow:serving:batching_session:processed_batch_size_sum{model_name=\"digits\"} 8.0"));
    }
}
