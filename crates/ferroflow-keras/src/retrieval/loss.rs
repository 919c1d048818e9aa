//! The in-batch softmax retrieval loss (TFRS's `tasks.Retrieval`): each query's own
//! candidate is the positive and the batch's other candidates are its negatives.

use ferroflow_core::{CmpOp, Error, Result, Tensor};

/// How the per-query losses are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetrievalReduction {
    /// Their sum (TFRS's default: `CategoricalCrossentropy(reduction=SUM)`).
    Sum,
    /// Their weighted sum over the batch size (Keras's `sum_over_batch_size`).
    Mean,
}

/// A logit this low takes a candidate out of the softmax (TFRS's `MIN_FLOAT`).
const MASKED_LOGIT: f64 = f32::MIN as f64 / 100.0;

/// The retrieval task's loss: softmax cross-entropy of `query . candidate` logits over
/// the batch, the diagonal being the positives.
#[derive(Clone, Debug)]
pub struct Retrieval {
    temperature: Option<f64>,
    remove_accidental_hits: bool,
    reduction: RetrievalReduction,
}

impl Default for Retrieval {
    fn default() -> Self {
        Retrieval {
            temperature: None,
            remove_accidental_hits: false,
            reduction: RetrievalReduction::Sum,
        }
    }
}

impl Retrieval {
    /// TFRS's defaults: no temperature, accidental hits kept, summed over the batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Divides the logits by `t` (sharper softmax below 1).
    pub fn temperature(mut self, t: f64) -> Result<Self> {
        if !(t > 0.0 && t.is_finite()) {
            return Err(Error::invalid(
                "Retrieval",
                format!("temperature must be positive, got {t}"),
            ));
        }
        self.temperature = Some(t);
        Ok(self)
    }

    /// Drops from each query's negatives the other rows holding its positive's
    /// identifier (the same item twice in a batch), given ids to [`Retrieval::loss`].
    pub fn remove_accidental_hits(mut self, on: bool) -> Self {
        self.remove_accidental_hits = on;
        self
    }

    /// How the per-query losses are combined.
    pub fn reduction(mut self, r: RetrievalReduction) -> Self {
        self.reduction = r;
        self
    }

    /// The loss of a batch: `queries` and `candidates` are `[batch, dim]` embeddings
    /// (row i of each is a positive pair); `candidate_ids` `[batch]` is needed when
    /// accidental hits are removed; `sample_weight` `[batch]` weighs each query;
    /// `candidate_sampling_probability` `[batch]` (how likely each candidate is to be in a
    /// batch, such as its frequency) subtracts `log p` from its logits, TFRS's correction of
    /// the in-batch softmax's bias against popular candidates. Differentiable in both
    /// embeddings.
    pub fn loss(
        &self,
        queries: &Tensor,
        candidates: &Tensor,
        candidate_ids: Option<&Tensor>,
        sample_weight: Option<&Tensor>,
        candidate_sampling_probability: Option<&Tensor>,
    ) -> Result<Tensor> {
        let ok = queries.rank() == 2 && queries.shape() == candidates.shape();
        if !ok {
            return Err(Error::shapes(
                "Retrieval",
                "queries and candidates must both be [batch, dim]",
                queries.shape(),
                candidates.shape(),
            ));
        }
        let batch = queries.shape()[0];
        let scale = self.temperature.map_or(1.0, |t| 1.0 / t);
        let mut logits = queries.matmul_t(candidates, false, true)?;
        let mut positives = queries.mul(candidates)?.sum(-1, false)?;
        if scale != 1.0 {
            logits = logits.mul_scalar(scale)?;
            positives = positives.mul_scalar(scale)?;
        }
        if let Some(p) = candidate_sampling_probability {
            per_query_vector("candidate_sampling_probability must be [batch]", p, batch)?;
            let dt = logits.dtype();
            let (lo, hi) = (
                Tensor::scalar(1e-6f64).cast(dt)?,
                Tensor::scalar(1.0f64).cast(dt)?,
            );
            let log_p = p.cast(dt)?.clip(&lo, &hi)?.log()?;
            logits = logits.sub(&log_p.reshape(&[1, batch as isize])?)?;
            positives = positives.sub(&log_p)?;
        }
        if self.remove_accidental_hits {
            let ids = candidate_ids.ok_or_else(|| {
                Error::invalid(
                    "Retrieval",
                    "remove_accidental_hits needs the candidate ids",
                )
            })?;
            per_query_vector("candidate ids must be [batch]", ids, batch)?;
            let mask = accidental_hits(ids)?.cast(logits.dtype())?;
            logits = logits.add(&mask.mul_scalar(MASKED_LOGIT)?)?;
        }
        let mut per_query = logits.logsumexp(-1, false)?.sub(&positives)?;
        if let Some(w) = sample_weight {
            per_query_vector("sample_weight must be [batch]", w, batch)?;
            per_query = per_query.mul(&w.cast(per_query.dtype())?)?;
        }
        let total = per_query.sum(-1, false)?;
        match self.reduction {
            RetrievalReduction::Sum => Ok(total),
            RetrievalReduction::Mean => total.mul_scalar(1.0 / batch.max(1) as f64),
        }
    }
}

/// `[batch, batch]` true where two different rows hold the same identifier.
fn accidental_hits(ids: &Tensor) -> Result<Tensor> {
    let n = ids.shape()[0];
    let col = ids.reshape(&[n as isize, 1])?;
    let row = ids.reshape(&[1, n as isize])?;
    let same = col.compare(CmpOp::Equal, &row)?;
    let off: Vec<bool> = (0..n * n).map(|i| i / n != i % n).collect();
    let off_diagonal = Tensor::from_vec(off, &[n, n])?;
    same.logical_and(&off_diagonal)
}

/// Checks that `t` holds one value per query (`[batch]`); `msg` says which input.
fn per_query_vector(msg: &'static str, t: &Tensor, batch: usize) -> Result<()> {
    if t.shape() == [batch] {
        return Ok(());
    }
    Err(Error::shapes("Retrieval", msg, t.shape(), &[batch]))
}
