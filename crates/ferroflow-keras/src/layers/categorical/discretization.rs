//! `Discretization`: continuous values to bins, with boundaries given or learned by
//! `adapt` from approximate quantiles computed as Keras 3 computes them (a weighted
//! summary of `1/epsilon` points per batch, merged and compressed by interpolating
//! cumulative weights), so adapted layers get Keras's boundaries.

use super::encoding::{encode, OutputMode};
use super::hashing::encoded_spec;
use crate::config::{ConfigReader, Map};
use crate::layer::{expect_inputs, CallContext, Layer, LayerBase, TensorSpec};
use ferroflow_core::{DType, Error, Result, Tensor};
use serde_json::Value;
use std::sync::RwLock;

/// A weighted quantile summary: sorted values and the count each stands for.
#[derive(Clone, Debug, Default, PartialEq)]
struct Summary {
    values: Vec<f32>,
    weights: Vec<f32>,
}

impl Summary {
    /// One batch summarised to about `1/epsilon` evenly spaced order statistics.
    fn of(mut data: Vec<f32>, epsilon: f64) -> Summary {
        data.sort_by(f32::total_cmp);
        let n = data.len();
        // As Keras: `n / (1 / epsilon)` points apart (not `n * epsilon`, which can round
        // differently).
        let step = (n as f64 / (1.0 / epsilon)).max(1.0);
        let (first, stride) = ((step - 1.0) as usize, step as usize);
        let values: Vec<f32> = data
            .iter()
            .skip(first)
            .step_by(stride.max(1))
            .copied()
            .collect();
        let weights = vec![step as f32; values.len()];
        Summary { values, weights }
    }

    /// This summary and `other` merged in value order, then compressed.
    fn merge(&self, other: &Summary, epsilon: f64) -> Summary {
        let mut pairs: Vec<(f32, f32)> = self
            .values
            .iter()
            .zip(&self.weights)
            .chain(other.values.iter().zip(&other.weights))
            .map(|(&v, &w)| (v, w))
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (values, weights) = pairs.into_iter().unzip();
        Summary { values, weights }.compress(epsilon)
    }

    /// Re-samples the summary at cumulative-weight fractions `epsilon, 2 epsilon, ..., 1`
    /// (linear interpolation, as `np.interp`); a summary of fewer than `1/epsilon` points
    /// is kept as it is.
    fn compress(self, epsilon: f64) -> Summary {
        if (self.values.len() as f64) * epsilon < 1.0 {
            return self;
        }
        let mut cum = Vec::with_capacity(self.weights.len());
        let mut acc = 0.0f32;
        for &w in &self.weights {
            acc += w;
            cum.push(acc);
        }
        let total = acc;
        let fractions: Vec<f64> = cum.iter().map(|&c| f64::from(c / total)).collect();
        let values: Vec<f64> = self.values.iter().map(|&v| f64::from(v)).collect();
        let cum: Vec<f64> = cum.iter().map(|&c| f64::from(c)).collect();
        let targets = arange_fractions(epsilon);
        let new_values: Vec<f32> = targets
            .iter()
            .map(|&p| interp(p, &fractions, &values) as f32)
            .collect();
        let new_cum: Vec<f64> = targets
            .iter()
            .map(|&p| interp(p, &fractions, &cum))
            .collect();
        let new_weights = new_cum
            .iter()
            .enumerate()
            .map(|(i, &c)| (c - if i == 0 { 0.0 } else { new_cum[i - 1] }) as f32)
            .collect();
        Summary {
            values: new_values,
            weights: new_weights,
        }
    }
}

/// `epsilon + np.arange(0, 1, epsilon)`: `ceil(1/epsilon)` fractions.
fn arange_fractions(epsilon: f64) -> Vec<f64> {
    let n = (1.0 / epsilon).ceil() as usize;
    (0..n).map(|i| epsilon + i as f64 * epsilon).collect()
}

/// `np.interp(x, xp, fp)` for non-decreasing `xp`: the ends clamp, and between the last
/// `xp[j] <= x` and the next point the value is linear.
fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let last = xp.len() - 1;
    if x.is_nan() {
        return x;
    }
    if x < xp[0] {
        return fp[0];
    }
    if x >= xp[last] {
        return fp[last];
    }
    let j = xp.partition_point(|&v| v <= x) - 1;
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    slope * (x - xp[j]) + fp[j]
}

/// `keras.layers.Discretization`: each value's bin among `bin_boundaries` (bin i holds
/// `[b[i-1], b[i])`, the ends open), as int32 indices or encoded (`one_hot`,
/// `multi_hot`, `count`).
pub struct Discretization {
    base: LayerBase,
    boundaries: RwLock<Option<Vec<f64>>>,
    num_bins: Option<usize>,
    epsilon: f64,
    output_mode: OutputMode,
    summary: RwLock<Summary>,
}

impl Discretization {
    /// Bins with the given boundaries.
    pub fn with_boundaries(bin_boundaries: Vec<f64>) -> Self {
        Self::make(Some(bin_boundaries), None)
    }

    /// `num_bins` bins whose boundaries [`Discretization::adapt`] learns.
    pub fn with_num_bins(num_bins: usize) -> Self {
        Self::make(None, Some(num_bins))
    }

    fn make(boundaries: Option<Vec<f64>>, num_bins: Option<usize>) -> Self {
        Discretization {
            base: LayerBase::new("Discretization", None),
            boundaries: RwLock::new(boundaries),
            num_bins,
            epsilon: 0.01,
            output_mode: OutputMode::Int,
            summary: RwLock::new(Summary::default()),
        }
    }

    /// The quantile error tolerance of `adapt` (Keras's `epsilon`, 0.01).
    pub fn epsilon(mut self, epsilon: f64) -> Result<Self> {
        if !(epsilon > 0.0 && epsilon <= 1.0) {
            return Err(Error::invalid(
                "Discretization",
                format!("epsilon must be in (0, 1], got {epsilon}"),
            ));
        }
        self.epsilon = epsilon;
        Ok(self)
    }

    /// How bins are encoded (`int`, `one_hot`, `multi_hot` or `count`).
    pub fn output_mode(mut self, m: OutputMode) -> Result<Self> {
        self.output_mode = OutputMode::parse("Discretization", m.name(), &OutputMode::BASIC)?;
        Ok(self)
    }

    /// Rebuilds from a Keras config (after `adapt`, Keras saves both `num_bins` and the
    /// learned `bin_boundaries`).
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Discretization", config)?;
        let boundaries = match r.raw("bin_boundaries") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| {
                        v.as_f64().ok_or_else(|| {
                            Error::invalid(
                                "Discretization",
                                format!("option 'bin_boundaries': {v} is not a number"),
                            )
                        })
                    })
                    .collect::<Result<Vec<f64>>>()?,
            ),
            Some(v) => {
                return Err(Error::invalid(
                    "Discretization",
                    format!("option 'bin_boundaries': expected a list, got {v}"),
                ))
            }
        };
        let num_bins = match r.raw("num_bins") {
            None | Some(Value::Null) => None,
            Some(_) => Some(r.usize_req("num_bins")?),
        };
        if boundaries.is_none() && num_bins.is_none() {
            return Err(Error::invalid(
                "Discretization",
                "set either 'num_bins' or 'bin_boundaries'",
            ));
        }
        let mut l = Self::make(boundaries, num_bins)
            .epsilon(r.f64_or("epsilon", 0.01)?)?
            .output_mode(OutputMode::parse(
                "Discretization",
                &r.str_or("output_mode", "int")?,
                &OutputMode::BASIC,
            )?)?;
        l.base = LayerBase::from_reader("Discretization", &r);
        r.require("sparse", &Value::Bool(false))?;
        r.finish()?;
        Ok(l)
    }

    /// Learns `num_bins` boundaries from the quantiles of `data` (any shape).
    pub fn adapt(&self, data: &Tensor) -> Result<()> {
        self.adapt_batches(std::iter::once(data.clone()))
    }

    /// Learns the boundaries from batches (`adapt` on a dataset), each summarised and
    /// merged into the summary of those before it, as Keras does.
    pub fn adapt_batches(&self, batches: impl IntoIterator<Item = Tensor>) -> Result<()> {
        let Some(num_bins) = self.num_bins else {
            return Err(Error::invalid(
                "Discretization",
                format!(
                    "layer '{}' was given bin_boundaries; adapt needs num_bins",
                    self.base.name()
                ),
            ));
        };
        let mut summary = Summary::default();
        for b in batches {
            let values = b.cast(DType::F32)?.to_vec::<f32>()?;
            summary = Summary::of(values, self.epsilon).merge(&summary, self.epsilon);
        }
        let bins = summary.clone().compress(1.0 / num_bins.max(1) as f64);
        let mut boundaries: Vec<f64> = bins.values.iter().map(|&v| f64::from(v)).collect();
        boundaries.pop();
        *self.summary.write().unwrap_or_else(|e| e.into_inner()) = summary;
        *self.boundaries.write().unwrap_or_else(|e| e.into_inner()) = Some(boundaries);
        Ok(())
    }

    /// The boundaries (given, or learned by `adapt`).
    pub fn bin_boundaries(&self) -> Option<Vec<f64>> {
        self.boundaries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn depth(&self) -> usize {
        self.bin_boundaries()
            .map_or(self.num_bins.unwrap_or(1), |b| b.len() + 1)
    }
}

/// Each value's bin: how many boundaries are at or below it (TF's `Bucketize`, comparing
/// in float32; NaN goes to the last bin).
fn bucketize(x: &Tensor, boundaries: &[f64]) -> Result<Tensor> {
    let b: Vec<f32> = boundaries.iter().map(|&v| v as f32).collect();
    let out: Vec<i64> = x
        .cast(DType::F32)?
        .to_vec::<f32>()?
        .iter()
        .map(|&v| b.iter().position(|&e| v < e).unwrap_or(b.len()) as i64)
        .collect();
    Tensor::from_vec(out, x.shape())
}

impl Layer for Discretization {
    super::super::layer_identity!("Discretization");

    fn runs_on_host(&self) -> bool {
        true
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        if x.dtype() == DType::String {
            return Err(Error::invalid(
                "Discretization",
                format!(
                    "layer '{}' takes numbers, got {} of shape {:?}",
                    self.base.name(),
                    x.dtype(),
                    x.shape()
                ),
            ));
        }
        let Some(boundaries) = self.bin_boundaries() else {
            return Err(Error::invalid(
                "Discretization",
                format!(
                    "layer '{}' has no bin boundaries: pass bin_boundaries or call adapt first",
                    self.base.name()
                ),
            ));
        };
        let bins = bucketize(x, &boundaries)?;
        Ok(vec![encode(
            &bins,
            self.output_mode,
            boundaries.len() + 1,
            None,
            DType::I32,
        )?])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        Ok(vec![encoded_spec(
            &inputs[0],
            self.output_mode,
            self.depth(),
            DType::I32,
        )])
    }

    // Keras's Discretization writes its own config: name and dtype, no `trainable`.
    fn includes_base_config(&self) -> bool {
        false
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("name".into(), Value::from(self.base.name()));
        m.insert("dtype".into(), Value::from("float32"));
        m.insert(
            "bin_boundaries".into(),
            self.bin_boundaries().map_or(Value::Null, Value::from),
        );
        m.insert(
            "num_bins".into(),
            self.num_bins.map_or(Value::Null, Value::from),
        );
        m.insert("epsilon".into(), Value::from(self.epsilon));
        m.insert("output_mode".into(), Value::from(self.output_mode.name()));
        m.insert("sparse".into(), Value::from(false));
        m
    }

    fn adapt(&self, data: &Tensor) -> Result<()> {
        Discretization::adapt(self, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interp_and_fractions_follow_numpy() {
        let xp = [0.1, 0.5, 0.5, 1.0];
        let fp = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(interp(0.0, &xp, &fp), 1.0);
        assert_eq!(interp(0.3, &xp, &fp), 1.5);
        assert_eq!(interp(0.5, &xp, &fp), 3.0);
        assert_eq!(interp(2.0, &xp, &fp), 4.0);
        assert_eq!(arange_fractions(0.25), vec![0.25, 0.5, 0.75, 1.0]);
        assert_eq!(arange_fractions(0.01).len(), 100);
    }

    #[test]
    fn bins_include_the_left_boundary() {
        let x = Tensor::from_vec(vec![-1.0f32, 0.0, 0.5, 1.0, 2.0, f32::NAN], &[6]).unwrap();
        let b = bucketize(&x, &[0.0, 1.0]).unwrap();
        assert_eq!(b.to_vec::<i64>().unwrap(), [0, 1, 1, 2, 2, 2]);
    }
}
