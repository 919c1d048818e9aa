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

/// What `predict` needs to know of one model input.
pub struct InputInfo {
    /// The input's name.
    pub name: String,
    /// The dtype the model computes with.
    pub dtype: ff::DType,
    /// Whether a float array is fed as it is (a quantised TFLite input quantises it).
    pub takes_float: bool,
}

/// Checks the number of input files and converts each array to its input's dtype where
/// that loses nothing a user meant: integers and booleans become floats, floats change
/// width, integers change width when every value fits. Floats into an integer input and
/// anything but booleans into a boolean input are errors naming the input and the file.
pub fn feed(
    model: &str,
    infos: &[InputInfo],
    xs: Vec<ff::Tensor>,
    files: &[PathBuf],
) -> ff::Result<Vec<ff::Tensor>> {
    if infos.len() != xs.len() {
        let names: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
        return Err(ff::Error::ModelInput {
            model: model.to_string(),
            msg: format!(
                "takes {} input(s) ({}), got {} --input file(s)",
                infos.len(),
                names.join(", "),
                xs.len()
            ),
        });
    }
    xs.into_iter()
        .zip(infos)
        .zip(files)
        .map(|((x, info), file)| {
            let (have, want) = (x.dtype(), info.dtype);
            let refuse = |why: &str| ff::Error::ModelInput {
                model: model.to_string(),
                msg: format!(
                    "input '{}' expects {want}, got {have} values from {} ({why})",
                    info.name,
                    file.display()
                ),
            };
            if have == want || (have.is_float() && info.takes_float) {
                return Ok(x);
            }
            if want.is_float() {
                return x.cast(want);
            }
            if want == ff::DType::Bool {
                return Err(refuse("save the array as booleans"));
            }
            if have.is_float() {
                return Err(refuse("cast the array to an integer type first"));
            }
            // Integer (or boolean) into an integer input: every value must fit.
            let y = x.cast(want)?;
            let back = y.cast(ff::DType::I64)?.to_vec::<i64>()?;
            let orig = x.cast(ff::DType::I64)?.to_vec::<i64>()?;
            if back != orig {
                return Err(refuse("some values do not fit"));
            }
            Ok(y)
        })
        .collect()
}

/// Loads the model, reads each input, predicts in batches and writes each output.
pub fn run(model: &Path, inputs: &[PathBuf], output: &Path, batch_size: usize) -> ff::Result<()> {
    if model.extension().is_some_and(|e| e == "tflite") {
        return run_tflite(model, inputs, output);
    }
    if model.extension().is_some_and(|e| e == "onnx") {
        return run_onnx(model, inputs, output, batch_size);
    }
    let m = ff::keras::load_model(model)?;
    let xs = read_inputs(inputs)?;
    let infos: Vec<InputInfo> = match m.input_specs() {
        Some(specs) => specs
            .into_iter()
            .zip(m.input_names())
            .map(|(s, name)| InputInfo {
                name,
                dtype: s.dtype,
                takes_float: false,
            })
            .collect(),
        None => xs
            .iter()
            .enumerate()
            .map(|(i, x)| InputInfo {
                name: format!("input {i}"),
                dtype: x.dtype(),
                takes_float: false,
            })
            .collect(),
    };
    let xs = feed(m.name(), &infos, xs, inputs)?;
    let outs = m.predict(&xs, batch_size)?;
    write_outputs(output, &outs)
}

fn read_inputs(inputs: &[PathBuf]) -> ff::Result<Vec<ff::Tensor>> {
    inputs.iter().map(ff::npy::read_npy).collect()
}

/// Runs a `.tflite` file: float inputs are quantised for int8-input models, and int8
/// outputs are written dequantised to float.
fn run_tflite(model: &Path, inputs: &[PathBuf], output: &Path) -> ff::Result<()> {
    let interp = ff::lite::Interpreter::from_file(model)?;
    let xs = read_inputs(inputs)?;
    let infos: Vec<InputInfo> = interp
        .inputs()
        .iter()
        .map(|t| InputInfo {
            name: t.name.clone(),
            dtype: ff::lite::core_dtype(t.dtype),
            takes_float: t.quant.is_some(),
        })
        .collect();
    let name = model.file_name().map(|n| n.to_string_lossy().into_owned());
    let xs = feed(&name.unwrap_or_default(), &infos, xs, inputs)?;
    let outs = interp.run_float(&xs)?;
    write_outputs(output, &outs)
}

/// Runs an `.onnx` file (one `.npy` per graph input, in the graph's order), in batches:
/// of the model's own batch size where its inputs fix one, else of `batch_size`.
fn run_onnx(model: &Path, inputs: &[PathBuf], output: &Path, batch_size: usize) -> ff::Result<()> {
    let m = ff::onnx::load(model)?;
    let xs = read_inputs(inputs)?;
    let infos: Vec<InputInfo> = m
        .model()
        .inputs()
        .iter()
        .map(|i| InputInfo {
            name: i.name.clone(),
            dtype: i.dtype,
            takes_float: false,
        })
        .collect();
    let name = model.file_name().map(|n| n.to_string_lossy().into_owned());
    let xs = feed(&name.unwrap_or_default(), &infos, xs, inputs)?;
    let rows = xs
        .first()
        .and_then(|x| x.shape().first().copied())
        .unwrap_or(0);
    let batched = !xs.is_empty() && xs.iter().all(|x| x.rank() > 0 && x.shape()[0] == rows);
    let fixed = m.model().fixed_batch();
    let step = fixed.unwrap_or(batch_size.max(1));
    if !batched || rows <= step || rows % step != 0 && fixed.is_some() {
        return write_outputs(output, &m.call(&xs)?);
    }
    let outs = m.call_in_chunks(&xs, step)?;
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
