//! Saves TF Serving's documentation model, `half_plus_three` (y = 0.5 x + 3 on a scalar
//! input `x`), as a ferroflow model: `cargo run -p ferroflow --example half_plus_three --
//! BASE/123`. CI serves it and replays the REST API documentation's requests against it
//! (`tools/check_serving_client.py`).

use ferroflow as ff;
use ff::keras::layers::Rescaling;
use ff::keras::{Input, Model, SymbolicCall};

fn main() -> ff::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "half_plus_three/123".into());
    let x = Input::with(vec![], ff::DType::F32, Some("x"));
    let y = Rescaling::new(0.5, 3.0).name("y").apply(&x)?;
    let model = Model::named(&[x], &[y], "half_plus_three")?;
    let check = model.predict(vec![ff::Tensor::from_vec(vec![1.0f32, 2.0, 5.0], &[3])?], 8)?;
    assert_eq!(check[0].to_vec::<f32>()?, [3.5, 4.0, 5.5]);
    model.save(&dir)?;
    println!("saved half_plus_three to {dir}");
    Ok(())
}
