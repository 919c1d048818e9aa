//! `ferroflow predict`: run a saved model on .npy inputs.

use ferroflow as ff;
use std::path::{Path, PathBuf};

/// `Y.npy` for output 0, `Y_1.npy`, `Y_2.npy`... for the rest.
fn output_path(base: &Path, i: usize) -> PathBuf {
    if i == 0 {
        return base.to_path_buf();
    }
    let stem = base
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("output");
    base.with_file_name(format!("{stem}_{i}.npy"))
}

/// Loads the model, reads each input, predicts in batches and writes each output.
pub fn run(model: &Path, inputs: &[PathBuf], output: &Path, batch_size: usize) -> ff::Result<()> {
    if model.extension().is_some_and(|e| e == "tflite") {
        return run_tflite(model, inputs, output);
    }
    let m = ff::keras::load_model(model)?;
    let xs = inputs
        .iter()
        .map(ff::npy::read_npy)
        .collect::<ff::Result<Vec<_>>>()?;
    if let Some(specs) = m.input_specs() {
        if specs.len() != xs.len() {
            return Err(ff::Error::invalid(
                "predict",
                format!(
                    "model '{}' takes {} input(s), got {} --input file(s)",
                    m.name(),
                    specs.len(),
                    xs.len()
                ),
            ));
        }
    }
    // Integer pixel files are fed as float32, the model's input dtype.
    let xs = xs
        .into_iter()
        .zip(
            m.input_specs()
                .unwrap_or_default()
                .into_iter()
                .map(Some)
                .chain(std::iter::repeat(None)),
        )
        .map(|(x, spec)| match spec {
            Some(s) if s.dtype != x.dtype() => x.cast(s.dtype),
            _ => Ok(x),
        })
        .collect::<ff::Result<Vec<_>>>()?;
    let outs = m.predict(&xs, batch_size)?;
    write_outputs(output, &outs)
}

/// Runs a `.tflite` file: float inputs are quantised for int8-input models, and int8
/// outputs are written dequantised to float.
fn run_tflite(model: &Path, inputs: &[PathBuf], output: &Path) -> ff::Result<()> {
    let interp = ff::lite::Interpreter::from_file(model)?;
    let xs = inputs
        .iter()
        .map(ff::npy::read_npy)
        .collect::<ff::Result<Vec<_>>>()?;
    let outs = interp.run_float(&xs)?;
    write_outputs(output, &outs)
}

/// Writes output `i` to [`output_path`]`(base, i)`.
fn write_outputs(base: &Path, outs: &[ff::Tensor]) -> ff::Result<()> {
    for (i, y) in outs.iter().enumerate() {
        let p = output_path(base, i);
        ff::npy::write_npy(&p, y)?;
        println!("wrote {} {:?}", p.display(), y.shape());
    }
    Ok(())
}
