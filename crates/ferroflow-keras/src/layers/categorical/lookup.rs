//! `StringLookup` and `IntegerLookup`: one layer generic over what it looks up.

use super::encoding::{encode, OutputMode};
use super::keys::{LookupKey, OovMethod};
use super::vocabulary::{LookupOptions, Vocabulary};
use crate::config::{ConfigReader, Map};
use crate::layer::{expect_inputs, CallContext, Dims, Layer, LayerBase, TensorSpec};
use ferroflow_core::{DType, Error, Result, Tensor, TfString};
use serde_json::Value;
use std::sync::RwLock;

/// Maps tokens to indices (or back), Keras's `IndexLookup`: the vocabulary is given
/// ([`IndexLookup::vocabulary`]) or learned ([`IndexLookup::adapt`]).
pub struct IndexLookup<K: LookupKey> {
    base: LayerBase,
    options: LookupOptions<K>,
    vocab: RwLock<Vocabulary<K>>,
    /// Whether the vocabulary came with the layer (Keras's `input_vocabulary`), so that
    /// it is part of the config; a learned one is an asset.
    given: bool,
    /// The vocabulary size recorded when it was set (Keras's `vocabulary_size`).
    frozen_size: RwLock<Option<usize>>,
}

/// `keras.layers.StringLookup`.
pub type StringLookup = IndexLookup<TfString>;
/// `keras.layers.IntegerLookup`.
pub type IntegerLookup = IndexLookup<i64>;

impl<K: LookupKey> IndexLookup<K> {
    /// A lookup with Keras's defaults (one OOV index, no mask, `int` output) and no
    /// vocabulary yet.
    pub fn new() -> Self {
        IndexLookup {
            base: LayerBase::new(K::CLASS, None),
            options: LookupOptions::new(),
            vocab: RwLock::new(Vocabulary::default()),
            given: false,
            frozen_size: RwLock::new(None),
        }
    }

    /// Sets the options (checked as Keras's constructor checks them).
    pub fn with_options(mut self, options: LookupOptions<K>) -> Result<Self> {
        options.validate()?;
        self.options = options;
        Ok(self)
    }

    /// The options.
    pub fn options(&self) -> &LookupOptions<K> {
        &self.options
    }

    /// Gives the vocabulary (and idf weights for `tf_idf`), as the `vocabulary` argument.
    pub fn vocabulary(mut self, tokens: Vec<K>, idf_weights: Option<Vec<f64>>) -> Result<Self> {
        self.set_vocabulary(tokens, idf_weights)?;
        self.given = true;
        Ok(self)
    }

    /// Gives the layer a name.
    pub fn name(mut self, name: &str) -> Self {
        self.base.set_name(name);
        self
    }

    /// Replaces the vocabulary (`set_vocabulary`).
    pub fn set_vocabulary(&self, tokens: Vec<K>, idf_weights: Option<Vec<f64>>) -> Result<()> {
        if self.options.output_mode == OutputMode::TfIdf && idf_weights.is_none() {
            return Err(Error::invalid(
                K::CLASS,
                format!(
                    "layer '{}': output_mode 'tf_idf' needs idf_weights with the vocabulary",
                    self.base.name()
                ),
            ));
        }
        let v = Vocabulary::from_listing(&self.options, tokens, idf_weights)
            .map_err(|e| e.context(format!("layer '{}'", self.base.name())))?;
        self.store(v);
        Ok(())
    }

    fn store(&self, v: Vocabulary<K>) {
        let size = v.size(&self.options);
        *self.vocab.write().unwrap_or_else(|e| e.into_inner()) = v;
        *self.frozen_size.write().unwrap_or_else(|e| e.into_inner()) = Some(size);
    }

    /// Learns the vocabulary from `data` (`adapt`): each row is a document (a vector's
    /// elements are documents of one token each).
    pub fn adapt(&self, data: &Tensor) -> Result<()> {
        let width = data.shape().get(1..).map_or(1, |d| d.iter().product());
        let keys = K::keys(data)?;
        self.learn(keys.chunks(width.max(1)).map(<[K]>::to_vec).collect())
    }

    /// Learns the vocabulary from batches (`adapt` on a dataset): each batch's rows are
    /// documents, a vector or scalar batch is one document.
    pub fn adapt_batches(&self, batches: impl IntoIterator<Item = Tensor>) -> Result<()> {
        let mut docs = Vec::new();
        for b in batches {
            let keys = K::keys(&b)?;
            let width = match b.rank() {
                0 | 1 => keys.len(),
                _ => b.shape()[1..].iter().product(),
            };
            docs.extend(keys.chunks(width.max(1)).map(<[K]>::to_vec));
        }
        self.learn(docs)
    }

    /// Learns the vocabulary from documents of tokens.
    pub fn learn(&self, docs: Vec<Vec<K>>) -> Result<()> {
        if self.given {
            return Err(Error::invalid(
                K::CLASS,
                format!(
                    "cannot adapt layer '{}' after setting a vocabulary",
                    self.base.name()
                ),
            ));
        }
        self.store(Vocabulary::adapt(&self.options, &docs)?);
        Ok(())
    }

    /// The vocabulary with (or without) the mask and OOV tokens (`get_vocabulary`).
    pub fn get_vocabulary(&self, include_special_tokens: bool) -> Vec<K> {
        self.vocab
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .listing(&self.options, include_special_tokens)
    }

    /// The number of indices, special ones included (`vocabulary_size`).
    pub fn vocabulary_size(&self) -> usize {
        self.vocab
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .size(&self.options)
    }

    fn depth(&self) -> Result<usize> {
        if self.options.pad_to_max_tokens {
            return Ok(self.options.max_tokens.unwrap_or(0));
        }
        self.frozen_size
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or_else(|| {
                Error::invalid(
                    K::CLASS,
                    format!(
                        "layer '{}': output_mode '{}' needs the vocabulary set (a vocabulary argument or adapt) before the layer is called",
                        self.base.name(),
                        self.options.output_mode.name()
                    ),
                )
            })
    }

    /// The indices of the tokens of `x` (before any encoding; not for `invert`).
    pub fn indices(&self, x: &Tensor) -> Result<Vec<i64>> {
        self.vocab
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(&self.options, x)
    }

    /// Encodes `indices` as the layer's `output_mode` (over their last axis).
    pub fn encode_indices(&self, indices: &Tensor) -> Result<Tensor> {
        let vocab = self.vocab.read().unwrap_or_else(|e| e.into_inner());
        let depth = match self.options.output_mode {
            OutputMode::Int => 0,
            _ => self.depth()?,
        };
        encode(
            indices,
            self.options.output_mode,
            depth,
            vocab.idf.as_deref(),
            DType::I64,
        )
    }

    /// Runs the lookup on one tensor.
    pub fn lookup(&self, x: &Tensor) -> Result<Tensor> {
        let vocab = self.vocab.read().unwrap_or_else(|e| e.into_inner());
        if self.options.invert {
            return vocab.invert(&self.options, x);
        }
        let ids = Tensor::from_vec(vocab.lookup(&self.options, x)?, x.shape())?;
        drop(vocab);
        self.encode_indices(&ids)
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new(K::CLASS, config)?;
        let key = |k: &str| -> Result<Option<K>> {
            r.raw(k)
                .map(|v| {
                    K::from_json(v).ok_or_else(|| {
                        Error::invalid(K::CLASS, format!("option '{k}': cannot read {v}"))
                    })
                })
                .transpose()
        };
        let mut o = LookupOptions::<K>::new();
        o.invert = r.bool_or("invert", false)?;
        o.max_tokens = r
            .raw("max_tokens")
            .and_then(Value::as_u64)
            .map(|m| m as usize);
        o.num_oov_indices = r.usize_or("num_oov_indices", 1)?;
        o.mask_token = key("mask_token")?;
        if let Some(t) = key("oov_token")? {
            o.oov_token = t;
        }
        o.output_mode = OutputMode::parse(
            K::CLASS,
            &r.str_or("output_mode", "int")?,
            &OutputMode::LOOKUP,
        )?;
        r.require("sparse", &Value::Bool(false))?;
        o.pad_to_max_tokens = r.bool_or("pad_to_max_tokens", false)?;
        o.oov_method = match r.str_or("oov_method", "floormod")?.as_str() {
            "farmhash" => OovMethod::FarmHash,
            "floormod" => OovMethod::FloorMod,
            m => {
                return Err(Error::invalid(
                    K::CLASS,
                    format!("option 'oov_method': unknown {m:?}"),
                ))
            }
        };
        o.salt = salt(&r)?;
        if K::DTYPE == DType::String {
            r.require("encoding", &Value::from("utf-8"))?;
        } else {
            r.require("vocabulary_dtype", &Value::from("int64"))?;
        }
        let frozen = r.raw("vocabulary_size").and_then(Value::as_u64);
        let idf = r.raw("idf_weights").map(|v| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x.as_f64().unwrap_or(f64::NAN))
                        .collect::<Vec<f64>>()
                })
                .ok_or_else(|| {
                    Error::invalid(K::CLASS, format!("option 'idf_weights': cannot read {v}"))
                })
        });
        let vocab = r.raw("vocabulary").map(|v| {
            v.as_array()
                .and_then(|a| a.iter().map(K::from_json).collect::<Option<Vec<K>>>())
                .ok_or_else(|| {
                    Error::invalid(K::CLASS, format!("option 'vocabulary': cannot read {v}"))
                })
        });
        let mut l = IndexLookup::new().with_options(o)?;
        l.base = LayerBase::from_reader(K::CLASS, &r);
        r.finish()?;
        if let Some(v) = vocab {
            l = l.vocabulary(v?, idf.transpose()?)?;
        } else if let Some(n) = frozen {
            *l.frozen_size.write().unwrap_or_else(|e| e.into_inner()) = Some(n as usize);
        }
        Ok(l)
    }

    /// Keras's `vocabulary.txt` asset: the full listing, one token per line, written
    /// when the vocabulary was learned (a given one is in the config).
    pub fn vocabulary_asset(&self) -> Option<String> {
        (!self.given).then(|| {
            self.get_vocabulary(true)
                .iter()
                .map(K::to_line)
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    /// Restores a learned vocabulary from Keras's `vocabulary.txt` asset (the idf weights,
    /// for `tf_idf`, come with the layer's variables).
    pub fn load_vocabulary_asset(&self, text: &str) -> Result<()> {
        let mut lines: Vec<&str> = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        while lines.last() == Some(&"") {
            lines.pop();
        }
        let tokens = lines
            .iter()
            .map(|l| {
                K::from_line(l).ok_or_else(|| {
                    Error::invalid(K::CLASS, format!("vocabulary.txt: cannot read line {l:?}"))
                })
            })
            .collect::<Result<Vec<K>>>()?;
        let idf = self
            .vocab
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .idf
            .clone();
        let mut v = Vocabulary::from_listing(&self.options, tokens, None)?;
        v.idf = idf;
        self.store(v);
        Ok(())
    }
}

/// Keras's `salt`: one integer (used twice) or two.
pub(super) fn salt(r: &ConfigReader) -> Result<Option<[u64; 2]>> {
    let bad = |v: &Value| Error::invalid(r.class(), format!("option 'salt': cannot read {v}"));
    r.raw("salt")
        .map(|v| match v {
            Value::Number(n) => n.as_u64().map(|s| [s, s]).ok_or_else(|| bad(v)),
            Value::Array(a) => match a.as_slice() {
                [x, y] => Ok([
                    x.as_u64().ok_or_else(|| bad(v))?,
                    y.as_u64().ok_or_else(|| bad(v))?,
                ]),
                _ => Err(bad(v)),
            },
            _ => Err(bad(v)),
        })
        .transpose()
}

impl<K: LookupKey> Default for IndexLookup<K> {
    fn default() -> Self {
        Self::new()
    }
}

fn json_opt<T>(v: &Option<T>, f: impl Fn(&T) -> Value) -> Value {
    v.as_ref().map_or(Value::Null, f)
}

impl<K: LookupKey> Layer for IndexLookup<K> {
    fn class_name(&self) -> &'static str {
        K::CLASS
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn runs_on_host(&self) -> bool {
        true
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        let want = if self.options.invert {
            DType::I64
        } else {
            K::DTYPE
        };
        let ok = x.dtype() == want || (want == DType::I64 && x.dtype().is_int());
        if !ok {
            return Err(Error::invalid(
                K::CLASS,
                format!(
                    "layer '{}' takes {want} inputs, got {} of shape {:?}",
                    self.base.name(),
                    x.dtype(),
                    x.shape()
                ),
            ));
        }
        Ok(vec![self.lookup(x)?])
    }

    fn adapt(&self, data: &Tensor) -> Result<()> {
        IndexLookup::adapt(self, data)
    }

    fn saved_state(&self) -> Vec<(String, Tensor)> {
        let vocab = self.vocab.read().unwrap_or_else(|e| e.into_inner());
        vocab
            .idf
            .as_ref()
            .filter(|_| self.options.output_mode == OutputMode::TfIdf)
            .and_then(|w| Tensor::from_vec(w.clone(), &[w.len()]).ok())
            .map(|t| ("vars/idf_weights".to_string(), t))
            .into_iter()
            .collect()
    }

    fn restore_state(&self, name: &str, value: Tensor) -> Result<()> {
        if name != "vars/idf_weights"
            || self.options.output_mode != OutputMode::TfIdf
            || value.rank() != 1
        {
            return Err(Error::invalid(
                K::CLASS,
                format!(
                    "layer '{}' (output_mode '{}') cannot take state '{name}' of shape {:?}",
                    self.base.name(),
                    self.options.output_mode.name(),
                    value.shape()
                ),
            ));
        }
        let w = value.cast(DType::F32)?.to_vec::<f32>()?;
        self.vocab.write().unwrap_or_else(|e| e.into_inner()).idf = Some(w);
        Ok(())
    }

    fn assets(&self) -> Vec<(String, Vec<u8>)> {
        self.vocabulary_asset()
            .map(|v| ("vocabulary.txt".to_string(), v.into_bytes()))
            .into_iter()
            .collect()
    }

    fn restore_asset(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let text = std::str::from_utf8(bytes)
            .ok()
            .filter(|_| name == "vocabulary.txt");
        let text = text.ok_or_else(|| {
            Error::invalid(
                K::CLASS,
                format!(
                    "layer '{}': asset '{name}' is not a UTF-8 vocabulary.txt",
                    self.base.name()
                ),
            )
        })?;
        self.load_vocabulary_asset(text)
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let shape = &inputs[0].shape;
        let o = &self.options;
        Ok(vec![match o.output_mode {
            _ if o.invert => TensorSpec::new(shape.clone(), K::DTYPE),
            OutputMode::Int => TensorSpec::new(shape.clone(), DType::I64),
            mode => {
                let depth = self.depth().ok();
                let mut s: Dims = shape.clone();
                if mode == OutputMode::OneHot {
                    if s.len() > 1 && s.last() == Some(&Some(1)) {
                        s.pop();
                    }
                } else {
                    s.pop();
                }
                s.push(depth);
                TensorSpec::new(s, DType::F32)
            }
        }])
    }

    fn config(&self) -> Map {
        let o = &self.options;
        let vocab = self.vocab.read().unwrap_or_else(|e| e.into_inner());
        let mut m = Map::new();
        m.insert("invert".into(), Value::from(o.invert));
        m.insert(
            "max_tokens".into(),
            json_opt(&o.max_tokens, |&n| Value::from(n)),
        );
        m.insert("num_oov_indices".into(), Value::from(o.num_oov_indices));
        m.insert("oov_token".into(), o.oov_token.to_json());
        m.insert("mask_token".into(), json_opt(&o.mask_token, K::to_json));
        m.insert("output_mode".into(), Value::from(o.output_mode.name()));
        m.insert("sparse".into(), Value::from(false));
        m.insert("pad_to_max_tokens".into(), Value::from(o.pad_to_max_tokens));
        if K::DTYPE != DType::String {
            m.insert("vocabulary_dtype".into(), Value::from("int64"));
        }
        let given = |v: Value| if self.given { v } else { Value::Null };
        let idf = vocab.idf.as_ref().map(|w| {
            w[o.token_start().min(w.len())..]
                .iter()
                .map(|&x| Value::from(x as f64))
                .collect::<Vec<_>>()
        });
        m.insert(
            "idf_weights".into(),
            given(json_opt(&idf, |w| Value::Array(w.clone()))),
        );
        m.insert(
            "vocabulary".into(),
            given(Value::Array(
                vocab.tokens().iter().map(K::to_json).collect(),
            )),
        );
        let frozen = *self.frozen_size.read().unwrap_or_else(|e| e.into_inner());
        m.insert(
            "vocabulary_size".into(),
            json_opt(&frozen, |&n| Value::from(n)),
        );
        m.insert("oov_method".into(), Value::from(o.oov_method.name()));
        m.insert(
            "salt".into(),
            json_opt(&o.salt, |s| Value::from(s.to_vec())),
        );
        if K::DTYPE == DType::String {
            m.insert("encoding".into(), Value::from("utf-8"));
        }
        m
    }
}
