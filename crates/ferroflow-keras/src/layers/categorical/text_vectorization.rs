//! `keras.layers.TextVectorization`: standardize, split, n-grams, then a `StringLookup`
//! (mask token `""`, OOV token `[UNK]`).

use super::encoding::OutputMode;
use super::lookup::StringLookup;
use crate::config::{ConfigReader, Map};
use crate::layer::{expect_inputs, CallContext, Layer, LayerBase, TensorSpec};
use ferroflow_core::strings::{self, Ragged};
use ferroflow_core::{DType, Error, Result, Tensor, TfString};
use serde_json::Value;

/// The name Keras tracks the inner lookup under (its state and assets live there too).
const LOOKUP: &str = "_lookup_layer";

/// Keras's punctuation pattern of `strip_punctuation`.
const PUNCTUATION: &str = r##"[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~']"##;

/// How text is cleaned before splitting (`standardize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standardize {
    /// Unchanged (`None`).
    None,
    /// ASCII lower case.
    Lower,
    /// Punctuation removed.
    StripPunctuation,
    /// Both (Keras's default).
    LowerAndStripPunctuation,
}

/// How text is cut into tokens (`split`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Each string is one token (`None`).
    None,
    /// Runs of whitespace separate tokens (Keras's default).
    Whitespace,
    /// Each UTF-8 character is a token.
    Character,
}

impl Standardize {
    const ALL: [Standardize; 4] = [
        Standardize::None,
        Standardize::Lower,
        Standardize::StripPunctuation,
        Standardize::LowerAndStripPunctuation,
    ];

    fn name(self) -> Option<&'static str> {
        match self {
            Standardize::None => None,
            Standardize::Lower => Some("lower"),
            Standardize::StripPunctuation => Some("strip_punctuation"),
            Standardize::LowerAndStripPunctuation => Some("lower_and_strip_punctuation"),
        }
    }
}

impl Split {
    const ALL: [Split; 3] = [Split::None, Split::Whitespace, Split::Character];

    fn name(self) -> Option<&'static str> {
        match self {
            Split::None => None,
            Split::Whitespace => Some("whitespace"),
            Split::Character => Some("character"),
        }
    }
}

/// Strings to token indices or bag-of-token vectors (`keras.layers.TextVectorization`).
pub struct TextVectorization {
    base: LayerBase,
    standardize: Standardize,
    split: Split,
    ngrams: Option<Vec<usize>>,
    ngrams_arg: Value,
    output_sequence_length: Option<usize>,
    lookup: StringLookup,
}

impl TextVectorization {
    /// Rebuilds from a Keras config (also how the layer is made: the config's keys are
    /// Keras's constructor arguments).
    pub fn from_config(config: &Value) -> Result<Self> {
        let class = "TextVectorization";
        let r = ConfigReader::with_dtypes(class, config, &["string", "float32", "int64"])?;
        let bad =
            |k: &str, v: &Value| Error::invalid(class, format!("option '{k}': cannot use {v}"));
        let standardize = match r.raw("standardize") {
            None => Standardize::None,
            Some(v) => Standardize::ALL
                .into_iter()
                .find(|s| s.name() == v.as_str())
                .ok_or_else(|| bad("standardize", v))?,
        };
        let split = match r.raw("split") {
            None => Split::None,
            Some(v) => Split::ALL
                .into_iter()
                .find(|s| s.name() == v.as_str())
                .ok_or_else(|| bad("split", v))?,
        };
        let ngrams_arg = r.raw("ngrams").cloned().unwrap_or(Value::Null);
        let ngrams = match &ngrams_arg {
            Value::Null => None,
            Value::Number(n) => {
                Some((1..=n.as_u64().ok_or_else(|| bad("ngrams", &ngrams_arg))? as usize).collect())
            }
            Value::Array(a) => Some(
                a.iter()
                    .map(|x| x.as_u64().map(|n| n as usize).filter(|&n| n > 0))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| bad("ngrams", &ngrams_arg))?,
            ),
            v => return Err(bad("ngrams", v)),
        };
        let mode = r.str_or("output_mode", "int")?;
        let output_sequence_length = r
            .raw("output_sequence_length")
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        if mode != "int" && output_sequence_length.is_some() {
            return Err(Error::invalid(
                class,
                "output_sequence_length is only for output_mode 'int'",
            ));
        }
        r.require("ragged", &Value::Bool(false))?;
        let mut lookup = Map::new();
        lookup.insert(
            "name".into(),
            Value::from(format!("{}_lookup", r.name().unwrap_or_default())),
        );
        lookup.insert("mask_token".into(), Value::from(""));
        for k in [
            "max_tokens",
            "pad_to_max_tokens",
            "sparse",
            "vocabulary",
            "idf_weights",
            "encoding",
            "vocabulary_size",
        ] {
            if let Some(v) = r.raw(k) {
                lookup.insert(k.into(), v.clone());
            }
        }
        lookup.insert("output_mode".into(), Value::from(mode));
        let lookup =
            StringLookup::from_config(&Value::Object(lookup)).map_err(|e| e.context(class))?;
        let l = TextVectorization {
            base: LayerBase::from_reader(class, &r),
            standardize,
            split,
            ngrams,
            ngrams_arg,
            output_sequence_length,
            lookup,
        };
        r.finish()?;
        Ok(l)
    }

    /// A layer with Keras's defaults (lower case, no punctuation, whitespace split,
    /// `int` output) and these extra constructor arguments (`{"max_tokens": 1000}`).
    pub fn new(options: Value) -> Result<Self> {
        let mut m = options.as_object().cloned().unwrap_or_default();
        m.entry("standardize")
            .or_insert(Value::from("lower_and_strip_punctuation"));
        m.entry("split").or_insert(Value::from("whitespace"));
        Self::from_config(&Value::Object(m))
    }

    /// The inner lookup (its vocabulary, `get_vocabulary`, `vocabulary_size`).
    pub fn lookup_layer(&self) -> &StringLookup {
        &self.lookup
    }

    /// Standardizes, splits and makes n-grams: one row of tokens per input string.
    pub fn tokens(&self, x: &Tensor) -> Result<Ragged> {
        let mut t = x.clone();
        if t.dtype() != DType::String {
            return Err(Error::invalid(
                "TextVectorization",
                format!(
                    "layer '{}' takes strings, got {} of shape {:?}",
                    self.base.name(),
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
        if matches!(
            self.standardize,
            Standardize::Lower | Standardize::LowerAndStripPunctuation
        ) {
            t = strings::lower(&t)?;
        }
        if matches!(
            self.standardize,
            Standardize::StripPunctuation | Standardize::LowerAndStripPunctuation
        ) {
            t = strings::regex_replace(&t, PUNCTUATION, "", true)?;
        }
        if t.rank() > 1 {
            if t.shape().last() != Some(&1) || t.rank() > 2 {
                return Err(Error::invalid(
                    "TextVectorization",
                    format!(
                        "layer '{}' takes a vector of strings or shape (batch, 1), got {:?}",
                        self.base.name(),
                        t.shape()
                    ),
                ));
            }
            t = t.reshape(&[t.shape()[0] as isize])?;
        }
        let rows = match self.split {
            Split::Whitespace => strings::split(&t, None, None)?,
            Split::None => {
                let t = t.reshape(&[t.numel() as isize])?;
                Ragged::new(t.clone(), (0..=t.numel()).collect())?
            }
            Split::Character => {
                let mut values = Vec::new();
                let mut splits = vec![0];
                for s in t.to_vec::<TfString>()? {
                    let text = std::str::from_utf8(&s).map_err(|e| {
                        Error::invalid(
                            "TextVectorization",
                            format!("split 'character' needs UTF-8 text: {e}"),
                        )
                    })?;
                    let mut at = 0;
                    for c in text.chars() {
                        values.push(s.slice(at..at + c.len_utf8()));
                        at += c.len_utf8();
                    }
                    splits.push(values.len());
                }
                Ragged::new(
                    Tensor::from_vec(values, &[*splits.last().unwrap_or(&0)])?,
                    splits,
                )?
            }
        };
        match &self.ngrams {
            None => Ok(rows),
            Some(widths) => ngrams(&rows, widths),
        }
    }

    /// Learns the vocabulary from strings (`adapt`).
    pub fn adapt(&self, data: &Tensor) -> Result<()> {
        let rows = self.tokens(data)?;
        let values = rows.values.to_vec::<TfString>()?;
        let docs = rows
            .row_splits
            .windows(2)
            .map(|w| values[w[0]..w[1]].to_vec())
            .collect();
        self.lookup.learn(docs)
    }
}

/// The n-grams of each row, widths in order, tokens joined by a space (as
/// `tf.strings.ngrams` without padding).
fn ngrams(rows: &Ragged, widths: &[usize]) -> Result<Ragged> {
    let values = rows.values.to_vec::<TfString>()?;
    let mut out = Vec::new();
    let mut splits = vec![0];
    for w in rows.row_splits.windows(2) {
        let row = &values[w[0]..w[1]];
        for &n in widths {
            for g in row.windows(n) {
                let joined: Vec<&[u8]> = g.iter().map(|t| t.as_ref()).collect();
                out.push(TfString::from(joined.join(&b" "[..])));
            }
        }
        splits.push(out.len());
    }
    Ragged::new(
        Tensor::from_vec(out, &[*splits.last().unwrap_or(&0)])?,
        splits,
    )
}

impl Layer for TextVectorization {
    super::super::layer_identity!("TextVectorization");

    fn runs_on_host(&self) -> bool {
        true
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let rows = self.tokens(&inputs[0])?;
        let ids = self.lookup.indices(&rows.values)?;
        let ids = Ragged::new(
            Tensor::from_vec(ids, &[rows.values.numel()])?,
            rows.row_splits,
        )?;
        if self.lookup.options().output_mode == OutputMode::Int {
            return Ok(vec![
                ids.to_tensor(&Tensor::scalar(0i64), self.output_sequence_length)?
            ]);
        }
        // Bag modes count each row; the fill index -1 sets no bin.
        let dense = ids.to_tensor(&Tensor::scalar(-1i64), None)?;
        Ok(vec![self.lookup.encode_indices(&dense)?])
    }

    fn adapt(&self, data: &Tensor) -> Result<()> {
        TextVectorization::adapt(self, data)
    }

    // Keras tracks the inner lookup as `_lookup_layer` and saves its state and vocabulary
    // both there and as the layer's own.
    fn saved_state(&self) -> Vec<(String, Tensor)> {
        let own = self.lookup.saved_state();
        let inner = own
            .iter()
            .map(|(p, t)| (format!("{LOOKUP}/{p}"), t.clone()));
        inner.chain(own.clone()).collect()
    }

    fn state_groups(&self) -> Vec<String> {
        vec![format!("{LOOKUP}/vars")]
    }

    fn restore_state(&self, path: &str, value: Tensor) -> Result<()> {
        let own = path.strip_prefix(&format!("{LOOKUP}/")).unwrap_or(path);
        self.lookup.restore_state(own, value)
    }

    fn assets(&self) -> Vec<(String, Vec<u8>)> {
        let own = self.lookup.assets();
        let inner = own
            .iter()
            .map(|(p, b)| (format!("{LOOKUP}/{p}"), b.clone()));
        inner.chain(own.clone()).collect()
    }

    fn restore_asset(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let own = path.strip_prefix(&format!("{LOOKUP}/")).unwrap_or(path);
        self.lookup.restore_asset(own, bytes)
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let batch = inputs[0].shape.first().copied().flatten();
        Ok(vec![match self.lookup.options().output_mode {
            OutputMode::Int => {
                TensorSpec::new(vec![batch, self.output_sequence_length], DType::I64)
            }
            _ => {
                let depth = self
                    .lookup
                    .compute_output_spec(&[TensorSpec::new(vec![batch, None], DType::String)])?;
                TensorSpec::new(
                    vec![batch, depth[0].shape.last().copied().flatten()],
                    DType::F32,
                )
            }
        }])
    }

    fn config(&self) -> Map {
        let inner = self.lookup.config();
        let get = |k: &str| inner.get(k).cloned().unwrap_or(Value::Null);
        let mut m = Map::new();
        m.insert("max_tokens".into(), get("max_tokens"));
        m.insert(
            "standardize".into(),
            self.standardize.name().map_or(Value::Null, Value::from),
        );
        m.insert(
            "split".into(),
            self.split.name().map_or(Value::Null, Value::from),
        );
        m.insert("ngrams".into(), self.ngrams_arg.clone());
        m.insert("output_mode".into(), get("output_mode"));
        m.insert(
            "output_sequence_length".into(),
            self.output_sequence_length.map_or(Value::Null, Value::from),
        );
        m.insert("pad_to_max_tokens".into(), get("pad_to_max_tokens"));
        m.insert("sparse".into(), Value::from(false));
        m.insert("ragged".into(), Value::from(false));
        m.insert("vocabulary".into(), get("vocabulary"));
        m.insert("idf_weights".into(), get("idf_weights"));
        m.insert("encoding".into(), Value::from("utf-8"));
        m.insert(
            "vocabulary_size".into(),
            Value::from(self.lookup.vocabulary_size()),
        );
        m
    }
}
