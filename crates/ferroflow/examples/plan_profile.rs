//! Times a saved Keras model's compiled predict plan node by node:
//! `cargo run --release -p ferroflow --example plan_profile -- MODEL_DIR [batch] [runs]`.
//! Inputs are uniform random in [0, 1) with the model's input shapes at `batch` rows.

use ferroflow as ff;

fn main() -> ff::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| {
        eprintln!("usage: plan_profile MODEL_DIR [batch] [runs]");
        std::process::exit(2)
    });
    let batch: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let model = ff::keras::load_model(&dir)?;
    let xs = model
        .input_specs()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut shape: Vec<usize> = spec.shape.iter().map(|d| d.unwrap_or(batch)).collect();
            shape[0] = batch;
            ff::random::uniform(&shape, 0.0, 1.0, ff::DType::F32, Some(i as u64))
        })
        .collect::<ff::Result<Vec<_>>>()?;
    let (cf, _) = ff::graph::ConcreteFunction::trace(
        "predict",
        |a: &[ff::Tensor]| model.call(a, false),
        &xs,
        ff::graph::OptLevel::Full,
    )?;
    println!("{}", cf.profile(&xs, runs)?);
    Ok(())
}
