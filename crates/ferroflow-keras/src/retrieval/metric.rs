//! `FactorizedTopK` (TFRS's metric): how often a query's true candidate is among the top
//! k of all candidates, for several k at once.

use super::scores::{check_pair, count_above};
use ferroflow_core::{DType, Error, Result, Tensor};

/// Top-k retrieval accuracy over a candidate table: for each query, the true candidate
/// counts as retrieved at `k` when fewer than `k` candidates score higher (ties, to within
/// float rounding of the dot product, go the query's way, as TF's `in_top_k`).
pub struct FactorizedTopK {
    candidates: Tensor,
    ks: Vec<usize>,
    hits: Vec<f64>,
    count: f64,
}

impl FactorizedTopK {
    /// Scores queries against `candidates` `[n, dim]` at each of `ks` (TFRS uses
    /// `[1, 5, 10, 50, 100]`).
    pub fn new(candidates: &Tensor, ks: &[usize]) -> Result<Self> {
        if candidates.rank() != 2 || !candidates.dtype().is_float() || ks.is_empty() {
            return Err(Error::invalid(
                "FactorizedTopK",
                format!(
                    "needs [n, dim] float candidates and at least one k, got {} {:?} and ks {ks:?}",
                    candidates.dtype(),
                    candidates.shape()
                ),
            ));
        }
        Ok(FactorizedTopK {
            candidates: candidates.cast(DType::F32)?.contiguous(),
            ks: ks.to_vec(),
            hits: vec![0.0; ks.len()],
            count: 0.0,
        })
    }

    /// Accumulates a batch: `queries` `[batch, dim]` and each one's true candidate
    /// embedding `true_candidates` `[batch, dim]`.
    pub fn update_state(&mut self, queries: &Tensor, true_candidates: &Tensor) -> Result<()> {
        check_pair("FactorizedTopK", queries, &self.candidates)?;
        if queries.shape() != true_candidates.shape() {
            return Err(Error::shapes(
                "FactorizedTopK",
                "queries and true candidates must both be [batch, dim]",
                queries.shape(),
                true_candidates.shape(),
            ));
        }
        let products = queries
            .cast(DType::F32)?
            .mul(&true_candidates.cast(DType::F32)?)?;
        let positive = products.sum(-1, false)?.to_vec::<f32>()?;
        // The table's scores are summed in another order than these: a candidate beats
        // the positive only by more than the rounding error bound of a dot product.
        let dim = queries.shape()[1] as f32;
        let slack: Vec<f32> = products
            .abs()?
            .sum(-1, false)?
            .to_vec::<f32>()?
            .into_iter()
            .map(|m| dim * f32::EPSILON * m)
            .collect();
        let above = count_above(queries, &self.candidates, &positive, &slack)?;
        for (h, &k) in self.hits.iter_mut().zip(&self.ks) {
            *h += above.iter().filter(|&&a| a < k).count() as f64;
        }
        self.count += above.len() as f64;
        Ok(())
    }

    /// `(name, accuracy)` for each k, named as TFRS logs them
    /// (`factorized_top_k/top_100_categorical_accuracy`).
    pub fn results(&self) -> Vec<(String, f64)> {
        self.ks
            .iter()
            .zip(&self.hits)
            .map(|(k, h)| {
                (
                    format!("factorized_top_k/top_{k}_categorical_accuracy"),
                    if self.count > 0.0 {
                        h / self.count
                    } else {
                        0.0
                    },
                )
            })
            .collect()
    }

    /// Clears the counts.
    pub fn reset_state(&mut self) {
        self.hits.iter_mut().for_each(|h| *h = 0.0);
        self.count = 0.0;
    }
}
