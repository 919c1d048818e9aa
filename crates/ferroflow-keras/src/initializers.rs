//! Weight initializers with Keras 3 names, defaults and configs.

use crate::config::{obj, serialized, Map};
use ferroflow_core::{random, DType, Error, Result, Tensor};
use serde_json::Value;

/// How variance scaling counts fans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// Number of inputs.
    FanIn,
    /// Number of outputs.
    FanOut,
    /// Their average.
    FanAvg,
}

/// The distribution variance scaling draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Normal truncated at two standard deviations (stddev corrected for the truncation).
    TruncatedNormal,
    /// Plain normal.
    UntruncatedNormal,
    /// Uniform on `[-limit, limit]`.
    Uniform,
}

/// A Keras initializer.
#[derive(Clone, Debug, PartialEq)]
pub enum Initializer {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// One value everywhere.
    Constant(f64),
    /// Normal with mean and stddev.
    RandomNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        stddev: f64,
        /// Op seed (random when `None`, deterministic under a global seed).
        seed: Option<u64>,
    },
    /// Uniform on `[minval, maxval)`.
    RandomUniform {
        /// Lower bound.
        minval: f64,
        /// Upper bound.
        maxval: f64,
        /// Op seed (random when `None`, deterministic under a global seed).
        seed: Option<u64>,
    },
    /// Normal truncated at two standard deviations.
    TruncatedNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation before truncation.
        stddev: f64,
        /// Op seed (random when `None`, deterministic under a global seed).
        seed: Option<u64>,
    },
    /// Variance scaling; `class` keeps the Keras alias (`GlorotUniform`, `HeNormal`...).
    VarianceScaling {
        /// Keras class name used in configs.
        class: &'static str,
        /// Variance scale.
        scale: f64,
        /// Fan mode.
        mode: FanMode,
        /// Distribution.
        distribution: Distribution,
        /// Op seed.
        seed: Option<u64>,
    },
    /// A (semi-)orthogonal matrix times `gain`.
    Orthogonal {
        /// Multiplier of the orthogonal matrix.
        gain: f64,
        /// Op seed (random when `None`, deterministic under a global seed).
        seed: Option<u64>,
    },
    /// The identity matrix (2-D only).
    Identity,
}

/// Keras's aliases of variance scaling: (class, scale, mode, distribution).
const ALIASES: [(&str, f64, FanMode, Distribution); 6] = [
    ("GlorotUniform", 1.0, FanMode::FanAvg, Distribution::Uniform),
    (
        "GlorotNormal",
        1.0,
        FanMode::FanAvg,
        Distribution::TruncatedNormal,
    ),
    (
        "HeNormal",
        2.0,
        FanMode::FanIn,
        Distribution::TruncatedNormal,
    ),
    ("HeUniform", 2.0, FanMode::FanIn, Distribution::Uniform),
    (
        "LecunNormal",
        1.0,
        FanMode::FanIn,
        Distribution::TruncatedNormal,
    ),
    ("LecunUniform", 1.0, FanMode::FanIn, Distribution::Uniform),
];

/// `(fan_in, fan_out)` of a weight shape, as Keras computes them.
pub fn compute_fans(shape: &[usize]) -> (f64, f64) {
    match shape.len() {
        0 => (1.0, 1.0),
        1 => (shape[0] as f64, shape[0] as f64),
        2 => (shape[0] as f64, shape[1] as f64),
        n => {
            let receptive: usize = shape[..n - 2].iter().product();
            (
                (shape[n - 2] * receptive) as f64,
                (shape[n - 1] * receptive) as f64,
            )
        }
    }
}

impl Initializer {
    /// `glorot_uniform`, Keras's default kernel initializer.
    pub fn glorot_uniform() -> Self {
        Self::alias("GlorotUniform", None).expect("known alias")
    }

    fn alias(class: &str, seed: Option<u64>) -> Option<Self> {
        ALIASES
            .iter()
            .find(|a| a.0 == class)
            .map(
                |&(class, scale, mode, distribution)| Initializer::VarianceScaling {
                    class,
                    scale,
                    mode,
                    distribution,
                    seed,
                },
            )
    }

    /// An initializer from a Keras string name (`"he_normal"`, `"zeros"`...) or class name.
    pub fn from_name(name: &str) -> Result<Self> {
        let class: String = match name {
            "zeros" | "zero" => "Zeros".into(),
            "ones" | "one" => "Ones".into(),
            "glorot_uniform" => "GlorotUniform".into(),
            "glorot_normal" => "GlorotNormal".into(),
            "he_normal" => "HeNormal".into(),
            "he_uniform" => "HeUniform".into(),
            "lecun_normal" => "LecunNormal".into(),
            "lecun_uniform" => "LecunUniform".into(),
            "random_normal" => "RandomNormal".into(),
            "random_uniform" => "RandomUniform".into(),
            "truncated_normal" => "TruncatedNormal".into(),
            "orthogonal" => "Orthogonal".into(),
            "identity" => "Identity".into(),
            "variance_scaling" => "VarianceScaling".into(),
            "constant" => "Constant".into(),
            other => other.to_string(),
        };
        Self::from_config(&class, &Map::new())
    }

    /// Reads a serialised initializer: a string name or `{"class_name", "config"}`.
    pub fn from_json(v: &Value) -> Result<Self> {
        match v {
            Value::String(s) => Self::from_name(s),
            Value::Object(m) => {
                let class = m.get("class_name").and_then(Value::as_str).ok_or_else(|| {
                    Error::invalid("initializers", format!("no class_name in {v}"))
                })?;
                let empty = Map::new();
                let cfg = m.get("config").and_then(Value::as_object).unwrap_or(&empty);
                Self::from_config(class, cfg)
            }
            other => Err(Error::invalid(
                "initializers",
                format!("cannot read an initializer from {other}"),
            )),
        }
    }

    fn from_config(class: &str, cfg: &Map) -> Result<Self> {
        let f = |k: &str, d: f64| cfg.get(k).and_then(Value::as_f64).unwrap_or(d);
        let seed = cfg.get("seed").and_then(Value::as_u64);
        for axes in ["input_axes", "output_axes"] {
            if cfg.get(axes).is_some_and(|v| !v.is_null()) {
                return Err(Error::invalid(
                    "initializers",
                    format!("{class}: option '{axes}' is not supported"),
                ));
            }
        }
        Ok(match class {
            "Zeros" => Initializer::Zeros,
            "Ones" => Initializer::Ones,
            "Constant" => Initializer::Constant(f("value", 0.0)),
            "RandomNormal" => Initializer::RandomNormal {
                mean: f("mean", 0.0),
                stddev: f("stddev", 0.05),
                seed,
            },
            "RandomUniform" => Initializer::RandomUniform {
                minval: f("minval", -0.05),
                maxval: f("maxval", 0.05),
                seed,
            },
            "TruncatedNormal" => Initializer::TruncatedNormal {
                mean: f("mean", 0.0),
                stddev: f("stddev", 0.05),
                seed,
            },
            "Orthogonal" => Initializer::Orthogonal {
                gain: f("gain", 1.0),
                seed,
            },
            "Identity" => Initializer::Identity,
            "VarianceScaling" => {
                let mode = match cfg.get("mode").and_then(Value::as_str).unwrap_or("fan_in") {
                    "fan_in" => FanMode::FanIn,
                    "fan_out" => FanMode::FanOut,
                    "fan_avg" => FanMode::FanAvg,
                    m => {
                        return Err(Error::invalid(
                            "initializers",
                            format!("VarianceScaling: unknown mode '{m}'"),
                        ))
                    }
                };
                let distribution = match cfg
                    .get("distribution")
                    .and_then(Value::as_str)
                    .unwrap_or("truncated_normal")
                {
                    "truncated_normal" => Distribution::TruncatedNormal,
                    "untruncated_normal" | "normal" => Distribution::UntruncatedNormal,
                    "uniform" => Distribution::Uniform,
                    d => {
                        return Err(Error::invalid(
                            "initializers",
                            format!("VarianceScaling: unknown distribution '{d}'"),
                        ))
                    }
                };
                Initializer::VarianceScaling {
                    class: "VarianceScaling",
                    scale: f("scale", 1.0),
                    mode,
                    distribution,
                    seed,
                }
            }
            other => Self::alias(other, seed).ok_or_else(|| {
                Error::invalid("initializers", format!("unknown initializer '{other}'"))
            })?,
        })
    }

    /// Draws a tensor of `shape`.
    pub fn init(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        match *self {
            Initializer::Zeros => Tensor::zeros(shape, dtype),
            Initializer::Ones => Tensor::ones(shape, dtype),
            Initializer::Constant(v) => Tensor::full(shape, v, dtype),
            Initializer::RandomNormal { mean, stddev, seed } => {
                random::normal(shape, mean, stddev, dtype, seed)
            }
            Initializer::RandomUniform {
                minval,
                maxval,
                seed,
            } => random::uniform(shape, minval, maxval, dtype, seed),
            Initializer::TruncatedNormal { mean, stddev, seed } => {
                random::truncated_normal(shape, mean, stddev, dtype, seed)
            }
            Initializer::VarianceScaling {
                scale,
                mode,
                distribution,
                seed,
                ..
            } => {
                let (fan_in, fan_out) = compute_fans(shape);
                let n = match mode {
                    FanMode::FanIn => fan_in,
                    FanMode::FanOut => fan_out,
                    FanMode::FanAvg => (fan_in + fan_out) / 2.0,
                };
                let scale = scale / n.max(1.0);
                match distribution {
                    Distribution::TruncatedNormal => {
                        // Keras: stddev of the truncated normal corrected for truncation.
                        let stddev = scale.sqrt() / 0.879_625_661_034_239_8;
                        random::truncated_normal(shape, 0.0, stddev, dtype, seed)
                    }
                    Distribution::UntruncatedNormal => {
                        random::normal(shape, 0.0, scale.sqrt(), dtype, seed)
                    }
                    Distribution::Uniform => {
                        let limit = (3.0 * scale).sqrt();
                        random::uniform(shape, -limit, limit, dtype, seed)
                    }
                }
            }
            Initializer::Orthogonal { gain, seed } => orthogonal(shape, gain, dtype, seed),
            Initializer::Identity => {
                if shape.len() != 2 {
                    return Err(Error::invalid(
                        "Identity",
                        format!("needs a 2-D shape, got {shape:?}"),
                    ));
                }
                Tensor::eye(shape[0], shape[1], dtype)
            }
        }
    }

    /// Keras's serialised form (`serialize_keras_object`).
    pub fn to_json(&self) -> Value {
        let seed = |s: Option<u64>| s.map_or(Value::Null, Value::from);
        let (class, cfg): (&str, Map) = match *self {
            Initializer::Zeros => ("Zeros", Map::new()),
            Initializer::Ones => ("Ones", Map::new()),
            Initializer::Constant(v) => ("Constant", obj([("value", Value::from(v))])),
            Initializer::RandomNormal {
                mean,
                stddev,
                seed: s,
            } => (
                "RandomNormal",
                obj([
                    ("seed", seed(s)),
                    ("mean", Value::from(mean)),
                    ("stddev", Value::from(stddev)),
                ]),
            ),
            Initializer::RandomUniform {
                minval,
                maxval,
                seed: s,
            } => (
                "RandomUniform",
                obj([
                    ("seed", seed(s)),
                    ("minval", Value::from(minval)),
                    ("maxval", Value::from(maxval)),
                ]),
            ),
            Initializer::TruncatedNormal {
                mean,
                stddev,
                seed: s,
            } => (
                "TruncatedNormal",
                obj([
                    ("seed", seed(s)),
                    ("mean", Value::from(mean)),
                    ("stddev", Value::from(stddev)),
                ]),
            ),
            Initializer::VarianceScaling {
                class,
                scale,
                mode,
                distribution,
                seed: s,
            } => {
                let mut m = obj([("seed", seed(s))]);
                if class == "VarianceScaling" {
                    m.insert("scale".into(), Value::from(scale));
                    let mode = match mode {
                        FanMode::FanIn => "fan_in",
                        FanMode::FanOut => "fan_out",
                        FanMode::FanAvg => "fan_avg",
                    };
                    m.insert("mode".into(), Value::from(mode));
                    let d = match distribution {
                        Distribution::TruncatedNormal => "truncated_normal",
                        Distribution::UntruncatedNormal => "untruncated_normal",
                        Distribution::Uniform => "uniform",
                    };
                    m.insert("distribution".into(), Value::from(d));
                }
                m.insert("input_axes".into(), Value::Null);
                m.insert("output_axes".into(), Value::Null);
                (class, m)
            }
            Initializer::Orthogonal { gain, seed: s } => (
                "Orthogonal",
                obj([("seed", seed(s)), ("gain", Value::from(gain))]),
            ),
            Initializer::Identity => ("Identity", Map::new()),
        };
        serialized("keras.initializers", class, cfg)
    }
}

/// A random (semi-)orthogonal matrix, reshaped to `shape` (rows = all but the last dim).
fn orthogonal(shape: &[usize], gain: f64, dtype: DType, seed: Option<u64>) -> Result<Tensor> {
    if shape.len() < 2 {
        return Err(Error::invalid(
            "Orthogonal",
            format!("needs at least a 2-D shape, got {shape:?}"),
        ));
    }
    let cols = shape[shape.len() - 1];
    let rows: usize = shape[..shape.len() - 1].iter().product();
    // Orthonormalise the columns of a tall normal matrix (Gram-Schmidt in f64), then
    // transpose when the requested matrix is wide.
    let (r, c) = (rows.max(cols), rows.min(cols));
    let a = random::normal(&[r, c], 0.0, 1.0, DType::F64, seed)?.to_vec::<f64>()?;
    let mut q = a.clone();
    for j in 0..c {
        for k in 0..j {
            let dot: f64 = (0..r).map(|i| q[i * c + j] * q[i * c + k]).sum();
            for i in 0..r {
                q[i * c + j] -= dot * q[i * c + k];
            }
        }
        let norm: f64 = (0..r).map(|i| q[i * c + j].powi(2)).sum::<f64>().sqrt();
        // Sign convention of QR with a positive diagonal: keeps the draw uniform (Haar).
        let diag: f64 = (0..r).map(|i| q[i * c + j] * a[i * c + j]).sum();
        let s = if diag < 0.0 { -1.0 } else { 1.0 };
        for i in 0..r {
            q[i * c + j] *= s * gain / norm.max(f64::MIN_POSITIVE);
        }
    }
    let m = Tensor::from_vec(q, &[r, c])?;
    let m = if rows < cols { m.t()?.contiguous() } else { m };
    m.cast(dtype)?.reshape_to(shape)
}
