//! Devices and run-time backend selection.

use crate::{Error, Result};

/// Where a tensor's buffer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Device {
    /// Host memory and CPU kernels.
    #[default]
    Cpu,
}

impl Device {
    /// The backend named by `FERROFLOW_BACKEND` (like Keras 3's `KERAS_BACKEND`); `cpu` when unset.
    ///
    /// Unknown or unavailable names are an error rather than a silent fallback.
    pub fn from_env() -> Result<Device> {
        match std::env::var("FERROFLOW_BACKEND") {
            Err(_) => Ok(Device::Cpu),
            Ok(name) => Device::parse(&name),
        }
    }

    /// Parses a backend name (`cpu`; `cuda` once built with CUDA support).
    pub fn parse(name: &str) -> Result<Device> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Err(Error::invalid(
                "backend",
                format!("backend '{name}' is not available in this build (only 'cpu')"),
            )),
            _ => Err(Error::invalid(
                "backend",
                format!("unknown backend '{name}' (expected 'cpu' or 'cuda')"),
            )),
        }
    }
}
