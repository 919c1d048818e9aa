//! `ferroflow convert`: a saved model to a `.tflite` file, optionally quantised.

use ferroflow as ff;
use ff::lite::quantize::IoType;
use std::path::PathBuf;

/// The command's arguments.
#[derive(clap::Args)]
pub struct ConvertArgs {
    /// A model directory saved by ferroflow.
    #[arg(long)]
    pub model: PathBuf,
    /// Target format: `tflite`.
    #[arg(long, default_value = "tflite")]
    pub to: String,
    /// Output file.
    #[arg(long)]
    pub output: PathBuf,
    /// Post-training quantisation: `dynamic` (int8 weights) or `int8` (full integer).
    #[arg(long)]
    pub quantize: Option<String>,
    /// Representative inputs for `--quantize int8` (.npy, rows are samples); once per
    /// model input, in input order.
    #[arg(long)]
    pub representative: Vec<PathBuf>,
    /// Input/output type of an `int8` model: `int8` or `float`.
    #[arg(long, default_value = "int8")]
    pub io: String,
}

/// Reads one .npy per model input and splits them into calibration batches.
fn representative(
    paths: &[PathBuf],
    model: &ff::lite::ir::LiteModel,
) -> ff::Result<Vec<Vec<ff::Tensor>>> {
    if paths.len() != model.inputs.len() {
        return Err(ff::Error::invalid(
            "convert",
            format!(
                "--quantize int8 needs one --representative file per model input ({}), got {}",
                model.inputs.len(),
                paths.len()
            ),
        ));
    }
    let data = paths
        .iter()
        .map(ff::npy::read_npy)
        .collect::<ff::Result<Vec<_>>>()?;
    ff::lite::quantize::calibration_batches(model, &data, usize::MAX)
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
