//! Exports a plain traced closure (not a Keras model) to ONNX: a small block with a
//! matmul, layer norm, GELU, a residual, a slice, a concat and a softmax, over a symbolic
//! batch. Writes `DIR/function.onnx`, an input `DIR/function_x.npy` and the closure's
//! eager output `DIR/function_y.npy`, which `tools/check_onnx_export.py` compares with
//! onnxruntime's.
//!
//! `cargo run --release -p ferroflow --example onnx_function -- DIR`

use ferroflow as ff;
use ff::{DType, Tensor, TensorSpec};

fn block(x: &Tensor, w: &Tensor, b: &Tensor) -> ff::Result<Tensor> {
    let h = x
        .matmul(w)?
        .add(b)?
        .layer_norm(None, None, 1, 1e-5)?
        .gelu()?;
    let r = h.add(x)?;
    let head = r.slice(&[0, 0], &[-1, 4])?;
    let both = Tensor::concat(&[r, head.tanh()?], -1)?;
    both.softmax(-1)
}

fn main() -> ff::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: onnx_function DIR"));
    std::fs::create_dir_all(&dir)
        .map_err(|e| ff::Error::invalid("onnx_function", e.to_string()))?;
    let w = ff::random::normal(&[16, 16], 0.0, 0.3, DType::F32, Some(7))?;
    let b = ff::random::normal(&[16], 0.0, 0.1, DType::F32, Some(8))?;
    let spec = TensorSpec::new(&[None, Some(16)], DType::F32);
    let (w2, b2) = (w.clone(), b.clone());
    let model = ff::onnx::export_function(
        "block",
        move |x| Ok(vec![block(&x[0], &w2, &b2)?]),
        &[spec],
        &["x".into()],
        &["probabilities".into()],
        &ff::onnx::ExportOptions::default(),
    )?;
    ff::onnx::save_model(&model, dir.join("function.onnx"))?;
    let x = ff::random::normal(&[5, 16], 0.0, 1.0, DType::F32, Some(9))?;
    ff::npy::write_npy(dir.join("function_x.npy"), &x)?;
    ff::npy::write_npy(dir.join("function_y.npy"), &block(&x, &w, &b)?)?;
    println!("wrote {}", dir.join("function.onnx").display());
    Ok(())
}
