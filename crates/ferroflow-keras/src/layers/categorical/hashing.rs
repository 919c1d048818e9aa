//! `Hashing` and `CategoryEncoding`: categorical features to bins without a vocabulary.

use super::encoding::{encode, OutputMode};
use super::lookup::salt;
use crate::config::{dtype_policy, ConfigReader, Map};
use crate::layer::{expect_inputs, CallContext, Layer, LayerBase, TensorSpec};
use ferroflow_core::strings::{as_string, to_hash_bucket_fast, to_hash_bucket_strong};
use ferroflow_core::{CmpOp, DType, Error, Result, Tensor};
use serde_json::Value;

/// The output spec of a categorical layer: the input's shape for `int`, else the last
/// axis replaced by (or, for `one_hot`, added as) `depth` bins.
pub(super) fn encoded_spec(
    input: &TensorSpec,
    mode: OutputMode,
    depth: usize,
    int_dtype: DType,
) -> TensorSpec {
    let mut s = input.shape.clone();
    match mode {
        OutputMode::Int => return TensorSpec::new(s, int_dtype),
        OutputMode::OneHot => {
            if s.len() > 1 && s.last() == Some(&Some(1)) {
                s.pop();
            }
        }
        _ => {
            s.pop();
        }
    }
    s.push(Some(depth));
    TensorSpec::new(s, DType::F32)
}

/// Each value's bin in `0..bins` as Keras hashes categories: strings by their bytes,
/// numbers by their decimal text (floats truncated to integers first), with SipHash-2-4
/// keyed by `salt` or else FarmHash's `Fingerprint64`.
pub(super) fn hash_bins(x: &Tensor, bins: u64, salt: Option<[u64; 2]>) -> Result<Tensor> {
    let text = match x.dtype() {
        DType::String => x.clone(),
        d if d.is_float() => as_string(&x.cast(DType::I64)?, None)?,
        _ => as_string(x, None)?,
    };
    match salt {
        Some(key) => to_hash_bucket_strong(&text, bins, key),
        None => to_hash_bucket_fast(&text, bins),
    }
}

/// The value `Hashing` treats as the mask (`mask_value`): a string or an integer.
#[derive(Clone, Debug, PartialEq)]
pub enum MaskValue {
    /// A string input equal to it is masked.
    Text(String),
    /// An integer input equal to it is masked.
    Int(i64),
}

/// `keras.layers.Hashing`: values to `num_bins` bins with TensorFlow's hashes (FarmHash
/// `Fingerprint64`, or SipHash-2-4 keyed by `salt`); integers hash as their decimal text,
/// floats are truncated to integers first. With a `mask_value`, bin 0 is the mask.
pub struct Hashing {
    base: LayerBase,
    num_bins: usize,
    mask_value: Option<MaskValue>,
    salt: Option<[u64; 2]>,
    output_mode: OutputMode,
    int_dtype: DType,
}

impl Hashing {
    /// Hashing into `num_bins` bins (`output_mode="int"`).
    pub fn new(num_bins: usize) -> Result<Self> {
        if num_bins == 0 {
            return Err(Error::invalid("Hashing", "num_bins must be positive"));
        }
        Ok(Hashing {
            base: LayerBase::new("Hashing", None),
            num_bins,
            mask_value: None,
            salt: None,
            output_mode: OutputMode::Int,
            int_dtype: DType::I64,
        })
    }

    /// Keyed SipHash (`salt`; one integer is used for both key halves, as Keras does).
    pub fn salt(mut self, key: [u64; 2]) -> Self {
        self.salt = Some(key);
        self
    }

    /// The value that maps to bin 0 (`mask_value`).
    pub fn mask_value(mut self, v: MaskValue) -> Self {
        self.mask_value = Some(v);
        self
    }

    /// How bins are encoded (`int`, `one_hot`, `multi_hot` or `count`).
    pub fn output_mode(mut self, m: OutputMode) -> Result<Self> {
        self.output_mode = OutputMode::parse("Hashing", m.name(), &OutputMode::BASIC)?;
        Ok(self)
    }

    /// Gives the layer a name.
    pub fn name(mut self, name: &str) -> Self {
        self.base.set_name(name);
        self
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::with_dtypes("Hashing", config, &["int64", "int32", "float32"])?;
        let mut l = Hashing::new(r.usize_req("num_bins")?)?;
        l.base = LayerBase::from_reader("Hashing", &r);
        l.output_mode = OutputMode::parse(
            "Hashing",
            &r.str_or("output_mode", "int")?,
            &OutputMode::BASIC,
        )?;
        l.int_dtype = match r.dtype_name() {
            Some("int32") => DType::I32,
            _ => DType::I64,
        };
        l.salt = salt(&r)?;
        l.mask_value = match r.raw("mask_value") {
            None => None,
            Some(Value::String(s)) => Some(MaskValue::Text(s.clone())),
            Some(v) => Some(MaskValue::Int(v.as_i64().ok_or_else(|| {
                Error::invalid("Hashing", format!("option 'mask_value': cannot read {v}"))
            })?)),
        };
        r.require("sparse", &Value::Bool(false))?;
        r.finish()?;
        Ok(l)
    }

    /// The bin of every element of `x`.
    pub fn bins(&self, x: &Tensor) -> Result<Tensor> {
        let mut bins = self.num_bins as u64;
        let mask = match (&self.mask_value, bins > 1) {
            (Some(m), true) => {
                bins -= 1;
                let m = match m {
                    MaskValue::Text(s) => Tensor::from_strings(&[s], &[])?,
                    MaskValue::Int(i) => Tensor::scalar(*i).cast(x.dtype())?,
                };
                Some(x.compare(CmpOp::Equal, &m)?)
            }
            _ => None,
        };
        let h = hash_bins(x, bins, self.salt)?;
        match mask {
            Some(m) => Tensor::where_(&m, &Tensor::scalar(0i64), &h.add(&Tensor::scalar(1i64))?),
            None => Ok(h),
        }
    }
}

impl Layer for Hashing {
    super::super::layer_identity!("Hashing");

    fn runs_on_host(&self) -> bool {
        true
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let b = self.bins(&inputs[0])?;
        Ok(vec![encode(
            &b,
            self.output_mode,
            self.num_bins,
            None,
            self.int_dtype,
        )?])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        Ok(vec![encoded_spec(
            &inputs[0],
            self.output_mode,
            self.num_bins,
            self.int_dtype,
        )])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        let dtype = match self.output_mode {
            OutputMode::Int => self.int_dtype.name(),
            _ => "float32",
        };
        m.insert("dtype".into(), dtype_policy(dtype));
        m.insert("num_bins".into(), Value::from(self.num_bins));
        m.insert(
            "salt".into(),
            self.salt.map_or(Value::Null, |s| Value::from(s.to_vec())),
        );
        m.insert(
            "mask_value".into(),
            match &self.mask_value {
                None => Value::Null,
                Some(MaskValue::Text(s)) => Value::from(s.clone()),
                Some(MaskValue::Int(i)) => Value::from(*i),
            },
        );
        m.insert("output_mode".into(), Value::from(self.output_mode.name()));
        m.insert("sparse".into(), Value::from(false));
        m
    }
}

/// `keras.layers.CategoryEncoding`: integer indices in `0..num_tokens` to `one_hot`,
/// `multi_hot` or `count` bins.
pub struct CategoryEncoding {
    base: LayerBase,
    num_tokens: usize,
    output_mode: OutputMode,
}

impl CategoryEncoding {
    /// Encoding of `num_tokens` categories (`output_mode="multi_hot"`, Keras's default).
    pub fn new(num_tokens: usize, output_mode: OutputMode) -> Result<Self> {
        let allowed = [OutputMode::OneHot, OutputMode::MultiHot, OutputMode::Count];
        Ok(CategoryEncoding {
            base: LayerBase::new("CategoryEncoding", None),
            num_tokens,
            output_mode: OutputMode::parse("CategoryEncoding", output_mode.name(), &allowed)?,
        })
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("CategoryEncoding", config)?;
        let mode = OutputMode::parse(
            "CategoryEncoding",
            &r.str_or("output_mode", "multi_hot")?,
            &[OutputMode::OneHot, OutputMode::MultiHot, OutputMode::Count],
        )?;
        let mut l = CategoryEncoding::new(r.usize_req("num_tokens")?, mode)?;
        l.base = LayerBase::from_reader("CategoryEncoding", &r);
        r.require("sparse", &Value::Bool(false))?;
        r.finish()?;
        Ok(l)
    }
}

impl Layer for CategoryEncoding {
    super::super::layer_identity!("CategoryEncoding");

    fn runs_on_host(&self) -> bool {
        true
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        if x.dtype() == DType::String
            || x.dtype().is_float() && x.to_f64_vec().iter().any(|v| v.fract() != 0.0)
        {
            return Err(Error::invalid(
                "CategoryEncoding",
                format!(
                    "layer '{}' takes integer indices, got {} of shape {:?}",
                    self.base.name(),
                    x.dtype(),
                    x.shape()
                ),
            ));
        }
        let idx = x.cast(DType::I64)?.to_vec::<i64>()?;
        if let Some(bad) = idx
            .iter()
            .find(|&&i| i < 0 || i as usize >= self.num_tokens)
        {
            return Err(Error::invalid(
                "CategoryEncoding",
                format!(
                    "layer '{}': input values must be in 0..{} (num_tokens), got {bad}",
                    self.base.name(),
                    self.num_tokens
                ),
            ));
        }
        Ok(vec![encode(
            x,
            self.output_mode,
            self.num_tokens,
            None,
            DType::I64,
        )?])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        Ok(vec![encoded_spec(
            &inputs[0],
            self.output_mode,
            self.num_tokens,
            DType::I64,
        )])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("num_tokens".into(), Value::from(self.num_tokens));
        m.insert("output_mode".into(), Value::from(self.output_mode.name()));
        m
    }
}
