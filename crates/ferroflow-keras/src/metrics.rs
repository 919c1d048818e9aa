//! Stateful metrics with Keras names: accumulate over batches, `result()`, reset per epoch.

use ferroflow_core::{Error, Result, Tensor};

/// A Keras metric.
pub trait Metric: Send {
    /// The name used in logs (`"accuracy"`, `"val_accuracy"` for validation).
    fn name(&self) -> &str;
    /// Accumulates one batch.
    fn update_state(
        &mut self,
        y_true: &Tensor,
        y_pred: &Tensor,
        sample_weight: Option<&[f64]>,
    ) -> Result<()>;
    /// The value so far.
    fn result(&self) -> f64;
    /// Clears the state.
    fn reset_state(&mut self);
}

/// Rows of a prediction: `(rows, cols)` with `cols` the last dimension.
fn rows(t: &Tensor) -> (usize, usize) {
    let cols = if t.rank() == 0 {
        1
    } else {
        t.shape()[t.rank() - 1]
    };
    (t.numel() / cols.max(1), cols)
}

fn weight(sw: Option<&[f64]>, i: usize) -> f64 {
    sw.and_then(|w| w.get(i).copied()).unwrap_or(1.0)
}

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// A weighted mean of per-sample values.
#[derive(Clone, Debug, Default)]
struct MeanState {
    total: f64,
    count: f64,
}

impl MeanState {
    fn add(&mut self, v: f64, w: f64) {
        self.total += v * w;
        self.count += w;
    }

    fn value(&self) -> f64 {
        if self.count == 0.0 {
            0.0
        } else {
            self.total / self.count
        }
    }
}

/// What a [`MeanMetric`] averages per sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SampleFn {
    /// Prediction equals label exactly.
    Accuracy,
    /// `pred > threshold` equals label.
    BinaryAccuracy(f64),
    /// argmax(pred) == argmax(label).
    CategoricalAccuracy,
    /// argmax(pred) == label.
    SparseCategoricalAccuracy,
    /// label in the top k of pred (one-hot labels).
    TopKCategoricalAccuracy(usize),
    /// label in the top k of pred (integer labels).
    SparseTopKCategoricalAccuracy(usize),
    /// Mean squared error per sample.
    MeanSquaredError,
    /// Mean absolute error per sample.
    MeanAbsoluteError,
    /// Picks accuracy flavour from the shapes on first use (Keras's `"accuracy"` string).
    AutoAccuracy,
}

/// A metric that is the mean of a per-sample value.
pub struct MeanMetric {
    name: String,
    f: SampleFn,
    state: MeanState,
}

impl MeanMetric {
    /// A mean metric named `name` computing `f`.
    pub fn new(name: &str, f: SampleFn) -> Self {
        MeanMetric {
            name: name.to_string(),
            f,
            state: MeanState::default(),
        }
    }

    fn in_top_k(row: &[f64], label: usize, k: usize) -> bool {
        let target = row[label];
        row.iter().filter(|&&v| v > target).count() < k
    }
}

impl Metric for MeanMetric {
    fn name(&self) -> &str {
        &self.name
    }

    fn update_state(&mut self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&[f64]>) -> Result<()> {
        let (n, c) = rows(y_pred);
        let p = y_pred.to_f64_vec();
        let y = y_true.to_f64_vec();
        let mut f = self.f;
        if f == SampleFn::AutoAccuracy {
            f = if c == 1 {
                SampleFn::BinaryAccuracy(0.5)
            } else if y.len() == p.len() {
                SampleFn::CategoricalAccuracy
            } else {
                SampleFn::SparseCategoricalAccuracy
            };
            self.f = f;
        }
        let per_row_labels = matches!(
            f,
            SampleFn::SparseCategoricalAccuracy | SampleFn::SparseTopKCategoricalAccuracy(_)
        );
        let want = if per_row_labels { n } else { n * c };
        if y.len() != want {
            return Err(Error::shapes(
                "metric",
                "labels do not match predictions",
                y_true.shape(),
                y_pred.shape(),
            ));
        }
        for i in 0..n {
            let row = &p[i * c..(i + 1) * c];
            let w = weight(sw, i);
            let v = match f {
                SampleFn::Accuracy => {
                    let yr = &y[i * c..(i + 1) * c];
                    row.iter().zip(yr).filter(|(a, b)| a == b).count() as f64 / c as f64
                }
                SampleFn::BinaryAccuracy(t) => {
                    let yr = &y[i * c..(i + 1) * c];
                    row.iter()
                        .zip(yr)
                        .filter(|(a, b)| ((**a > t) as u8 as f64) == **b)
                        .count() as f64
                        / c as f64
                }
                SampleFn::CategoricalAccuracy => {
                    (argmax(row) == argmax(&y[i * c..(i + 1) * c])) as u8 as f64
                }
                SampleFn::SparseCategoricalAccuracy => (argmax(row) as f64 == y[i]) as u8 as f64,
                SampleFn::TopKCategoricalAccuracy(k) => {
                    Self::in_top_k(row, argmax(&y[i * c..(i + 1) * c]), k) as u8 as f64
                }
                SampleFn::SparseTopKCategoricalAccuracy(k) => {
                    let l = y[i];
                    (l >= 0.0 && (l as usize) < c && Self::in_top_k(row, l as usize, k)) as u8
                        as f64
                }
                SampleFn::MeanSquaredError => {
                    row.iter()
                        .zip(&y[i * c..(i + 1) * c])
                        .map(|(a, b)| (a - b).powi(2))
                        .sum::<f64>()
                        / c as f64
                }
                SampleFn::MeanAbsoluteError => {
                    row.iter()
                        .zip(&y[i * c..(i + 1) * c])
                        .map(|(a, b)| (a - b).abs())
                        .sum::<f64>()
                        / c as f64
                }
                SampleFn::AutoAccuracy => unreachable!("resolved above"),
            };
            self.state.add(v, w);
        }
        Ok(())
    }

    fn result(&self) -> f64 {
        self.state.value()
    }

    fn reset_state(&mut self) {
        self.state = MeanState::default();
    }
}

/// The running mean of a scalar (the `loss` entry of the logs).
pub struct Mean {
    name: String,
    state: MeanState,
}

impl Mean {
    /// A mean tracker named `name`.
    pub fn new(name: &str) -> Self {
        Mean {
            name: name.to_string(),
            state: MeanState::default(),
        }
    }

    /// Adds a value with a weight (number of samples).
    pub fn add(&mut self, v: f64, w: f64) {
        self.state.add(v, w);
    }
}

impl Metric for Mean {
    fn name(&self) -> &str {
        &self.name
    }

    fn update_state(&mut self, _y: &Tensor, y_pred: &Tensor, sw: Option<&[f64]>) -> Result<()> {
        for (i, v) in y_pred.to_f64_vec().into_iter().enumerate() {
            self.state.add(v, weight(sw, i));
        }
        Ok(())
    }

    fn result(&self) -> f64 {
        self.state.value()
    }

    fn reset_state(&mut self) {
        self.state = MeanState::default();
    }
}

/// Binary confusion counts at thresholds: Precision, Recall and AUC share them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Confusion {
    Precision,
    Recall,
    Auc,
}

/// Precision, Recall (threshold 0.5) or ROC AUC (200 thresholds, trapezoidal), like Keras.
pub struct ConfusionMetric {
    name: String,
    kind: Confusion,
    thresholds: Vec<f64>,
    tp: Vec<f64>,
    fp: Vec<f64>,
    tn: Vec<f64>,
    fn_: Vec<f64>,
}

impl ConfusionMetric {
    fn with(name: &str, kind: Confusion, thresholds: Vec<f64>) -> Self {
        let n = thresholds.len();
        ConfusionMetric {
            name: name.to_string(),
            kind,
            thresholds,
            tp: vec![0.0; n],
            fp: vec![0.0; n],
            tn: vec![0.0; n],
            fn_: vec![0.0; n],
        }
    }

    /// `Precision()` at threshold 0.5.
    pub fn precision(name: &str) -> Self {
        Self::with(name, Confusion::Precision, vec![0.5])
    }

    /// `Recall()` at threshold 0.5.
    pub fn recall(name: &str) -> Self {
        Self::with(name, Confusion::Recall, vec![0.5])
    }

    /// `AUC(num_thresholds)` (ROC curve, Keras's default 200).
    pub fn auc(name: &str, num_thresholds: usize) -> Self {
        let n = num_thresholds.max(3);
        let mut t = vec![-1e-7];
        t.extend((1..n - 1).map(|i| i as f64 / (n - 1) as f64));
        t.push(1.0 + 1e-7);
        Self::with(name, Confusion::Auc, t)
    }
}

impl Metric for ConfusionMetric {
    fn name(&self) -> &str {
        &self.name
    }

    fn update_state(&mut self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&[f64]>) -> Result<()> {
        let p = y_pred.to_f64_vec();
        let y = y_true.to_f64_vec();
        if p.len() != y.len() {
            return Err(Error::shapes(
                "metric",
                "labels do not match predictions",
                y_true.shape(),
                y_pred.shape(),
            ));
        }
        let per_row = p.len() / y_pred.shape().first().copied().unwrap_or(1).max(1);
        for (i, (&pi, &yi)) in p.iter().zip(&y).enumerate() {
            let w = weight(sw, i / per_row.max(1));
            for (k, &t) in self.thresholds.iter().enumerate() {
                let pos = pi > t;
                match (pos, yi > 0.5) {
                    (true, true) => self.tp[k] += w,
                    (true, false) => self.fp[k] += w,
                    (false, true) => self.fn_[k] += w,
                    (false, false) => self.tn[k] += w,
                }
            }
        }
        Ok(())
    }

    fn result(&self) -> f64 {
        let div = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
        match self.kind {
            Confusion::Precision => div(self.tp[0], self.tp[0] + self.fp[0]),
            Confusion::Recall => div(self.tp[0], self.tp[0] + self.fn_[0]),
            Confusion::Auc => {
                let tpr: Vec<f64> = (0..self.tp.len())
                    .map(|i| div(self.tp[i], self.tp[i] + self.fn_[i]))
                    .collect();
                let fpr: Vec<f64> = (0..self.tp.len())
                    .map(|i| div(self.fp[i], self.fp[i] + self.tn[i]))
                    .collect();
                (0..tpr.len() - 1)
                    .map(|i| (fpr[i] - fpr[i + 1]) * (tpr[i] + tpr[i + 1]) / 2.0)
                    .sum()
            }
        }
    }

    fn reset_state(&mut self) {
        for v in [&mut self.tp, &mut self.fp, &mut self.tn, &mut self.fn_] {
            v.iter_mut().for_each(|x| *x = 0.0);
        }
    }
}

/// The metric for a Keras name as given to `compile(metrics=[...])`; the log key is the
/// name given.
pub fn get(name: &str) -> Result<Box<dyn Metric>> {
    let mean = |f| -> Box<dyn Metric> { Box::new(MeanMetric::new(name, f)) };
    Ok(match name {
        "accuracy" | "acc" => mean(SampleFn::AutoAccuracy),
        "binary_accuracy" => mean(SampleFn::BinaryAccuracy(0.5)),
        "categorical_accuracy" => mean(SampleFn::CategoricalAccuracy),
        "sparse_categorical_accuracy" => mean(SampleFn::SparseCategoricalAccuracy),
        "top_k_categorical_accuracy" => mean(SampleFn::TopKCategoricalAccuracy(5)),
        "sparse_top_k_categorical_accuracy" => mean(SampleFn::SparseTopKCategoricalAccuracy(5)),
        "mse" | "mean_squared_error" => mean(SampleFn::MeanSquaredError),
        "mae" | "mean_absolute_error" => mean(SampleFn::MeanAbsoluteError),
        "precision" => Box::new(ConfusionMetric::precision(name)),
        "recall" => Box::new(ConfusionMetric::recall(name)),
        "auc" => Box::new(ConfusionMetric::auc(name, 200)),
        other => {
            return Err(Error::invalid(
                "metrics::get",
                format!("unknown metric '{other}'"),
            ))
        }
    })
}
