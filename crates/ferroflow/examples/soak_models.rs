//! The models `tools/soak_serve.py` serves, one saved model per version with weights a
//! client can predict exactly: `cargo run --release -p ferroflow --example soak_models --
//! DIR N` writes `DIR/affine/V` and `DIR/pair/V` for V in 1..=N.
//!
//! - `affine`: input `x` [4] -> `y` [3], y = x K + V with K[i][j] = 0.1 (i + 1) - 0.05 j;
//! - `pair`: inputs `a` [3] and `b` [2] -> `z` [2], z = [a, b] L + (10 V, -10 V) with
//!   L[i][j] = 0.2 (i - j).
//!
//! So every prediction says which version computed it.

use ferroflow as ff;
use ff::keras::layers::{Concatenate, Dense};
use ff::keras::{Input, Model, SymbolicCall};
use ff::Tensor;
use std::path::Path;

fn affine(v: f32) -> ff::Result<Model> {
    let x = Input::with(vec![Some(4)], ff::DType::F32, Some("x"));
    let y = Dense::new(3).name("y").apply(&x)?;
    let m = Model::named(&[x], &[y], "affine")?;
    let k: Vec<f32> = (0..4)
        .flat_map(|i| (0..3).map(move |j| 0.1 * (i + 1) as f32 - 0.05 * j as f32))
        .collect();
    m.set_weights(&[
        Tensor::from_vec(k, &[4, 3])?,
        Tensor::full(&[3], v as f64, ff::DType::F32)?,
    ])?;
    Ok(m)
}

fn pair(v: f32) -> ff::Result<Model> {
    let a = Input::with(vec![Some(3)], ff::DType::F32, Some("a"));
    let b = Input::with(vec![Some(2)], ff::DType::F32, Some("b"));
    let ab = Concatenate::new(-1)
        .call_many(&[a.clone(), b.clone()])?
        .remove(0);
    let z = Dense::new(2).name("z").apply(&ab)?;
    let m = Model::named(&[a, b], &[z], "pair")?;
    let l: Vec<f32> = (0..5)
        .flat_map(|i| (0..2).map(move |j| 0.2 * (i as f32 - j as f32)))
        .collect();
    m.set_weights(&[
        Tensor::from_vec(l, &[5, 2])?,
        Tensor::from_vec(vec![10.0 * v, -10.0 * v], &[2])?,
    ])?;
    Ok(m)
}

fn main() -> ff::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "soak_models".into());
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(11);
    for v in 1..=n {
        affine(v as f32)?.save(Path::new(&dir).join("affine").join(v.to_string()))?;
        pair(v as f32)?.save(Path::new(&dir).join("pair").join(v.to_string()))?;
    }
    println!("wrote versions 1..={n} of affine and pair under {dir}");
    Ok(())
}
