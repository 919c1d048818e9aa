//! `ferroflow convert`: a saved model to a `.tflite` file, optionally quantised.

use ferroflow as ff;
use ff::lite::quantize::IoType;
use std::path::PathBuf;

/// The command's arguments.
pub struct ConvertArgs {
    /// Saved model directory.
    pub model: PathBuf,
    /// Target format (`tflite`).
    pub to: String,
    /// Output file.
    pub output: PathBuf,
    /// `dynamic` or `int8`.
    pub quantize: Option<String>,
    /// Representative inputs, one .npy per model input.
    pub representative: Vec<PathBuf>,
    /// `int8` or `float` inputs and outputs for `int8`.
    pub io: String,
}

/// Rows of the representative data fed per calibration run.
const CALIBRATION_BATCH: usize = 32;

/// Splits one .npy per model input into calibration batches.
fn representative(
    paths: &[PathBuf],
    model: &ff::lite::ir::LiteModel,
) -> ff::Result<Vec<Vec<ff::Tensor>>> {
    let inputs = model.inputs.len();
    if paths.len() != inputs {
        return Err(ff::Error::invalid(
            "convert",
            format!(
                "--quantize int8 needs one --representative file per model input ({inputs}), got {}",
                paths.len()
            ),
        ));
    }
    let data = paths
        .iter()
        .map(ff::npy::read_npy)
        .collect::<ff::Result<Vec<_>>>()?;
    let rows = data[0].shape().first().copied().unwrap_or(0);
    if rows == 0 || data.iter().any(|d| d.shape().first() != Some(&rows)) {
        return Err(ff::Error::invalid(
            "convert",
            "representative files must hold the same number (> 0) of rows",
        ));
    }
    (0..rows)
        .step_by(CALIBRATION_BATCH)
        .map(|start| {
            let len = CALIBRATION_BATCH.min(rows - start);
            data.iter()
                .zip(&model.inputs)
                .map(|(d, &t)| {
                    let mut begin = vec![0; d.rank()];
                    begin[0] = start;
                    let mut size = vec![-1; d.rank()];
                    size[0] = len as isize;
                    d.slice(&begin, &size)?
                        .cast(ff::lite::core_dtype(model.tensors[t].dtype))
                })
                .collect()
        })
        .collect()
}

/// Loads the model, converts it and writes the output file.
pub fn run(args: &ConvertArgs) -> ff::Result<()> {
    if args.to != "tflite" {
        return Err(ff::Error::invalid(
            "convert",
            format!("unknown target format '{}' (available: tflite)", args.to),
        ));
    }
    let m = ff::keras::load_model(&args.model)?;
    let float = ff::lite::convert::from_keras(&m)?;
    let lite = match args.quantize.as_deref() {
        None => float,
        Some("dynamic") => ff::lite::quantize::dynamic_range(&float),
        Some("int8") => {
            let io = match args.io.as_str() {
                "int8" => IoType::Int8,
                "float" => IoType::Float,
                other => {
                    return Err(ff::Error::invalid(
                        "convert",
                        format!("--io must be int8 or float, not '{other}'"),
                    ))
                }
            };
            let samples = representative(&args.representative, &float)?;
            ff::lite::quantize::full_integer(&float, &samples, io)?
        }
        Some(other) => {
            return Err(ff::Error::invalid(
                "convert",
                format!("--quantize must be dynamic or int8, not '{other}'"),
            ))
        }
    };
    let bytes = ff::lite::write::to_bytes(&lite);
    std::fs::write(&args.output, &bytes).map_err(|source| ff::Error::Io {
        path: args.output.display().to_string(),
        source,
    })?;
    println!(
        "wrote {} ({} bytes, {} ops)",
        args.output.display(),
        bytes.len(),
        lite.ops.len()
    );
    Ok(())
}
