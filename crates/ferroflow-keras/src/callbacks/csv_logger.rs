//! `CSVLogger`: one CSV row of logs per epoch.

use super::Callback;
use crate::models::Model;
use crate::training::Logs;
use ferroflow_core::{Error, Result};
use std::io::Write;
use std::path::PathBuf;

/// Streams epoch logs to a CSV file (`keras.callbacks.CSVLogger`).
pub struct CSVLogger {
    path: PathBuf,
    separator: char,
    append: bool,
    file: Option<std::fs::File>,
    keys: Vec<String>,
}

impl CSVLogger {
    /// Writes to `path`, replacing it.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CSVLogger {
            path: path.into(),
            separator: ',',
            append: false,
            file: None,
            keys: Vec::new(),
        }
    }

    /// Appends to an existing file instead of replacing it.
    pub fn append(mut self, on: bool) -> Self {
        self.append = on;
        self
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::Io {
            path: self.path.display().to_string(),
            source: e,
        }
    }
}

impl Callback for CSVLogger {
    fn chief_only(&self) -> bool {
        true
    }

    fn on_train_begin(&mut self, _model: &mut Model) -> Result<()> {
        let existed = self.append && self.path.exists();
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append)
            .truncate(!self.append)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        self.file = Some(f);
        self.keys.clear();
        if existed {
            self.keys = vec![String::new()];
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, _model: &mut Model) -> Result<()> {
        let sep = self.separator.to_string();
        let mut out = String::new();
        if self.keys.is_empty() {
            self.keys = logs.keys().cloned().collect();
            out.push_str(&format!("epoch{sep}{}\n", self.keys.join(&sep)));
        } else if self.keys == [String::new()] {
            self.keys = logs.keys().cloned().collect();
        }
        let vals: Vec<String> = self
            .keys
            .iter()
            .map(|k| logs.get(k).map_or(String::new(), |v| v.to_string()))
            .collect();
        out.push_str(&format!("{epoch}{sep}{}\n", vals.join(&sep)));
        let res = match self.file.as_mut() {
            Some(f) => f.write_all(out.as_bytes()).and_then(|_| f.flush()),
            None => Ok(()),
        };
        res.map_err(|e| self.io(e))
    }

    fn on_train_end(&mut self, _model: &mut Model) -> Result<()> {
        self.file = None;
        Ok(())
    }
}
