//! What the lookup layers look up: strings (`StringLookup`) or integers (`IntegerLookup`).

use ferroflow_core::{DType, Result, Tensor, TfString};
use serde_json::Value;
use std::fmt::Debug;
use std::hash::Hash;

/// How out-of-vocabulary integers pick one of several OOV indices (`oov_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OovMethod {
    /// `x mod num_oov_indices` (integers only; Keras's default).
    FloorMod,
    /// FarmHash of the value's text (strings always hash this way).
    FarmHash,
}

impl OovMethod {
    /// Keras's name.
    pub fn name(self) -> &'static str {
        match self {
            OovMethod::FloorMod => "floormod",
            OovMethod::FarmHash => "farmhash",
        }
    }
}

/// A vocabulary element type.
pub trait LookupKey: Clone + Eq + Hash + Ord + Send + Sync + Debug + 'static {
    /// The Keras class of the lookup layer over this type.
    const CLASS: &'static str;
    /// The dtype of the layer's inputs (outputs when inverted).
    const DTYPE: DType;
    /// Keras's default `oov_token`.
    fn default_oov() -> Self;
    /// The elements of `t` (integers of any width widen to int64).
    fn keys(t: &Tensor) -> Result<Vec<Self>>;
    /// A tensor of `keys`.
    fn tensor(keys: Vec<Self>, shape: &[usize]) -> Result<Tensor>;
    /// The key as Keras writes it in a config.
    fn to_json(&self) -> Value;
    /// A key from a config value.
    fn from_json(v: &Value) -> Option<Self>;
    /// The key as a line of Keras's `vocabulary.txt` asset.
    fn to_line(&self) -> String;
    /// A key from a line of `vocabulary.txt`.
    fn from_line(line: &str) -> Option<Self>;
    /// The OOV bucket (in `0..n`) of each key of `t`, as Keras picks it.
    fn oov_buckets(
        t: &Tensor,
        n: u64,
        method: OovMethod,
        salt: Option<[u64; 2]>,
    ) -> Result<Vec<i64>> {
        if method == OovMethod::FloorMod && t.dtype() != DType::String {
            let n = n as i64;
            return Ok(t
                .cast(DType::I64)?
                .to_vec::<i64>()?
                .iter()
                .map(|x| x.rem_euclid(n))
                .collect());
        }
        super::hashing::hash_bins(t, n, salt)?.to_vec::<i64>()
    }
}

impl LookupKey for TfString {
    const CLASS: &'static str = "StringLookup";
    const DTYPE: DType = DType::String;
    fn default_oov() -> Self {
        TfString::from_static(b"[UNK]")
    }
    fn keys(t: &Tensor) -> Result<Vec<Self>> {
        t.to_vec::<TfString>()
    }
    fn tensor(keys: Vec<Self>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_vec(keys, shape)
    }
    fn to_json(&self) -> Value {
        Value::from(String::from_utf8_lossy(self).into_owned())
    }
    fn from_json(v: &Value) -> Option<Self> {
        v.as_str().map(|s| TfString::from(s.to_string()))
    }
    fn to_line(&self) -> String {
        String::from_utf8_lossy(self).into_owned()
    }
    fn from_line(line: &str) -> Option<Self> {
        Some(TfString::from(line.to_string()))
    }
}

impl LookupKey for i64 {
    const CLASS: &'static str = "IntegerLookup";
    const DTYPE: DType = DType::I64;
    fn default_oov() -> Self {
        -1
    }
    fn keys(t: &Tensor) -> Result<Vec<Self>> {
        t.cast(DType::I64)?.to_vec::<i64>()
    }
    fn tensor(keys: Vec<Self>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_vec(keys, shape)
    }
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
    fn from_json(v: &Value) -> Option<Self> {
        v.as_i64()
    }
    fn to_line(&self) -> String {
        self.to_string()
    }
    fn from_line(line: &str) -> Option<Self> {
        line.trim().parse().ok()
    }
}
