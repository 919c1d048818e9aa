//! `ferroflow convert`: a saved model to a `.tflite` file.

use ferroflow as ff;
use std::path::Path;

/// Loads the model at `model`, converts it to `to` and writes `output`.
pub fn run(model: &Path, to: &str, output: &Path) -> ff::Result<()> {
    if to != "tflite" {
        return Err(ff::Error::invalid(
            "convert",
            format!("unknown target format '{to}' (available: tflite)"),
        ));
    }
    let m = ff::keras::load_model(model)?;
    let lite = ff::lite::convert::from_keras(&m)?;
    let bytes = ff::lite::write::to_bytes(&lite);
    std::fs::write(output, &bytes).map_err(|source| ff::Error::Io {
        path: output.display().to_string(),
        source,
    })?;
    println!(
        "wrote {} ({} bytes, {} ops)",
        output.display(),
        bytes.len(),
        lite.ops.len()
    );
    Ok(())
}
