//! A Keras-style progress bar: `Epoch 3/10`, then
//! `422/422 ━━━━━━━━━━━━━━━━━━━━ 1s 2ms/step - accuracy: 0.9612 - loss: 0.1341`.
//! The live bar is drawn only on a terminal; elsewhere one line per epoch is printed.

use super::history::{format_logs, Logs};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How much `fit` prints (Keras's `verbose`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Nothing.
    Silent,
    /// A progress bar (on a terminal) and a line per epoch.
    #[default]
    Bar,
    /// One line per epoch.
    Line,
}

/// The progress display of one epoch (or one evaluate/predict pass).
pub struct Progress {
    bar: Option<ProgressBar>,
    verbosity: Verbosity,
    steps: Option<usize>,
    done: std::cell::Cell<usize>,
    start: Instant,
}

fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{}s", s.round() as u64)
    } else {
        format!("{}ms", (s * 1000.0).round() as u64)
    }
}

fn per_step(d: Duration, steps: usize) -> String {
    let us = d.as_secs_f64() * 1e6 / steps.max(1) as f64;
    if us >= 1e6 {
        format!("{}s/step", (us / 1e6).round() as u64)
    } else if us >= 1e3 {
        format!("{}ms/step", (us / 1e3).round() as u64)
    } else {
        format!("{}us/step", us.round() as u64)
    }
}

impl Progress {
    /// Starts a display for `steps` steps (`None`: unknown, as for a dataset of unknown size).
    pub fn new(steps: Option<usize>, verbosity: Verbosity) -> Self {
        let bar = (verbosity == Verbosity::Bar && std::io::stdout().is_terminal()).then(|| {
            let pb = ProgressBar::with_draw_target(
                steps.map(|s| s as u64),
                ProgressDrawTarget::stdout(),
            );
            let style = ProgressStyle::with_template("{pos}/{len} {bar:20} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("━━ ");
            pb.set_style(style);
            pb
        });
        Progress {
            bar,
            verbosity,
            steps,
            done: std::cell::Cell::new(0),
            start: Instant::now(),
        }
    }

    /// Prints `Epoch i/n` (1-based) unless silent.
    pub fn epoch_header(epoch: usize, epochs: usize, verbosity: Verbosity) {
        if verbosity != Verbosity::Silent {
            println!("Epoch {}/{}", epoch + 1, epochs);
        }
    }

    /// Advances to `step` (1-based) with the running logs.
    pub fn update(&self, step: usize, logs: &Logs) {
        self.done.set(step);
        if let Some(pb) = &self.bar {
            pb.set_position(step as u64);
            let el = self.start.elapsed();
            pb.set_message(format!("{} - {}", per_step(el, step), format_logs(logs)));
        }
    }

    /// Ends the epoch and prints its final line.
    pub fn finish(&self, logs: &Logs) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
        let el = self.start.elapsed();
        let steps = self.steps.unwrap_or(self.done.get()).max(1);
        match self.verbosity {
            Verbosity::Silent => {}
            Verbosity::Bar => println!(
                "{}/{} {} {} {} - {}",
                steps,
                steps,
                "━".repeat(20),
                duration(el),
                per_step(el, steps),
                format_logs(logs)
            ),
            Verbosity::Line => println!(
                "{}/{} - {} - {} - {}",
                steps,
                steps,
                duration(el),
                per_step(el, steps),
                format_logs(logs)
            ),
        }
    }
}
