//! `BruteForce`: an exact top-k index over candidate embeddings, as a layer, so that a
//! model `query features -> query tower -> BruteForce` answers `predict` (and
//! `ferroflow serve`'s `:predict`) with the top identifiers and their scores.

use super::scores::{check_pair, top_k};
use crate::config::{dtype_policy, ConfigReader, Map};
use crate::layer::{expect_inputs, CallContext, Layer, LayerBase, TensorSpec};
use ferroflow_core::{DType, Error, Result, Tensor};
use serde_json::Value;
use std::sync::RwLock;

/// The asset holding the identifiers (`.npy`: int64, or unicode/bytes strings).
const IDENTIFIERS: &str = "identifiers.npy";
/// The named state holding the candidate embeddings.
const CANDIDATES: &str = "vars/candidates";

/// An exact nearest-neighbour index by dot product (TFRS's `BruteForce`): takes query
/// embeddings `[batch, dim]` and returns the `k` best scores `[batch, k]` (float32) and
/// the identifiers of those candidates `[batch, k]` (strings, or int64 row numbers when
/// none were given). Scoring runs in blocks: a batch against millions of candidates never
/// holds the whole score matrix.
pub struct BruteForce {
    base: LayerBase,
    k: usize,
    /// The identifiers' dtype, part of the config so a loaded model knows its outputs.
    id_dtype: RwLock<DType>,
    candidates: RwLock<Option<Tensor>>,
    identifiers: RwLock<Option<Tensor>>,
}

impl BruteForce {
    /// An empty index answering the top `k` (fill it with [`BruteForce::index`]).
    pub fn new(k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::invalid("BruteForce", "k must be positive"));
        }
        Ok(BruteForce {
            base: LayerBase::new("BruteForce", None),
            k,
            id_dtype: RwLock::new(DType::I64),
            candidates: RwLock::new(None),
            identifiers: RwLock::new(None),
        })
    }

    /// Gives the layer a name.
    pub fn name(mut self, name: &str) -> Self {
        self.base.set_name(name);
        self
    }

    /// Rebuilds from a config (`k`, `identifier_dtype`).
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("BruteForce", config)?;
        let mut l = BruteForce::new(r.usize_req("k")?)?;
        l.base = LayerBase::from_reader("BruteForce", &r);
        let dt = match r.str_or("identifier_dtype", "int64")?.as_str() {
            "string" => DType::String,
            "int64" => DType::I64,
            other => {
                return Err(Error::invalid(
                    "BruteForce",
                    format!("option 'identifier_dtype': '{other}' is not string or int64"),
                ))
            }
        };
        *l.id_dtype.get_mut().unwrap_or_else(|e| e.into_inner()) = dt;
        r.finish()?;
        Ok(l)
    }

    /// How many results a query returns.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Replaces the index with `candidates` `[n, dim]` and their `identifiers` `[n]`
    /// (strings or integers; row numbers when `None`). Nothing changes on an error.
    pub fn index(&self, candidates: &Tensor, identifiers: Option<&Tensor>) -> Result<()> {
        let candidates = checked_candidates(candidates)?;
        let n = candidates.shape()[0];
        if n < self.k {
            return Err(Error::invalid(
                "BruteForce",
                format!(
                    "layer '{}' answers the top {} but was given {n} candidates",
                    self.base.name(),
                    self.k
                ),
            ));
        }
        let ids = identifiers.map(checked_identifiers).transpose()?;
        if let Some(ids) = &ids {
            if ids.shape()[0] != n {
                return Err(Error::invalid(
                    "BruteForce",
                    format!("{} identifiers for {n} candidates", ids.shape()[0]),
                ));
            }
        }
        *self.id_dtype.write().unwrap_or_else(|e| e.into_inner()) =
            ids.as_ref().map_or(DType::I64, Tensor::dtype);
        *self.candidates.write().unwrap_or_else(|e| e.into_inner()) = Some(candidates);
        *self.identifiers.write().unwrap_or_else(|e| e.into_inner()) = ids;
        Ok(())
    }

    /// The number of indexed candidates (0 before [`BruteForce::index`]).
    pub fn len(&self) -> usize {
        self.candidates
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |c| c.shape()[0])
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The top `k` of each query (any `k` up to the number of candidates; the layer's
    /// call uses its own): scores `[batch, k]` and identifiers `[batch, k]`.
    pub fn query(&self, queries: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
        let candidates = self.candidates.read().unwrap_or_else(|e| e.into_inner());
        let Some(candidates) = candidates.as_ref() else {
            return Err(Error::invalid(
                "BruteForce",
                format!(
                    "layer '{}' has no candidates: call index() first",
                    self.base.name()
                ),
            ));
        };
        check_pair("BruteForce", queries, candidates)?;
        let batch = queries.shape()[0];
        let (scores, rows) = top_k(queries, candidates, k)?;
        let rows: Vec<i64> = rows.into_iter().map(|r| r as i64).collect();
        let rows = Tensor::from_vec(rows, &[batch, k])?;
        let ids = match self
            .identifiers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(ids) if ids.shape()[0] != candidates.shape()[0] => {
                return Err(Error::invalid(
                    "BruteForce",
                    format!(
                        "layer '{}' holds {} identifiers for {} candidates",
                        self.base.name(),
                        ids.shape()[0],
                        candidates.shape()[0]
                    ),
                ))
            }
            Some(ids) => ids.gather(&rows, 0)?,
            None => rows,
        };
        Ok((Tensor::from_vec(scores, &[batch, k])?, ids))
    }
}

/// Candidates as a `[n, dim]` float32 table.
fn checked_candidates(c: &Tensor) -> Result<Tensor> {
    if c.rank() != 2 || !c.dtype().is_float() {
        return Err(Error::invalid(
            "BruteForce",
            format!(
                "candidates must be a [n, dim] float table, got {} {:?}",
                c.dtype(),
                c.shape()
            ),
        ));
    }
    c.cast(DType::F32).map(|c| c.contiguous())
}

/// Identifiers as a `[n]` string or int64 vector.
fn checked_identifiers(ids: &Tensor) -> Result<Tensor> {
    let ok = ids.rank() == 1 && (ids.dtype() == DType::String || ids.dtype().is_int());
    if !ok {
        return Err(Error::invalid(
            "BruteForce",
            format!(
                "identifiers must be a [n] vector of strings or integers, got {} {:?}",
                ids.dtype(),
                ids.shape()
            ),
        ));
    }
    match ids.dtype() {
        DType::String => Ok(ids.contiguous()),
        _ => ids.cast(DType::I64),
    }
}

impl Layer for BruteForce {
    crate::layers::layer_identity!("BruteForce");

    fn runs_on_host(&self) -> bool {
        true
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let (scores, ids) = self.query(&inputs[0], self.k)?;
        Ok(vec![scores, ids])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let batch = inputs
            .first()
            .and_then(|s| s.shape.first().copied().flatten());
        let shape = vec![batch, Some(self.k)];
        let id_dtype = *self.id_dtype.read().unwrap_or_else(|e| e.into_inner());
        Ok(vec![
            TensorSpec::new(shape.clone(), DType::F32),
            TensorSpec::new(shape, id_dtype),
        ])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("dtype".into(), dtype_policy("float32"));
        m.insert("k".into(), Value::from(self.k));
        let dt = *self.id_dtype.read().unwrap_or_else(|e| e.into_inner());
        let name = if dt == DType::String {
            "string"
        } else {
            "int64"
        };
        m.insert("identifier_dtype".into(), Value::from(name));
        m
    }

    fn saved_state(&self) -> Vec<(String, Tensor)> {
        self.candidates
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|c| (CANDIDATES.to_string(), c.clone()))
            .collect()
    }

    fn restore_state(&self, path: &str, value: Tensor) -> Result<()> {
        if path != CANDIDATES {
            return Err(Error::invalid(
                "BruteForce",
                format!("layer '{}' keeps no state at '{path}'", self.base.name()),
            ));
        }
        let c = checked_candidates(&value)?;
        *self.candidates.write().unwrap_or_else(|e| e.into_inner()) = Some(c);
        Ok(())
    }

    fn assets(&self) -> Vec<(String, Vec<u8>)> {
        self.identifiers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|ids| ferroflow_core::npy::to_npy_bytes(ids).ok())
            .map(|b| (IDENTIFIERS.to_string(), b))
            .collect()
    }

    fn restore_asset(&self, path: &str, bytes: &[u8]) -> Result<()> {
        if path != IDENTIFIERS {
            return Err(Error::invalid(
                "BruteForce",
                format!("layer '{}' keeps no asset at '{path}'", self.base.name()),
            ));
        }
        let ids = checked_identifiers(&ferroflow_core::npy::from_npy_bytes(bytes, path)?)?;
        *self.id_dtype.write().unwrap_or_else(|e| e.into_inner()) = ids.dtype();
        *self.identifiers.write().unwrap_or_else(|e| e.into_inner()) = Some(ids);
        Ok(())
    }
}
