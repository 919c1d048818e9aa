//! The served models and their versions: finding numbered version folders under each
//! base path, loading the ones the version policy asks for, swapping in new versions
//! while old ones keep answering, and looking versions up for requests.
//!
//! A new version is loaded completely before it is made available, and an old one is
//! unloaded only after its replacement is available; a request holds its version alive
//! (`Arc`) until it is answered, so a swap fails no request.

use crate::batching::Batcher;
use crate::config::{BatchingParameters, ModelConfig};
use crate::error::{ServeError, ServeResult};
use crate::metrics::Metrics;
use crate::run_cost::{timed, RunCost};
use crate::servable::{self, Servable, Signature, TensorInfo};
use ferroflow_core::Tensor;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// One loaded model version.
pub struct LoadedVersion {
    /// The version number (its folder's name).
    pub version: u64,
    /// The model.
    pub servable: Arc<dyn Servable>,
    /// Its batching queue, when `--enable_batching` is on.
    pub batcher: Option<Batcher>,
    /// How long its runs take, which decides where unbatched requests run.
    pub cost: Arc<RunCost>,
}

impl LoadedVersion {
    /// Runs inputs through this version (on either API): checked against the signature,
    /// then through its batching queue when batching is on, else where its
    /// [`RunCost`] says (here when quick, on a blocking thread when not).
    pub async fn run(self: &Arc<Self>, inputs: Vec<Tensor>) -> ServeResult<Vec<Tensor>> {
        let rows = self.servable.signature().check(&inputs)?;
        match &self.batcher {
            Some(b) => b.run(inputs, rows).await,
            None => {
                let me = self.clone();
                self.cost
                    .run(true, move || timed(|| me.servable.run(&inputs)))
                    .await
            }
        }
    }
}

/// Which version a request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionSpec {
    /// The newest available version.
    Latest,
    /// `/versions/{v}`.
    Number(u64),
    /// `/labels/{label}`.
    Label(String),
}

/// A version's lifecycle state, as TF Serving reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Being read from disk.
    Loading,
    /// Answering requests.
    Available,
    /// Unloaded, or failed to load.
    End,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Loading => "LOADING",
            State::Available => "AVAILABLE",
            State::End => "END",
        }
    }
}

struct VersionEntry {
    state: State,
    loaded: Option<Arc<LoadedVersion>>,
    /// Why loading failed, and what the folder looked like then (retried when it changes).
    error: Option<(String, Fingerprint)>,
}

/// Names, sizes and modification times of a version folder's files.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(m) = e.metadata() {
                out.push((e.path(), m.len(), m.modified().ok()));
            }
        }
    }
    out.sort();
    out
}

struct ModelState {
    config: ModelConfig,
    versions: BTreeMap<u64, VersionEntry>,
    /// The last base-path problem logged.
    last_note: Option<String>,
}

/// Every served model.
pub struct ModelManager {
    models: RwLock<BTreeMap<String, ModelState>>,
    batching: Option<BatchingParameters>,
    metrics: Arc<Metrics>,
}

/// The numbered folders (or numbered `.tflite`-holding folders) under a base path.
fn present_versions(base: &Path) -> Result<Vec<u64>, String> {
    let entries = std::fs::read_dir(base).map_err(|e| format!("{}: {e}", base.display()))?;
    let mut v: Vec<u64> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    v.sort_unstable();
    Ok(v)
}

impl ModelManager {
    /// A manager for `configs`; nothing is loaded until [`ModelManager::poll`].
    pub fn new(
        configs: Vec<ModelConfig>,
        batching: Option<BatchingParameters>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let models = configs
            .into_iter()
            .map(|c| {
                (
                    c.name.clone(),
                    ModelState {
                        config: c,
                        versions: BTreeMap::new(),
                        last_note: None,
                    },
                )
            })
            .collect();
        ModelManager {
            models: RwLock::new(models),
            batching,
            metrics,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ModelState>> {
        self.models.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, ModelState>> {
        self.models.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Scans every base path once: loads wanted versions that are not loaded yet, then
    /// unloads versions no longer wanted. Loading happens outside the lock, so requests
    /// keep being answered.
    pub fn poll(&self) {
        let configs: Vec<ModelConfig> = self.read().values().map(|m| m.config.clone()).collect();
        for config in configs {
            self.poll_model(&config);
        }
    }

    fn poll_model(&self, config: &ModelConfig) {
        let present = match present_versions(&config.base_path) {
            Ok(p) => p,
            Err(e) => {
                self.log_once(config, format!("cannot read the base path: {e}"));
                return;
            }
        };
        if present.is_empty() {
            self.log_once(
                config,
                format!(
                    "no versions of servable {} found under base path {}",
                    config.name,
                    config.base_path.display()
                ),
            );
        }
        let wanted = config.version_policy.select(&present);
        for &v in &wanted {
            let dir = config.base_path.join(v.to_string());
            let skip = self
                .read()
                .get(&config.name)
                .and_then(|m| m.versions.get(&v))
                .is_some_and(|e| {
                    e.state != State::End
                        || e.error
                            .as_ref()
                            .is_some_and(|(_, fp)| *fp == fingerprint(&dir))
                });
            if skip {
                continue;
            }
            self.set(config, v, State::Loading, None, None);
            let fp = fingerprint(&dir);
            match servable::load(&dir) {
                Ok(s) => {
                    let servable: Arc<dyn Servable> = Arc::from(s);
                    let batcher = self.batching.as_ref().map(|p| {
                        Batcher::start(servable.clone(), p, &config.name, self.metrics.clone())
                    });
                    eprintln!(
                        "ferroflow serve: Successfully loaded servable version {{name: {} version: {v}}} ({})",
                        config.name,
                        servable.kind()
                    );
                    let loaded = Arc::new(LoadedVersion {
                        version: v,
                        servable,
                        batcher,
                        cost: Arc::default(),
                    });
                    self.set(config, v, State::Available, Some(loaded), None);
                }
                Err(e) => {
                    eprintln!(
                        "ferroflow serve: Loading servable {{name: {} version: {v}}} failed: {e}",
                        config.name
                    );
                    self.set(config, v, State::End, None, Some((e, fp)));
                }
            }
        }
        let mut models = self.write();
        if let Some(m) = models.get_mut(&config.name) {
            for (&v, e) in m.versions.iter_mut() {
                if e.state == State::Available && !wanted.contains(&v) {
                    e.state = State::End;
                    e.loaded = None;
                    eprintln!(
                        "ferroflow serve: Unloaded servable version {{name: {} version: {v}}}",
                        config.name
                    );
                }
            }
        }
    }

    /// Logs a base-path problem once, not on every poll.
    fn log_once(&self, config: &ModelConfig, msg: String) {
        if let Some(m) = self.write().get_mut(&config.name) {
            if m.last_note.as_ref() != Some(&msg) {
                eprintln!("ferroflow serve: {msg}");
                m.last_note = Some(msg);
            }
        }
    }

    fn set(
        &self,
        config: &ModelConfig,
        v: u64,
        state: State,
        loaded: Option<Arc<LoadedVersion>>,
        error: Option<(String, Fingerprint)>,
    ) {
        if let Some(m) = self.write().get_mut(&config.name) {
            m.versions.insert(
                v,
                VersionEntry {
                    state,
                    loaded,
                    error,
                },
            );
        }
    }

    /// The names of the served models.
    pub fn model_names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// The version a request asks for, if it is available.
    pub fn get(&self, name: &str, spec: &VersionSpec) -> ServeResult<Arc<LoadedVersion>> {
        let models = self.read();
        let not_found = || {
            let req = match spec {
                VersionSpec::Latest => format!("Latest({name})"),
                VersionSpec::Number(v) => format!("Specific({name}, {v})"),
                VersionSpec::Label(l) => format!("Label({name}, {l})"),
            };
            ServeError::not_found(format!("Servable not found for request: {req}"))
        };
        let m = models.get(name).ok_or_else(not_found)?;
        let version = match spec {
            VersionSpec::Latest => None,
            VersionSpec::Number(v) => Some(*v),
            VersionSpec::Label(l) => Some(*m.config.version_labels.get(l).ok_or_else(|| {
                ServeError::invalid(format!("Unrecognized servable version label: {l}"))
            })?),
        };
        let found = match version {
            None => m.versions.values().rev().find_map(|e| e.loaded.clone()),
            Some(v) => m.versions.get(&v).and_then(|e| e.loaded.clone()),
        };
        found.ok_or_else(not_found)
    }

    /// The state of the model's versions (newest first), or of the one `spec` names:
    /// what `GetModelStatus` answers on either API.
    pub fn statuses(&self, name: &str, spec: &VersionSpec) -> ServeResult<Vec<VersionStatus>> {
        let models = self.read();
        let m = models.get(name).ok_or_else(|| {
            ServeError::not_found(format!("Could not find any versions of model {name}"))
        })?;
        let only = match spec {
            VersionSpec::Latest => None,
            VersionSpec::Number(v) => Some(*v),
            VersionSpec::Label(l) => Some(*m.config.version_labels.get(l).ok_or_else(|| {
                ServeError::invalid(format!("Unrecognized servable version label: {l}"))
            })?),
        };
        let statuses: Vec<VersionStatus> = m
            .versions
            .iter()
            .rev()
            .filter(|(v, _)| only.is_none_or(|o| o == **v))
            .map(|(v, e)| VersionStatus {
                version: *v,
                state: e.state,
                error: e.error.as_ref().map(|(msg, _)| msg.clone()),
            })
            .collect();
        if statuses.is_empty() {
            return Err(ServeError::not_found(match only {
                Some(v) => format!("Could not find version {v} of model {name}"),
                None => format!("Could not find any versions of model {name}"),
            }));
        }
        Ok(statuses)
    }

    /// `GET /v1/models/{name}[/versions/{v}|/labels/{l}]`: `GetModelStatusResponse`.
    pub fn status(&self, name: &str, spec: &VersionSpec) -> ServeResult<Value> {
        let statuses: Vec<Value> = self
            .statuses(name, spec)?
            .into_iter()
            .map(|s| {
                let (code, msg) = match &s.error {
                    Some(msg) => ("UNKNOWN", msg.as_str()),
                    None => ("OK", ""),
                };
                json!({
                    "version": s.version.to_string(),
                    "state": s.state.name(),
                    "status": {"error_code": code, "error_message": msg},
                })
            })
            .collect();
        Ok(json!({ "model_version_status": statuses }))
    }

    /// Replaces the served models with `configs` (`HandleReloadConfigRequest`): models
    /// not in it are unloaded, new ones start loading at the next poll, and a model whose
    /// config changed keeps its loaded versions until the poll applies the new policy.
    pub fn reconfigure(&self, configs: Vec<ModelConfig>) {
        let mut models = self.write();
        models.retain(|name, _| configs.iter().any(|c| &c.name == name));
        for c in configs {
            match models.get_mut(&c.name) {
                Some(m) => m.config = c,
                None => {
                    models.insert(
                        c.name.clone(),
                        ModelState {
                            config: c,
                            versions: BTreeMap::new(),
                            last_note: None,
                        },
                    );
                }
            }
        }
    }
}

/// One version's state, as `GetModelStatus` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionStatus {
    /// The version number.
    pub version: u64,
    /// Its lifecycle state.
    pub state: State,
    /// Why it failed to load, if it did.
    pub error: Option<String>,
}

/// TF's name of a dtype (`DT_FLOAT`), from the gRPC API's own enum.
pub fn tf_dtype(d: ferroflow_core::DType) -> &'static str {
    crate::grpc::tensor_proto::data_type(d).as_str_name()
}

fn tensor_info_json(t: &TensorInfo) -> Value {
    let dims: Vec<Value> = t
        .shape
        .iter()
        .map(|d| json!({"size": d.map_or("-1".to_string(), |d| d.to_string()), "name": ""}))
        .collect();
    json!({
        "dtype": tf_dtype(t.dtype),
        "tensor_shape": {"dim": dims, "unknown_rank": false},
        "name": t.name,
    })
}

/// `GET .../metadata`: `GetModelMetadataResponse` with the `serving_default` signature.
pub fn metadata_json(name: &str, version: u64, sig: &Signature) -> Value {
    let map = |ts: &[TensorInfo]| -> serde_json::Map<String, Value> {
        ts.iter()
            .map(|t| (t.name.clone(), tensor_info_json(t)))
            .collect()
    };
    json!({
        "model_spec": {"name": name, "signature_name": "", "version": version.to_string()},
        "metadata": {"signature_def": {"signature_def": {
            servable::DEFAULT_SIGNATURE: {
                "inputs": map(&sig.inputs),
                "outputs": map(&sig.outputs),
                "method_name": "tensorflow/serving/predict",
                "defaults": {},
            }
        }}}
    })
}
