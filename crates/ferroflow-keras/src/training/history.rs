//! [`Logs`] (the metric values of a batch or epoch) and [`History`] (what `fit` returns).

use std::collections::BTreeMap;

/// Metric values by name, sorted by name as Keras prints them.
pub type Logs = BTreeMap<String, f64>;

/// The per-epoch logs of a `fit` call (`history.history["val_accuracy"]`).
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Epoch indices that ran.
    pub epoch: Vec<usize>,
    /// Values per metric name, one per epoch.
    pub history: BTreeMap<String, Vec<f64>>,
}

impl History {
    /// Appends one epoch's logs.
    pub fn push(&mut self, epoch: usize, logs: &Logs) {
        self.epoch.push(epoch);
        for (k, v) in logs {
            self.history.entry(k.clone()).or_default().push(*v);
        }
    }

    /// The values of one metric.
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        self.history.get(name).map(Vec::as_slice)
    }

    /// The last value of one metric.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(|v| v.last().copied())
    }
}

/// Formats logs like Keras: `accuracy: 0.9612 - loss: 0.1341`.
pub fn format_logs(logs: &Logs) -> String {
    logs.iter()
        .map(|(k, v)| format!("{k}: {}", format_value(*v)))
        .collect::<Vec<_>>()
        .join(" - ")
}

fn format_value(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.4e}")
    } else {
        format!("{v:.4}")
    }
}
