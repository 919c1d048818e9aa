//! Profiles an imported ONNX model's compiled plan: its slowest nodes on random inputs.
//!
//! `cargo run --release -p ferroflow --example onnx_profile -- MODEL.onnx [BATCH]`

use ferroflow as ff;

fn main() -> ff::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: onnx_profile MODEL.onnx [BATCH]");
    let batch: usize = args.next().and_then(|b| b.parse().ok()).unwrap_or(1);
    let model = ff::onnx::load(&path)?;
    let inputs = model
        .model()
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let dims: Vec<usize> = t
                .shape
                .iter()
                .enumerate()
                .map(|(k, d)| d.unwrap_or(if k == 0 { batch } else { 1 }))
                .collect();
            ff::random::uniform(&dims, 0.0, 1.0, ff::DType::F32, Some(i as u64))?.cast(t.dtype)
        })
        .collect::<ff::Result<Vec<_>>>()?;
    print!("{}", model.profile(&inputs, 10)?);
    Ok(())
}
