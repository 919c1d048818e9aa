//! What the server serves and how: TF Serving's `ModelServerConfig` and
//! `BatchingParameters`, read from its text-format files or built from flags.

use crate::textproto::{self, as_uint, Message, TextError, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which versions under a model's base path are served (`model_version_policy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionPolicy {
    /// The newest `n` versions (TF Serving's default: `latest { num_versions: 1 }`).
    Latest(usize),
    /// Every version found.
    All,
    /// Exactly these versions.
    Specific(Vec<u64>),
}

impl VersionPolicy {
    /// The versions to serve out of those present (sorted ascending).
    pub fn select(&self, present: &[u64]) -> Vec<u64> {
        match self {
            VersionPolicy::Latest(n) => present[present.len().saturating_sub(*n)..].to_vec(),
            VersionPolicy::All => present.to_vec(),
            VersionPolicy::Specific(v) => {
                present.iter().filter(|p| v.contains(p)).copied().collect()
            }
        }
    }
}

/// One served model (`ModelConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// The name in request URLs.
    pub name: String,
    /// The directory holding numbered version folders.
    pub base_path: PathBuf,
    /// Which versions to serve.
    pub version_policy: VersionPolicy,
    /// Version labels (`/labels/{label}` in URLs) and the versions they point at.
    pub version_labels: BTreeMap<String, u64>,
}

impl ModelConfig {
    /// A model served with the default policy (the newest version) and no labels.
    pub fn new(name: &str, base_path: impl Into<PathBuf>) -> Self {
        ModelConfig {
            name: name.to_string(),
            base_path: base_path.into(),
            version_policy: VersionPolicy::Latest(1),
            version_labels: BTreeMap::new(),
        }
    }
}

/// Server-side batching (`BatchingParameters`; TF Serving's defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchingParameters {
    /// The most rows merged into one model call.
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for more; zero batches only what is
    /// already queued.
    pub batch_timeout: Duration,
    /// Batches that may wait in the queue before requests are refused.
    pub max_enqueued_batches: usize,
    /// Threads running batches.
    pub num_batch_threads: usize,
    /// When set, batches are padded up to the next of these sizes.
    pub allowed_batch_sizes: Vec<usize>,
}

impl Default for BatchingParameters {
    fn default() -> Self {
        BatchingParameters {
            max_batch_size: 1000,
            batch_timeout: Duration::ZERO,
            max_enqueued_batches: 10,
            num_batch_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            allowed_batch_sizes: Vec::new(),
        }
    }
}

/// A config-file error naming the file.
fn file_err(path: &Path, e: TextError) -> String {
    format!("{}: {e}", path.display())
}

fn read(path: &Path) -> Result<Message, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    textproto::parse(&text).map_err(|e| file_err(path, e))
}

/// Reads a `--model_config_file` (`model_config_list { config { ... } ... }`).
pub fn read_model_config_file(path: &Path) -> Result<Vec<ModelConfig>, String> {
    let root = read(path)?;
    parse_model_configs(&root).map_err(|e| file_err(path, e))
}

/// Parses the text of a `--model_config_file`.
pub fn parse_model_config_text(text: &str) -> Result<Vec<ModelConfig>, TextError> {
    parse_model_configs(&textproto::parse(text)?)
}

fn parse_model_configs(root: &Message) -> Result<Vec<ModelConfig>, TextError> {
    root.check_fields("ModelServerConfig", &["model_config_list"])?;
    let list = root.message("model_config_list")?.ok_or(TextError {
        line: 1,
        msg: "expected model_config_list { config { ... } }".into(),
    })?;
    list.check_fields("model_config_list", &["config"])?;
    let mut out: Vec<ModelConfig> = Vec::new();
    for (v, line) in list.all("config") {
        let Value::Message(m) = v else {
            return Err(TextError {
                line,
                msg: "'config' must be a message".into(),
            });
        };
        let c = parse_model_config(m, line)?;
        if out.iter().any(|o| o.name == c.name) {
            return Err(TextError {
                line,
                msg: format!("model name '{}' appears twice", c.name),
            });
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err(TextError {
            line: 1,
            msg: "model_config_list has no config".into(),
        });
    }
    Ok(out)
}

fn parse_model_config(m: &Message, line: usize) -> Result<ModelConfig, TextError> {
    m.check_fields(
        "config",
        &[
            "name",
            "base_path",
            "model_platform",
            "model_version_policy",
            "version_labels",
        ],
    )?;
    let missing = |f: &str| TextError {
        line,
        msg: format!("config is missing '{f}'"),
    };
    let name = m.string("name")?.ok_or_else(|| missing("name"))?;
    let base_path = m.string("base_path")?.ok_or_else(|| missing("base_path"))?;
    if let Some(p) = m.string("model_platform")? {
        if p != "tensorflow" && p != "ferroflow" && p != "tflite" {
            return Err(TextError {
                line,
                msg: format!(
                    "model_platform '{p}' is not supported (tensorflow, ferroflow, tflite)"
                ),
            });
        }
    }
    let mut c = ModelConfig::new(&name, base_path);
    if let Some(p) = m.message("model_version_policy")? {
        c.version_policy = parse_policy(p, line)?;
    }
    for (v, l) in m.all("version_labels") {
        let Value::Message(kv) = v else {
            return Err(TextError {
                line: l,
                msg: "'version_labels' must be { key: '...' value: N }".into(),
            });
        };
        kv.check_fields("version_labels", &["key", "value"])?;
        let key = kv.string("key")?.ok_or(TextError {
            line: l,
            msg: "version_labels is missing 'key'".into(),
        })?;
        let value = kv.uint("value")?.ok_or(TextError {
            line: l,
            msg: "version_labels is missing 'value'".into(),
        })?;
        c.version_labels.insert(key, value);
    }
    Ok(c)
}

fn parse_policy(p: &Message, line: usize) -> Result<VersionPolicy, TextError> {
    p.check_fields("model_version_policy", &["latest", "all", "specific"])?;
    if p.fields.len() != 1 {
        return Err(TextError {
            line,
            msg: "model_version_policy takes exactly one of latest, all, specific".into(),
        });
    }
    if let Some(l) = p.message("latest")? {
        l.check_fields("latest", &["num_versions"])?;
        let n = l.uint("num_versions")?.unwrap_or(1).max(1);
        return Ok(VersionPolicy::Latest(n as usize));
    }
    if let Some(a) = p.message("all")? {
        a.check_fields("all", &[])?;
        return Ok(VersionPolicy::All);
    }
    let s = p.message("specific")?.ok_or(TextError {
        line,
        msg: "model_version_policy is empty".into(),
    })?;
    s.check_fields("specific", &["versions"])?;
    let versions = s
        .all("versions")
        .map(|(v, l)| as_uint(v, "versions", l))
        .collect::<Result<Vec<_>, _>>()?;
    if versions.is_empty() {
        return Err(TextError {
            line,
            msg: "specific { } lists no versions".into(),
        });
    }
    Ok(VersionPolicy::Specific(versions))
}

/// Reads a `--batching_parameters_file`.
pub fn read_batching_parameters(path: &Path) -> Result<BatchingParameters, String> {
    let root = read(path)?;
    parse_batching(&root).map_err(|e| file_err(path, e))
}

/// Parses the text of a `--batching_parameters_file`.
pub fn parse_batching_text(text: &str) -> Result<BatchingParameters, TextError> {
    parse_batching(&textproto::parse(text)?)
}

fn parse_batching(m: &Message) -> Result<BatchingParameters, TextError> {
    m.check_fields(
        "BatchingParameters",
        &[
            "max_batch_size",
            "batch_timeout_micros",
            "max_enqueued_batches",
            "num_batch_threads",
            "thread_pool_name",
            "allowed_batch_sizes",
            "pad_variable_length_inputs",
            "enable_large_batch_splitting",
            "max_execution_batch_size",
        ],
    )?;
    let mut p = BatchingParameters::default();
    let positive = |name: &str, v: u64| -> Result<usize, TextError> {
        if v == 0 {
            return Err(TextError {
                line: m.last(name).map_or(1, |(_, l)| l),
                msg: format!("{name} must be at least 1"),
            });
        }
        Ok(v as usize)
    };
    if let Some(v) = m.wrapped_uint("max_batch_size")? {
        p.max_batch_size = positive("max_batch_size", v)?;
    }
    if let Some(v) = m.wrapped_uint("batch_timeout_micros")? {
        p.batch_timeout = Duration::from_micros(v);
    }
    if let Some(v) = m.wrapped_uint("max_enqueued_batches")? {
        p.max_enqueued_batches = positive("max_enqueued_batches", v)?;
    }
    if let Some(v) = m.wrapped_uint("num_batch_threads")? {
        p.num_batch_threads = positive("num_batch_threads", v)?;
    }
    for (v, l) in m.all("allowed_batch_sizes") {
        p.allowed_batch_sizes
            .push(as_uint(v, "allowed_batch_sizes", l)? as usize);
    }
    if !p.allowed_batch_sizes.is_empty() {
        let sizes = &p.allowed_batch_sizes;
        if sizes.windows(2).any(|w| w[0] >= w[1]) || sizes[0] == 0 {
            return Err(TextError {
                line: 1,
                msg: "allowed_batch_sizes must be positive and increasing".into(),
            });
        }
        if *sizes.last().unwrap_or(&0) != p.max_batch_size {
            return Err(TextError {
                line: 1,
                msg: format!(
                    "the last allowed_batch_sizes entry ({}) must equal max_batch_size ({})",
                    sizes.last().unwrap_or(&0),
                    p.max_batch_size
                ),
            });
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_config_file_with_policies_and_labels() {
        let root = textproto::parse(
            r#"model_config_list {
                 config { name: "a" base_path: "/m/a" model_platform: "tensorflow"
                          model_version_policy { specific { versions: 1 versions: 3 } }
                          version_labels { key: "stable" value: 1 }
                          version_labels { key: "canary" value: 3 } }
                 config { name: "b" base_path: "/m/b" model_version_policy { all {} } }
                 config { name: "c" base_path: "/m/c" model_version_policy { latest { num_versions: 2 } } }
               }"#,
        )
        .unwrap();
        let c = parse_model_configs(&root).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].version_policy, VersionPolicy::Specific(vec![1, 3]));
        assert_eq!(c[0].version_labels["canary"], 3);
        assert_eq!(c[1].version_policy.select(&[1, 2, 5]), [1, 2, 5]);
        assert_eq!(c[2].version_policy.select(&[1, 2, 5]), [2, 5]);
        assert_eq!(c[0].version_policy.select(&[1, 2]), [1]);
    }

    #[test]
    fn model_config_errors_name_the_field() {
        let bad = |s: &str| parse_model_configs(&textproto::parse(s).unwrap()).unwrap_err();
        assert!(bad("model_config_list { config { name: 'a' } }")
            .msg
            .contains("base_path"));
        assert!(
            bad("model_config_list { config { name: 'a' base_path: 'x' colour: 1 } }")
                .msg
                .contains("unknown field 'colour'")
        );
        assert!(bad("model_config_list { config { name: 'a' base_path: 'x' } config { name: 'a' base_path: 'y' } }")
            .msg
            .contains("twice"));
        assert!(bad(
            "model_config_list { config { name: 'a' base_path: 'x' model_platform: 'onnx' } }"
        )
        .msg
        .contains("onnx"));
    }

    #[test]
    fn batching_parameters_file() {
        let root = textproto::parse(
            "max_batch_size { value: 8 } batch_timeout_micros { value: 500 }\nnum_batch_threads { value: 2 } allowed_batch_sizes: 4 allowed_batch_sizes: 8",
        )
        .unwrap();
        let p = parse_batching(&root).unwrap();
        assert_eq!(p.max_batch_size, 8);
        assert_eq!(p.batch_timeout, Duration::from_micros(500));
        assert_eq!(p.num_batch_threads, 2);
        assert_eq!(p.allowed_batch_sizes, [4, 8]);
        let bad = textproto::parse("max_batch_size { value: 8 } allowed_batch_sizes: 4").unwrap();
        assert!(parse_batching(&bad).unwrap_err().msg.contains("must equal"));
        let zero = textproto::parse("max_batch_size { value: 0 }").unwrap();
        assert!(parse_batching(&zero).is_err());
    }
}
