//! A lookup layer's vocabulary with Keras's index layout: the mask index (0, in `int`
//! mode with a mask token), then `num_oov_indices` OOV indices, then the tokens.

use super::encoding::OutputMode;
use super::keys::{LookupKey, OovMethod};
use ferroflow_core::{Error, Result, Tensor};
use std::collections::HashMap;

/// The options fixed when the layer is made (Keras's constructor arguments).
#[derive(Clone, Debug)]
pub struct LookupOptions<K> {
    /// The most indices, special ones included (`max_tokens`).
    pub max_tokens: Option<usize>,
    /// How many OOV indices (`num_oov_indices`).
    pub num_oov_indices: usize,
    /// The token that maps to index 0 (`mask_token`).
    pub mask_token: Option<K>,
    /// What the inverse lookup gives for OOV indices (`oov_token`).
    pub oov_token: K,
    /// Indices to tokens instead of tokens to indices (`invert`).
    pub invert: bool,
    /// How indices are encoded (`output_mode`).
    pub output_mode: OutputMode,
    /// Encode to `max_tokens` bins whatever the vocabulary's size (`pad_to_max_tokens`).
    pub pad_to_max_tokens: bool,
    /// How OOV integers pick an OOV index (`oov_method`).
    pub oov_method: OovMethod,
    /// SipHash key for OOV buckets (`salt`; FarmHash when `None`).
    pub salt: Option<[u64; 2]>,
}

/// The learned or given tokens.
#[derive(Clone, Debug)]
pub struct Vocabulary<K> {
    tokens: Vec<K>,
    index: HashMap<K, i64>,
    /// Weights of every index (special ones included) for `tf_idf`.
    pub idf: Option<Vec<f32>>,
}

impl<K: LookupKey> LookupOptions<K> {
    /// Keras's defaults.
    pub fn new() -> Self {
        LookupOptions {
            max_tokens: None,
            num_oov_indices: 1,
            mask_token: None,
            oov_token: K::default_oov(),
            invert: false,
            output_mode: OutputMode::Int,
            pad_to_max_tokens: false,
            oov_method: OovMethod::FloorMod,
            salt: None,
        }
    }

    fn bad(&self, what: String) -> Error {
        Error::invalid(K::CLASS, what)
    }

    /// Checks the combination as Keras's constructor does.
    pub fn validate(&self) -> Result<()> {
        if self.max_tokens.is_some_and(|m| m <= 1) {
            return Err(self.bad(format!(
                "max_tokens must be greater than 1, got {:?}",
                self.max_tokens
            )));
        }
        if self.pad_to_max_tokens && self.max_tokens.is_none() {
            return Err(self.bad("pad_to_max_tokens=True needs max_tokens".into()));
        }
        if self.invert && self.output_mode != OutputMode::Int {
            return Err(self.bad(format!(
                "invert=True needs output_mode 'int', got '{}'",
                self.output_mode.name()
            )));
        }
        Ok(())
    }

    /// Index of the first OOV index.
    pub fn oov_start(&self) -> usize {
        usize::from(self.mask_token.is_some() && self.output_mode == OutputMode::Int)
    }

    /// Index of the first token.
    pub fn token_start(&self) -> usize {
        self.oov_start() + self.num_oov_indices
    }

    /// The special tokens at the start of a full vocabulary listing.
    fn special_tokens(&self) -> Vec<K> {
        let mut v: Vec<K> = self
            .mask_token
            .iter()
            .take(self.oov_start())
            .cloned()
            .collect();
        v.extend(std::iter::repeat_n(
            self.oov_token.clone(),
            self.num_oov_indices,
        ));
        v
    }
}

impl<K: LookupKey> Default for LookupOptions<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> Default for Vocabulary<K> {
    fn default() -> Self {
        Vocabulary {
            tokens: Vec::new(),
            index: HashMap::new(),
            idf: None,
        }
    }
}

impl<K: LookupKey> Vocabulary<K> {
    /// The tokens, without special ones.
    pub fn tokens(&self) -> &[K] {
        &self.tokens
    }

    /// Indices including special ones (`vocabulary_size()`).
    pub fn size(&self, o: &LookupOptions<K>) -> usize {
        self.tokens.len() + o.token_start()
    }

    /// The full listing (`get_vocabulary()`): special tokens, then the tokens.
    pub fn listing(&self, o: &LookupOptions<K>, include_special: bool) -> Vec<K> {
        let mut v = if include_special {
            o.special_tokens()
        } else {
            Vec::new()
        };
        v.extend(self.tokens.iter().cloned());
        v
    }

    /// A vocabulary from a listing (special tokens at its start are dropped, as Keras's
    /// `set_vocabulary`), with idf weights for `tf_idf` (which may come later, from a
    /// file's saved state).
    pub fn from_listing(
        o: &LookupOptions<K>,
        listing: Vec<K>,
        idf: Option<Vec<f64>>,
    ) -> Result<Self> {
        let bad = |w: String| Error::invalid(K::CLASS, w);
        if listing.is_empty() {
            return Err(bad("the vocabulary is empty".into()));
        }
        if o.output_mode != OutputMode::TfIdf && idf.is_some() {
            return Err(bad("idf_weights are only for output_mode 'tf_idf'".into()));
        }
        if let Some(w) = &idf {
            if w.len() != listing.len() {
                return Err(bad(format!(
                    "{} idf_weights for a vocabulary of {}",
                    w.len(),
                    listing.len()
                )));
            }
        }
        let special = o.special_tokens();
        let found_special =
            listing.len() >= special.len() && listing[..special.len()] == special[..];
        let tokens = if found_special {
            listing[special.len()..].to_vec()
        } else {
            listing
        };
        let mut index = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            if index
                .insert(t.clone(), (o.token_start() + i) as i64)
                .is_some()
            {
                return Err(bad(format!("the vocabulary repeats {t:?}")));
            }
        }
        if let Some(m) = &o.mask_token {
            if index.contains_key(m) {
                return Err(bad(format!("the vocabulary holds the mask token {m:?}")));
            }
        }
        if o.invert && index.contains_key(&o.oov_token) {
            return Err(bad(format!(
                "the vocabulary holds the OOV token {:?}",
                o.oov_token
            )));
        }
        let size = o.token_start() + tokens.len();
        if let Some(m) = o.max_tokens.filter(|&m| size > m) {
            return Err(bad(format!(
                "a vocabulary of {size} indices exceeds max_tokens={m}"
            )));
        }
        let idf = idf.map(|w| {
            let (front, value) = if found_special {
                (0, 0.0)
            } else {
                (o.token_start(), w.iter().sum::<f64>() / w.len() as f64)
            };
            let mut full: Vec<f32> = std::iter::repeat_n(value as f32, front).collect();
            full.extend(w.iter().map(|&x| x as f32));
            if o.pad_to_max_tokens {
                full.resize(o.max_tokens.unwrap_or(full.len()).max(full.len()), 0.0);
            }
            full
        });
        Ok(Vocabulary { tokens, index, idf })
    }

    /// Learns a vocabulary from documents (rows of `docs`, each a list of tokens) as
    /// Keras's `adapt`: tokens by falling count, ties by falling token, cut to
    /// `max_tokens`; for `tf_idf`, weights `ln(1 + N / (1 + documents with the token))`.
    pub fn adapt(o: &LookupOptions<K>, docs: &[Vec<K>]) -> Result<Self> {
        let mut counts: HashMap<&K, (u64, u64)> = HashMap::new();
        for doc in docs {
            let mut seen = std::collections::HashSet::new();
            for t in doc {
                let c = counts.entry(t).or_default();
                c.0 += 1;
                if seen.insert(t) {
                    c.1 += 1;
                }
            }
        }
        if let Some(m) = &o.mask_token {
            counts.remove(m);
        }
        counts.remove(&o.oov_token);
        let mut ranked: Vec<(&K, (u64, u64))> = counts.into_iter().collect();
        ranked.sort_by(|a, b| (b.1 .0, b.0).cmp(&(a.1 .0, a.0)));
        if let Some(m) = o.max_tokens {
            ranked.truncate(m.saturating_sub(o.token_start()));
        }
        let tokens: Vec<K> = ranked.iter().map(|(t, _)| (*t).clone()).collect();
        let index = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), (o.token_start() + i) as i64))
            .collect();
        let idf = (o.output_mode == OutputMode::TfIdf).then(|| {
            let n = docs.len() as f64;
            let w: Vec<f32> = ranked
                .iter()
                .map(|(_, (_, df))| (1.0 + n / (1.0 + *df as f64)).ln() as f32)
                .collect();
            let mean = if w.is_empty() {
                0.0
            } else {
                w.iter().sum::<f32>() / w.len() as f32
            };
            let mut full: Vec<f32> = std::iter::repeat_n(mean, o.token_start()).collect();
            full.extend(w);
            if let Some(m) = o.max_tokens.filter(|_| o.pad_to_max_tokens) {
                full.resize(m.max(full.len()), 0.0);
            }
            full
        });
        Ok(Vocabulary { tokens, index, idf })
    }

    /// Indices of `inputs` (tokens to indices): tokens, the mask (0 in `int` mode, else an
    /// index no bin holds), OOV indices (one, a hash bucket of several, or an error when
    /// there are none).
    pub fn lookup(&self, o: &LookupOptions<K>, inputs: &Tensor) -> Result<Vec<i64>> {
        let keys = K::keys(inputs)?;
        let default = if o.num_oov_indices == 1 {
            o.oov_start() as i64
        } else {
            -1
        };
        let mask_value = if o.output_mode == OutputMode::Int {
            0
        } else {
            i64::MAX
        };
        let mut out: Vec<i64> = keys
            .iter()
            .map(|k| match self.index.get(k) {
                Some(&i) => i,
                None if o.mask_token.as_ref() == Some(k) => mask_value,
                None => default,
            })
            .collect();
        let missing: Vec<bool> = out
            .iter()
            .zip(&keys)
            .map(|(&v, k)| v == -1 && o.mask_token.as_ref() != Some(k))
            .collect();
        let oov = |i: usize| missing[i];
        if o.num_oov_indices == 0 {
            let missing: Vec<&K> = (0..out.len())
                .filter(|&i| oov(i))
                .map(|i| &keys[i])
                .take(10)
                .collect();
            if !missing.is_empty() {
                return Err(Error::invalid(
                    K::CLASS,
                    format!("with num_oov_indices=0 all inputs must be in the vocabulary, found OOV values {missing:?}; consider num_oov_indices=1"),
                ));
            }
        } else if o.num_oov_indices > 1 {
            let buckets = K::oov_buckets(inputs, o.num_oov_indices as u64, o.oov_method, o.salt)?;
            for (i, b) in buckets.into_iter().enumerate() {
                if oov(i) {
                    out[i] = b + o.oov_start() as i64;
                }
            }
        }
        Ok(out)
    }

    /// Tokens of `indices` (the inverse lookup): 0 is the mask token when there is one,
    /// token indices their token, anything else the OOV token.
    pub fn invert(&self, o: &LookupOptions<K>, indices: &Tensor) -> Result<Tensor> {
        let ids = i64::keys(indices)?;
        let start = o.token_start() as i64;
        let out = ids
            .iter()
            .map(|&i| match &o.mask_token {
                Some(m) if i == 0 => m.clone(),
                _ => i
                    .checked_sub(start)
                    .and_then(|k| usize::try_from(k).ok())
                    .and_then(|k| self.tokens.get(k))
                    .unwrap_or(&o.oov_token)
                    .clone(),
            })
            .collect();
        K::tensor(out, indices.shape())
    }
}
