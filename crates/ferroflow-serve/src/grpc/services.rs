//! The gRPC services: each call is checked and answered as the REST API answers the same
//! request (the same model manager, signatures, batching and metrics), with TF
//! Serving's status codes.

use super::corked;
use super::proto::tensorflow::error::Code as TfCode;
use super::proto::tensorflow::serving as pb;
use super::proto::tensorflow::{self as tf, SignatureDef};
use super::tensor_proto::{data_type, shape_proto, tensor_from_proto, tensor_to_proto};
use crate::config::{ModelConfig, VersionPolicy};
use crate::error::{Code, ServeError, ServeResult};
use crate::json::{Budget, Json, MEMORY_PER_BODY_BYTE};
use crate::manager::{LoadedVersion, ModelManager, State, VersionSpec};
use crate::metrics::{Entrypoint, Metrics};
use crate::request::{self, Method};
use crate::servable::{Signature, TensorInfo, DEFAULT_SIGNATURE};
use ferroflow_core::Tensor;
use pb::model_service_server::{ModelService, ModelServiceServer};
use pb::prediction_service_server::{PredictionService, PredictionServiceServer};
use prost::Message;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// How the gRPC server runs (`--port`, `--grpc_max_threads`, `--grpc_channel_arguments`).
#[derive(Clone, Debug)]
pub struct GrpcOptions {
    /// Largest request message accepted, in bytes (`grpc.max_receive_message_length`).
    pub max_receive_bytes: usize,
    /// Largest response message sent (`grpc.max_send_message_length`).
    pub max_send_bytes: usize,
    /// Calls answered at once (`--grpc_max_threads`); the rest wait.
    pub max_concurrent_calls: usize,
    /// Streams per HTTP/2 connection (`grpc.max_concurrent_streams`).
    pub max_concurrent_streams: Option<u32>,
    /// Keepalive pings (`grpc.keepalive_time_ms`, `grpc.keepalive_timeout_ms`).
    pub keepalive: Option<(Duration, Duration)>,
}

impl ServeError {
    fn into_status(self) -> Status {
        let code = match self.code {
            Code::InvalidArgument => tonic::Code::InvalidArgument,
            Code::NotFound => tonic::Code::NotFound,
            Code::FailedPrecondition => tonic::Code::FailedPrecondition,
            Code::Unavailable => tonic::Code::Unavailable,
            Code::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            Code::ResourceExhausted => tonic::Code::ResourceExhausted,
            Code::Unimplemented => tonic::Code::Unimplemented,
            Code::Internal => tonic::Code::Internal,
        };
        Status::new(code, self.message)
    }
}

/// Both services' shared state.
#[derive(Clone)]
struct Server {
    manager: Arc<ModelManager>,
    metrics: Arc<Metrics>,
    /// What one request may decode into (as for REST: a multiple of the message limit).
    budget: usize,
    calls: Arc<tokio::sync::Semaphore>,
}

/// The model and version a `ModelSpec` names, and its signature name.
fn model_spec(spec: Option<&pb::ModelSpec>) -> ServeResult<(String, VersionSpec, String)> {
    let spec = spec
        .filter(|s| !s.name.is_empty())
        .ok_or_else(|| ServeError::invalid("Missing ModelSpec"))?;
    let version = match &spec.version_choice {
        None => VersionSpec::Latest,
        Some(pb::model_spec::VersionChoice::Version(v)) => VersionSpec::Number(
            u64::try_from(*v)
                .map_err(|_| ServeError::invalid(format!("version {v} is not a valid version")))?,
        ),
        Some(pb::model_spec::VersionChoice::VersionLabel(l)) => VersionSpec::Label(l.clone()),
    };
    Ok((spec.name.clone(), version, spec.signature_name.clone()))
}

/// The model a `ModelSpec` names, for metrics ("" when there is none).
fn spec_name(spec: Option<&pb::ModelSpec>) -> String {
    spec.map(|s| s.name.clone()).unwrap_or_default()
}

/// The `ModelSpec` of an answer: the model, the version that answered, the signature.
fn answered_spec(name: &str, version: u64) -> pb::ModelSpec {
    pb::ModelSpec {
        name: name.to_string(),
        signature_name: DEFAULT_SIGNATURE.to_string(),
        version_choice: Some(pb::model_spec::VersionChoice::Version(version as i64)),
    }
}

/// The request's deadline (its `grpc-timeout`), a little early so that this answer
/// (DEADLINE_EXCEEDED) goes out before the transport's own timer would cancel the call.
fn deadline<T>(req: &Request<T>) -> Option<Duration> {
    let v = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (n, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    let d = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Some(d.mul_f64(0.95).saturating_sub(Duration::from_millis(1)))
}

impl Server {
    /// Runs one call: within its deadline and the concurrency limit, recorded in the
    /// metrics under the model and API it names.
    async fn call<T, F>(
        &self,
        model: &str,
        api: &str,
        limit: Option<Duration>,
        work: F,
    ) -> Result<Response<T>, Status>
    where
        F: std::future::Future<Output = ServeResult<T>>,
    {
        let start = Instant::now();
        let run = async {
            let _permit =
                self.calls.acquire().await.map_err(|_| {
                    ServeError::new(Code::Unavailable, "the server is shutting down")
                })?;
            work.await
        };
        // A deadline is honoured whether the work yields or not: one already passed runs
        // nothing, and an answer that comes after it is not sent (a quick model runs
        // without yielding, so the timer alone would never fire).
        let passed = |d: Duration| {
            ServeError::new(
                Code::DeadlineExceeded,
                format!("the call's deadline of {} ms passed", d.as_millis()),
            )
        };
        let result = match limit {
            Some(d) if d.is_zero() => Err(passed(d)),
            Some(d) => match tokio::time::timeout(d, run).await {
                Ok(r) if start.elapsed() <= d => r,
                _ => Err(passed(d)),
            },
            None => run.await,
        };
        let status = match &result {
            Ok(_) => "OK",
            Err(e) => e.code.name(),
        };
        self.metrics
            .record_request(model, api, Entrypoint::Grpc, status, start.elapsed());
        result.map(Response::new).map_err(ServeError::into_status)
    }

    /// The version a request names, checked to have the signature it asks for.
    fn version(
        &self,
        spec: Option<&pb::ModelSpec>,
        method: Method,
    ) -> ServeResult<(String, Arc<LoadedVersion>)> {
        let (name, version, signature) = model_spec(spec)?;
        let v = self.manager.get(&name, &version)?;
        request::check_signature(&signature, method)?;
        Ok((name, v))
    }

    /// Runs inputs and records the model's own time.
    async fn run(
        &self,
        name: &str,
        method: Method,
        v: &Arc<LoadedVersion>,
        inputs: Vec<Tensor>,
    ) -> ServeResult<Vec<Tensor>> {
        let t0 = Instant::now();
        let outputs = v.run(inputs).await?;
        self.metrics
            .record_runtime(name, method.verb(), Entrypoint::Grpc, t0.elapsed());
        Ok(outputs)
    }

    async fn predict(&self, req: pb::PredictRequest) -> ServeResult<pb::PredictResponse> {
        let (name, v) = self.version(req.model_spec.as_ref(), Method::Predict)?;
        let sig = v.servable.signature();
        if let Some(k) = req.inputs.keys().find(|k| sig.input_index(k).is_none()) {
            return Err(ServeError::invalid(format!(
                "input '{k}' is not an input of the model (inputs: {})",
                names(&sig.inputs)
            )));
        }
        let inputs = sig
            .inputs
            .iter()
            .map(|info| {
                let p = req.inputs.get(&info.name).ok_or_else(|| {
                    ServeError::invalid(format!(
                        "input '{}' is missing (inputs: {})",
                        info.name,
                        names(&sig.inputs)
                    ))
                })?;
                tensor_from_proto(p, info, self.budget)
            })
            .collect::<ServeResult<Vec<_>>>()?;
        let wanted: Vec<usize> = if req.output_filter.is_empty() {
            (0..sig.outputs.len()).collect()
        } else {
            req.output_filter
                .iter()
                .map(|o| {
                    sig.outputs.iter().position(|t| &t.name == o).ok_or_else(|| {
                        ServeError::invalid(format!(
                            "output_filter names '{o}', which is not an output of the model (outputs: {})",
                            names(&sig.outputs)
                        ))
                    })
                })
                .collect::<ServeResult<_>>()?
        };
        let outputs = self.run(&name, Method::Predict, &v, inputs).await?;
        Ok(pb::PredictResponse {
            model_spec: Some(answered_spec(&name, v.version)),
            outputs: wanted
                .into_iter()
                .map(|i| (sig.outputs[i].name.clone(), tensor_to_proto(&outputs[i])))
                .collect(),
        })
    }

    /// Classify/regress/multi-inference inputs: the examples become the input tensors as
    /// REST's `examples` (and `context`) do, through the same decoder.
    fn example_inputs(
        &self,
        input: Option<&pb::Input>,
        sig: &Signature,
        method: Method,
    ) -> ServeResult<Vec<Tensor>> {
        let (examples, context) = match input.and_then(|i| i.kind.as_ref()) {
            Some(pb::input::Kind::ExampleList(l)) => (&l.examples, None),
            Some(pb::input::Kind::ExampleListWithContext(l)) => (&l.examples, l.context.as_ref()),
            None => return Err(ServeError::invalid("Input is empty: give examples")),
        };
        if examples.is_empty() {
            return Err(ServeError::invalid("Input is empty: give examples"));
        }
        let mut body = vec![(
            "examples".to_string(),
            Json::List(
                examples
                    .iter()
                    .map(example_json)
                    .collect::<ServeResult<_>>()?,
            ),
        )];
        if let Some(c) = context {
            body.push(("context".to_string(), example_json(c)?));
        }
        let budget = Budget::new(self.budget);
        request::example_inputs(Json::Object(body), sig, method, &budget)
    }

    async fn classify(
        &self,
        req: pb::ClassificationRequest,
    ) -> ServeResult<pb::ClassificationResponse> {
        let (name, v) = self.version(req.model_spec.as_ref(), Method::Classify)?;
        let sig = v.servable.signature();
        let inputs = self.example_inputs(req.input.as_ref(), sig, Method::Classify)?;
        let outputs = self.run(&name, Method::Classify, &v, inputs).await?;
        Ok(pb::ClassificationResponse {
            model_spec: Some(answered_spec(&name, v.version)),
            result: Some(classification(&outputs, sig)?),
        })
    }

    async fn regress(&self, req: pb::RegressionRequest) -> ServeResult<pb::RegressionResponse> {
        let (name, v) = self.version(req.model_spec.as_ref(), Method::Regress)?;
        let sig = v.servable.signature();
        let inputs = self.example_inputs(req.input.as_ref(), sig, Method::Regress)?;
        let outputs = self.run(&name, Method::Regress, &v, inputs).await?;
        Ok(pb::RegressionResponse {
            model_spec: Some(answered_spec(&name, v.version)),
            result: Some(regression(&outputs, sig)?),
        })
    }

    /// Several classify/regress tasks on the same examples and the same model (as TF
    /// Serving requires).
    async fn multi_inference(
        &self,
        req: pb::MultiInferenceRequest,
    ) -> ServeResult<pb::MultiInferenceResponse> {
        let first = req
            .tasks
            .first()
            .ok_or_else(|| ServeError::invalid("MultiInferenceRequest has no tasks"))?;
        let mut results = Vec::new();
        for task in &req.tasks {
            let spec = task.model_spec.as_ref();
            let same = |a: Option<&pb::ModelSpec>, b: Option<&pb::ModelSpec>| match (a, b) {
                (Some(a), Some(b)) => a.name == b.name && a.version_choice == b.version_choice,
                (a, b) => a.is_none() && b.is_none(),
            };
            if !same(spec, first.model_spec.as_ref()) {
                return Err(ServeError::invalid(
                    "every task of a MultiInferenceRequest must name the same model and version",
                ));
            }
            let method = match task.method_name.as_str() {
                "tensorflow/serving/classify" => Method::Classify,
                "tensorflow/serving/regress" => Method::Regress,
                other => {
                    return Err(ServeError::new(
                        Code::Unimplemented,
                        format!(
                        "method '{other}' is not supported in MultiInference (classify, regress)"
                    ),
                    ))
                }
            };
            let (name, v) = self.version(spec, method)?;
            let sig = v.servable.signature();
            let inputs = self.example_inputs(req.input.as_ref(), sig, method)?;
            let outputs = self.run(&name, method, &v, inputs).await?;
            let result = match method {
                Method::Classify => pb::inference_result::Result::ClassificationResult(
                    classification(&outputs, sig)?,
                ),
                _ => pb::inference_result::Result::RegressionResult(regression(&outputs, sig)?),
            };
            results.push(pb::InferenceResult {
                model_spec: Some(answered_spec(&name, v.version)),
                result: Some(result),
            });
        }
        Ok(pb::MultiInferenceResponse { results })
    }

    fn metadata(
        &self,
        req: pb::GetModelMetadataRequest,
    ) -> ServeResult<pb::GetModelMetadataResponse> {
        let (name, version, _) = model_spec(req.model_spec.as_ref())?;
        if req.metadata_field.is_empty() {
            return Err(ServeError::invalid(
                "GetModelMetadataRequest must specify at least one metadata_field",
            ));
        }
        if let Some(f) = req.metadata_field.iter().find(|f| *f != "signature_def") {
            return Err(ServeError::invalid(format!(
                "Metadata field {f} is not supported (signature_def is)"
            )));
        }
        let v = self.manager.get(&name, &version)?;
        let sig = v.servable.signature();
        let map = pb::SignatureDefMap {
            signature_def: [(DEFAULT_SIGNATURE.to_string(), signature_def(sig))].into(),
        };
        let any = prost_types::Any {
            type_url: "type.googleapis.com/tensorflow.serving.SignatureDefMap".into(),
            value: map.encode_to_vec(),
        };
        Ok(pb::GetModelMetadataResponse {
            model_spec: Some(answered_spec(&name, v.version)),
            metadata: [("signature_def".to_string(), any)].into(),
        })
    }

    fn status(&self, req: pb::GetModelStatusRequest) -> ServeResult<pb::GetModelStatusResponse> {
        let (name, version, _) = model_spec(req.model_spec.as_ref())?;
        let statuses = self.manager.statuses(&name, &version)?;
        Ok(pb::GetModelStatusResponse {
            model_version_status: statuses
                .into_iter()
                .map(|s| pb::ModelVersionStatus {
                    version: s.version as i64,
                    state: match s.state {
                        State::Loading => pb::model_version_status::State::Loading,
                        State::Available => pb::model_version_status::State::Available,
                        State::End => pb::model_version_status::State::End,
                    } as i32,
                    status: Some(pb::StatusProto {
                        error_code: if s.error.is_some() {
                            TfCode::Unknown
                        } else {
                            TfCode::Ok
                        } as i32,
                        error_message: s.error.unwrap_or_default(),
                    }),
                })
                .collect(),
        })
    }

    async fn reload(&self, req: pb::ReloadConfigRequest) -> ServeResult<pb::ReloadConfigResponse> {
        let configs = model_configs(req.config)?;
        for c in &configs {
            if !c.base_path.is_dir() {
                return Err(ServeError::invalid(format!(
                    "model '{}': base path {} is not a directory",
                    c.name,
                    c.base_path.display()
                )));
            }
        }
        self.manager.reconfigure(configs);
        // Answer once the new configuration is loaded, as TF Serving does.
        let manager = self.manager.clone();
        crate::run_cost::blocking(move || {
            manager.poll();
            Ok(())
        })
        .await?;
        Ok(pb::ReloadConfigResponse {
            status: Some(pb::StatusProto {
                error_code: TfCode::Ok as i32,
                error_message: String::new(),
            }),
            metric: Vec::new(),
        })
    }
}

fn names(ts: &[TensorInfo]) -> String {
    ts.iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `tf.train.Example`'s features as the JSON object REST's `examples` hold.
fn example_json(e: &tf::Example) -> ServeResult<Json> {
    let features = e.features.as_ref().map(|f| &f.feature);
    let mut out = Vec::new();
    for (name, f) in features.into_iter().flatten() {
        let v = match &f.kind {
            Some(tf::feature::Kind::FloatList(l)) => {
                Json::Floats(l.value.iter().map(|&x| x as f64).collect())
            }
            Some(tf::feature::Kind::Int64List(l)) => Json::Ints(l.value.clone()),
            Some(tf::feature::Kind::BytesList(_)) => {
                return Err(ServeError::invalid(format!(
                    "feature '{name}' holds bytes; this model's inputs are numeric"
                )))
            }
            None => Json::List(Vec::new()),
        };
        out.push((name.clone(), v));
    }
    // The map's order is arbitrary: sort, so errors name features the same way each time.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Json::Object(out))
}

fn classification(outputs: &[Tensor], sig: &Signature) -> ServeResult<pb::ClassificationResult> {
    Ok(pb::ClassificationResult {
        classifications: request::class_scores(outputs, sig)?
            .into_iter()
            .map(|row| pb::Classifications {
                classes: row
                    .into_iter()
                    .map(|(label, score)| pb::Class { label, score })
                    .collect(),
            })
            .collect(),
    })
}

fn regression(outputs: &[Tensor], sig: &Signature) -> ServeResult<pb::RegressionResult> {
    let values = request::regression_values(outputs, sig)?.cast(ferroflow_core::DType::F32)?;
    Ok(pb::RegressionResult {
        regressions: values
            .to_vec::<f32>()?
            .into_iter()
            .map(|value| pb::Regression { value })
            .collect(),
    })
}

fn signature_def(sig: &Signature) -> SignatureDef {
    let infos = |ts: &[TensorInfo]| {
        ts.iter()
            .map(|t| {
                (
                    t.name.clone(),
                    tf::TensorInfo {
                        encoding: Some(tf::tensor_info::Encoding::Name(t.name.clone())),
                        dtype: data_type(t.dtype) as i32,
                        tensor_shape: Some(shape_proto(t.shape.iter().copied())),
                    },
                )
            })
            .collect()
    };
    SignatureDef {
        inputs: infos(&sig.inputs),
        outputs: infos(&sig.outputs),
        method_name: Method::Predict.method_name().to_string(),
    }
}

/// A `ModelServerConfig` as the models to serve.
fn model_configs(config: Option<pb::ModelServerConfig>) -> ServeResult<Vec<ModelConfig>> {
    let Some(pb::model_server_config::Config::ModelConfigList(list)) =
        config.and_then(|c| c.config)
    else {
        return Err(ServeError::invalid(
            "the ReloadConfigRequest needs a model_config_list",
        ));
    };
    use pb::file_system_storage_path_source_config::servable_version_policy::PolicyChoice;
    let mut out: Vec<ModelConfig> = Vec::new();
    for c in list.config {
        if c.name.is_empty() || c.base_path.is_empty() {
            return Err(ServeError::invalid(
                "every model config needs a name and a base_path",
            ));
        }
        if out.iter().any(|o| o.name == c.name) {
            return Err(ServeError::invalid(format!(
                "model name '{}' appears twice",
                c.name
            )));
        }
        let mut m = ModelConfig::new(&c.name, &c.base_path);
        match c.model_version_policy.and_then(|p| p.policy_choice) {
            None => {}
            Some(PolicyChoice::Latest(l)) => {
                m.version_policy = VersionPolicy::Latest(l.num_versions.max(1) as usize)
            }
            Some(PolicyChoice::All(_)) => m.version_policy = VersionPolicy::All,
            Some(PolicyChoice::Specific(s)) => {
                let versions = s
                    .versions
                    .iter()
                    .map(|&v| {
                        u64::try_from(v).map_err(|_| ServeError::invalid(format!("version {v}")))
                    })
                    .collect::<ServeResult<Vec<_>>>()?;
                m.version_policy = VersionPolicy::Specific(versions);
            }
        }
        for (label, v) in c.version_labels {
            let v = u64::try_from(v)
                .map_err(|_| ServeError::invalid(format!("label '{label}': version {v}")))?;
            m.version_labels.insert(label, v);
        }
        out.push(m);
    }
    Ok(out)
}

#[tonic::async_trait]
impl PredictionService for Server {
    async fn classify(
        &self,
        request: Request<pb::ClassificationRequest>,
    ) -> Result<Response<pb::ClassificationResponse>, Status> {
        let limit = deadline(&request);
        let req = request.into_inner();
        let name = spec_name(req.model_spec.as_ref());
        self.call(&name, "classify", limit, Server::classify(self, req))
            .await
    }

    async fn regress(
        &self,
        request: Request<pb::RegressionRequest>,
    ) -> Result<Response<pb::RegressionResponse>, Status> {
        let limit = deadline(&request);
        let req = request.into_inner();
        let name = spec_name(req.model_spec.as_ref());
        self.call(&name, "regress", limit, Server::regress(self, req))
            .await
    }

    async fn predict(
        &self,
        request: Request<pb::PredictRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        let limit = deadline(&request);
        let req = request.into_inner();
        let name = spec_name(req.model_spec.as_ref());
        self.call(&name, "predict", limit, Server::predict(self, req))
            .await
    }

    async fn multi_inference(
        &self,
        request: Request<pb::MultiInferenceRequest>,
    ) -> Result<Response<pb::MultiInferenceResponse>, Status> {
        let limit = deadline(&request);
        let req = request.into_inner();
        let name = spec_name(req.tasks.first().and_then(|t| t.model_spec.as_ref()));
        self.call(
            &name,
            "multi_inference",
            limit,
            Server::multi_inference(self, req),
        )
        .await
    }

    async fn get_model_metadata(
        &self,
        request: Request<pb::GetModelMetadataRequest>,
    ) -> Result<Response<pb::GetModelMetadataResponse>, Status> {
        let req = request.into_inner();
        let name = spec_name(req.model_spec.as_ref());
        self.call(&name, "metadata", None, async { self.metadata(req) })
            .await
    }
}

#[tonic::async_trait]
impl ModelService for Server {
    async fn get_model_status(
        &self,
        request: Request<pb::GetModelStatusRequest>,
    ) -> Result<Response<pb::GetModelStatusResponse>, Status> {
        let req = request.into_inner();
        let name = spec_name(req.model_spec.as_ref());
        self.call(&name, "status", None, async { self.status(req) })
            .await
    }

    async fn handle_reload_config_request(
        &self,
        request: Request<pb::ReloadConfigRequest>,
    ) -> Result<Response<pb::ReloadConfigResponse>, Status> {
        let limit = deadline(&request);
        self.call(
            "",
            "reload_config",
            limit,
            self.reload(request.into_inner()),
        )
        .await
    }
}

/// gRPC answers a message over the size limit with OUT_OF_RANGE; TF Serving (gRPC's C++
/// core) says RESOURCE_EXHAUSTED. Rewrites that status on the way out.
#[derive(Clone)]
struct OversizeAsExhausted<S>(S);

impl<S, B> tower::Service<http::Request<B>> for OversizeAsExhausted<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut r = fut.await?;
            let h = r.headers_mut();
            let oversized = h.get("grpc-status").is_some_and(|s| s == "11")
                && h.get("grpc-message")
                    .and_then(|m| m.to_str().ok())
                    .is_some_and(|m| {
                        m.contains("message%20length%20too%20large")
                            || m.contains("message length too large")
                    });
            if oversized {
                h.insert("grpc-status", http::HeaderValue::from_static("8"));
            }
            Ok(r)
        })
    }
}

/// Serves both services on `listener` until `shutdown` resolves, then lets calls in
/// flight finish. (HTTP/2 is served here rather than by tonic's transport, whose own
/// timer would answer a passed deadline with CANCELLED before the handler's
/// DEADLINE_EXCEEDED.)
pub async fn serve(
    listener: tokio::net::TcpListener,
    manager: Arc<ModelManager>,
    metrics: Arc<Metrics>,
    options: GrpcOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), String> {
    let server = Server {
        manager,
        metrics,
        budget: options
            .max_receive_bytes
            .saturating_mul(MEMORY_PER_BODY_BYTE),
        calls: Arc::new(tokio::sync::Semaphore::new(
            options.max_concurrent_calls.max(1),
        )),
    };
    let predict = PredictionServiceServer::new(server.clone())
        .max_decoding_message_size(options.max_receive_bytes)
        .max_encoding_message_size(options.max_send_bytes);
    let models = ModelServiceServer::new(server)
        .max_decoding_message_size(options.max_receive_bytes)
        .max_encoding_message_size(options.max_send_bytes);
    let routes = OversizeAsExhausted(
        tonic::service::Routes::new(predict)
            .add_service(models)
            .prepare(),
    );
    let mut http2 = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    http2.max_concurrent_streams(options.max_concurrent_streams);
    if let Some((interval, timeout)) = options.keepalive {
        http2
            .keep_alive_interval(Some(interval))
            .keep_alive_timeout(timeout)
            .timer(hyper_util::rt::TokioTimer::new());
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            conn = listener.accept() => match conn {
                Ok(c) => c,
                // A connection that failed as it arrived (out of file descriptors, a reset)
                // costs only itself.
                Err(_) => continue,
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (io, drain) = corked::cork(stream);
        let service = hyper_util::service::TowerToHyperService::new(routes.clone());
        let conn = http2.serve_connection(hyper_util::rt::TokioIo::new(io), service);
        tokio::spawn(corked::FlushEachTurn::new(graceful.watch(conn), drain));
    }
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        let metrics = Arc::new(Metrics::new());
        Server {
            manager: Arc::new(ModelManager::new(Vec::new(), None, metrics.clone())),
            metrics,
            budget: 1 << 20,
            calls: Arc::new(tokio::sync::Semaphore::new(2)),
        }
    }

    #[test]
    fn a_passed_deadline_is_deadline_exceeded() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("grpc-timeout", "50m".parse().unwrap());
        let limit = deadline(&req).unwrap();
        assert!(limit < Duration::from_millis(50) && limit > Duration::from_millis(40));
        let s = server();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        };
        let e = rt
            .block_on(s.call("m", "predict", Some(limit), slow))
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e}");
        let fast = async { Ok(7) };
        let r = rt
            .block_on(s.call("m", "predict", Some(limit), fast))
            .unwrap();
        assert_eq!(r.into_inner(), 7);
        // Work that never yields (a quick model run inline) but ends after the deadline.
        let blocking = async {
            std::thread::sleep(limit + Duration::from_millis(5));
            Ok(())
        };
        let e = rt
            .block_on(s.call("m", "predict", Some(limit), blocking))
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e}");
        // A deadline shorter than the margin (the client's 0.5 ms) runs nothing.
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("grpc-timeout", "500u".parse().unwrap());
        let ran = std::cell::Cell::new(false);
        let work = async {
            ran.set(true);
            Ok(())
        };
        let e = rt
            .block_on(s.call("m", "predict", deadline(&req), work))
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e}");
        assert!(!ran.get());
    }

    #[test]
    fn model_specs_and_reload_configs_are_checked() {
        assert!(model_spec(None)
            .unwrap_err()
            .message
            .contains("Missing ModelSpec"));
        let spec = pb::ModelSpec {
            name: "m".into(),
            signature_name: String::new(),
            version_choice: Some(pb::model_spec::VersionChoice::Version(-2)),
        };
        assert!(model_spec(Some(&spec)).is_err());
        let e = model_configs(None).unwrap_err();
        assert!(e.message.contains("model_config_list"), "{}", e.message);
    }
}
