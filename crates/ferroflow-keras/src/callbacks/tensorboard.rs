//! `TensorBoard`: per-epoch scalars in real TensorBoard event files
//! (`log_dir/train` and `log_dir/validation`, tags `epoch_loss`, `epoch_accuracy`...).
//!
//! An event file is a sequence of TFRecord frames (little-endian length, masked CRC-32C of
//! the length, the bytes, masked CRC-32C of the bytes), each holding a `tensorflow.Event`
//! protobuf; the first event carries `file_version = "brain.Event:2"`.

use super::Callback;
use crate::models::Model;
use crate::training::Logs;
use ferroflow_core::{Error, Result};
use ferroflow_data::TFRecordWriter;
use prost::Message;
use std::path::{Path, PathBuf};

/// `tensorflow.Summary.Value` (the fields TensorBoard's scalar plugin reads).
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Event`.
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

/// Events as TFRecord frames, written through ferroflow-data's TFRecord writer.
struct EventWriter {
    out: TFRecordWriter,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl EventWriter {
    fn create(dir: &Path) -> Result<Self> {
        let io = |e| Error::Io {
            path: dir.display().to_string(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!(
            "events.out.tfevents.{}.{host}.{}.v2",
            now() as u64,
            std::process::id()
        ));
        let mut w = EventWriter {
            out: TFRecordWriter::streaming(&path)?,
        };
        w.write(&Event {
            wall_time: now(),
            step: 0,
            file_version: Some("brain.Event:2".into()),
            summary: None,
        })?;
        Ok(w)
    }

    /// Appends one event and flushes, so TensorBoard sees each epoch as it ends.
    fn write(&mut self, e: &Event) -> Result<()> {
        self.out.write(&e.encode_to_vec())?;
        self.out.flush()
    }

    fn scalars(&mut self, step: i64, values: &[(String, f64)]) -> Result<()> {
        let summary = Summary {
            value: values
                .iter()
                .map(|(tag, v)| SummaryValue {
                    tag: tag.clone(),
                    simple_value: Some(*v as f32),
                })
                .collect(),
        };
        self.write(&Event {
            wall_time: now(),
            step,
            file_version: None,
            summary: Some(summary),
        })
    }
}

/// Writes epoch scalars for TensorBoard (`keras.callbacks.TensorBoard(log_dir)`).
pub struct TensorBoard {
    log_dir: PathBuf,
    train: Option<EventWriter>,
    validation: Option<EventWriter>,
}

impl TensorBoard {
    /// Logs under `log_dir` (Keras's default is `logs`).
    pub fn new(log_dir: impl Into<PathBuf>) -> Self {
        TensorBoard {
            log_dir: log_dir.into(),
            train: None,
            validation: None,
        }
    }
}

impl Callback for TensorBoard {
    fn chief_only(&self) -> bool {
        true
    }

    fn on_train_begin(&mut self, _model: &mut Model) -> Result<()> {
        self.train = Some(EventWriter::create(&self.log_dir.join("train"))?);
        self.validation = None;
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut Model) -> Result<()> {
        let mut train = Vec::new();
        let mut val = Vec::new();
        for (k, v) in logs {
            match k.strip_prefix("val_") {
                Some(rest) => val.push((format!("epoch_{rest}"), *v)),
                None => train.push((format!("epoch_{k}"), *v)),
            }
        }
        if let Some(opt) = model.optimizer() {
            train.push(("epoch_learning_rate".into(), opt.learning_rate()));
        }
        if let Some(w) = self.train.as_mut() {
            w.scalars(epoch as i64, &train)?;
        }
        if !val.is_empty() {
            if self.validation.is_none() {
                self.validation = Some(EventWriter::create(&self.log_dir.join("validation"))?);
            }
            if let Some(w) = self.validation.as_mut() {
                w.scalars(epoch as i64, &val)?;
            }
        }
        Ok(())
    }

    fn on_train_end(&mut self, _model: &mut Model) -> Result<()> {
        self.train = None;
        self.validation = None;
        Ok(())
    }
}
