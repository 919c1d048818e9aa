//! `ferroflow convert`: a saved model to a `.tflite` file, optionally quantised, to an
//! ONNX model, or to a Keras 3 `.keras` archive.

use ferroflow as ff;
use ff::lite::quantize::IoType;
use std::path::PathBuf;

/// The command's arguments.
#[derive(clap::Args)]
pub struct ConvertArgs {
    /// A saved model: a ferroflow model directory, or a Keras `.keras` / `.h5` file.
    #[arg(long)]
    pub model: PathBuf,
    /// Target format.
    #[arg(long, value_enum, default_value_t = Target::Tflite)]
    pub to: Target,
    /// Output file.
    #[arg(long)]
    pub output: PathBuf,
    /// Post-training quantisation.
    #[arg(long, value_enum)]
    pub quantize: Option<Quantize>,
    /// Representative inputs for `--quantize int8` (.npy, rows are samples); once per
    /// model input, in input order.
    #[arg(long)]
    pub representative: Vec<PathBuf>,
    /// Input/output type of an `int8` model.
    #[arg(long, value_enum, default_value_t = Io::Int8)]
    pub io: Io,
    /// The ONNX opset of `--to onnx` (13 to 21).
    #[arg(long, default_value_t = ff::onnx::DEFAULT_OPSET)]
    pub opset: i64,
}

/// Formats `convert` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// A TFLite flatbuffer.
    Tflite,
    /// A Keras 3 `.keras` archive (Python Keras loads it); the output must end in `.keras`.
    Keras,
    /// An ONNX model (onnxruntime loads it) with a symbolic batch axis.
    Onnx,
}

/// Post-training quantisation modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Quantize {
    /// int8 weights, float activations (dynamic range).
    Dynamic,
    /// Full integer: int8 weights and activations, calibrated on --representative data.
    Int8,
}

/// The edge type of a full-integer model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Io {
    /// int8 inputs and outputs.
    Int8,
    /// float inputs and outputs, quantised inside the model.
    Float,
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
    let onnx = args.model.extension().is_some_and(|e| e == "onnx");
    if args.to != Target::Tflite && args.quantize.is_some() {
        return Err(ff::Error::invalid(
            "convert",
            "--quantize applies to --to tflite only",
        ));
    }
    let float = if onnx {
        if args.to != Target::Tflite {
            return Err(ff::Error::invalid(
                "convert",
                format!(
                    "{}: an ONNX model converts --to tflite; it runs as it is with \
                     `ferroflow predict` and `ferroflow serve`",
                    args.model.display()
                ),
            ));
        }
        onnx_to_tflite(&args.model)?
    } else {
        let m = ff::keras::load_model(&args.model)?;
        match args.to {
            Target::Keras => return to_keras(args, &m),
            Target::Onnx => return to_onnx(args, &m),
            Target::Tflite => {}
        }
        ff::lite::convert::from_keras(&m)?
    };
    let lite = match args.quantize {
        None => float,
        Some(Quantize::Dynamic) => ff::lite::quantize::dynamic_range(&float),
        Some(Quantize::Int8) => {
            let io = match args.io {
                Io::Int8 => IoType::Int8,
                Io::Float => IoType::Float,
            };
            let samples = representative(&args.representative, &float)?;
            ff::lite::quantize::full_integer(&float, &samples, io)?
        }
    };
    let bytes = ff::lite::write::to_bytes(&lite);
    ff::atomic_file::write_atomic(&args.output, &bytes)?;
    println!(
        "wrote {} ({} bytes, {} ops)",
        args.output.display(),
        bytes.len(),
        lite.ops.len()
    );
    Ok(())
}

/// An ONNX model's graph, traced through the importer, as a float TFLite model with the
/// ONNX inputs' and outputs' names (a symbolic batch stays dynamic).
fn onnx_to_tflite(path: &std::path::Path) -> ff::Result<ff::lite::ir::LiteModel> {
    let model = ff::onnx::OnnxModel::load(path, &ff::onnx::LoadOptions::default())?;
    if model.has_control_flow() {
        return Err(ff::Error::invalid(
            "convert",
            format!(
                "{}: If/Loop nodes choose their branch by value at run time, which a TFLite \
                 graph cannot follow here",
                path.display()
            ),
        ));
    }
    let names = |infos: &[ff::onnx::import::InputInfo]| -> Vec<String> {
        infos.iter().map(|i| i.name.clone()).collect()
    };
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "onnx".into());
    ff::lite::convert::from_function(
        &name,
        |x| model.run(x),
        &model.input_specs(),
        &names(model.inputs()),
        &names(model.outputs()),
    )
    .map_err(|e| e.context(format!("converting {} to TFLite", path.display())))
}

/// Writes the model as a `.keras` archive.
fn to_keras(args: &ConvertArgs, m: &ff::keras::Model) -> ff::Result<()> {
    if args.output.extension().is_none_or(|e| e != "keras") {
        return Err(ff::Error::invalid(
            "convert",
            format!(
                "--to keras writes a .keras archive: the output {} must end in .keras",
                args.output.display()
            ),
        ));
    }
    m.save(&args.output)?;
    println!("wrote {}", args.output.display());
    Ok(())
}

/// Writes the model's inference graph as ONNX.
fn to_onnx(args: &ConvertArgs, m: &ff::keras::Model) -> ff::Result<()> {
    let opts = ff::onnx::ExportOptions {
        opset: args.opset,
        ..Default::default()
    };
    let model = ff::onnx::export_model(m, &opts)?;
    let graph = model.graph.as_ref().expect("export writes a graph");
    let bytes = ff::onnx::to_bytes(&model);
    ff::atomic_file::write_atomic(&args.output, &bytes)?;
    println!(
        "wrote {} ({} bytes, {} nodes, opset {})",
        args.output.display(),
        bytes.len(),
        graph.node.len(),
        args.opset
    );
    Ok(())
}
