//! A functional model with two inputs: an image branch (Conv2D) and a text branch
//! (Embedding + GlobalAveragePooling1D), joined by Concatenate into a sigmoid head
//! (`cargo run --release -p ferroflow --example multi_input`).
//!
//! Task: each sample is a digit image and a short "caption" of token ids; the target is 1
//! when the digit is 5 or more *and* the caption holds the flag token, so both inputs matter.

use ferroflow as ff;
use ff::keras::datasets::digits;
use ff::keras::layers::{
    Concatenate, Conv2D, Dense, Embedding, GlobalAveragePooling1D, GlobalAveragePooling2D,
    Rescaling, Reshape,
};
use ff::keras::optimizers::Optimizer;
use ff::keras::{FitOptions, Input, Model, SymbolicCall};
use ff::ops::conv::Padding;
use ff::{DType, Tensor};

/// Captions of 6 filler tokens (10-49), half of them with the flag token 1 somewhere;
/// targets `digit >= 5 && flagged`.
fn captions(labels: &[i64], seed: u64) -> (Tensor, Tensor) {
    let mut state = seed;
    let mut next = move |m: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let mut tokens = Vec::new();
    let mut target = Vec::new();
    for &digit in labels {
        let flagged = next(2) == 0;
        let slot = next(6);
        for k in 0..6 {
            tokens.push(if flagged && k == slot {
                1
            } else {
                10 + next(40) as i64
            });
        }
        target.push((flagged && digit >= 5) as u8 as f32);
    }
    let n = labels.len();
    (
        Tensor::from_vec(tokens, &[n, 6]).expect("sizes match"),
        Tensor::from_vec(target, &[n, 1]).expect("sizes match"),
    )
}

fn main() -> ff::Result<()> {
    ff::random::set_seed(3);
    let ((x_img, labels), _) = digits::load_split(0.0, 3)?;
    let (x_txt, y) = captions(&labels.to_vec::<i64>()?, 3);

    let image = Input::with(vec![Some(64)], DType::F32, Some("image"));
    let text = Input::with(vec![Some(6)], DType::I64, Some("caption"));
    let h = Rescaling::new(1.0 / 16.0, 0.0).apply(&image)?;
    let h = Reshape::new(&[8, 8, 1])?.apply(&h)?;
    let h = Conv2D::new(16, &[3])
        .padding(Padding::Same)
        .activation("relu")
        .apply(&h)?;
    let h = GlobalAveragePooling2D::new().apply(&h)?;
    let t = Embedding::new(50, 16).apply(&text)?;
    let t = GlobalAveragePooling1D::new().apply(&t)?;
    let joined = Concatenate::new(-1).call_many(&[h, t])?.remove(0);
    let joined = Dense::new(64).activation("relu").apply(&joined)?;
    let out = Dense::new(1).activation("sigmoid").apply(&joined)?;
    let mut model = Model::named(&[image, text], &[out], "flagged_high_digit")?;
    print!("{}", model.summary());

    model.compile(Optimizer::adam(3e-3), "binary_crossentropy", &["accuracy"])?;
    let history = model.fit(
        vec![x_img, x_txt],
        &y,
        FitOptions::new()
            .epochs(40)
            .batch_size(32)
            .validation_split(0.2),
    )?;
    println!(
        "val_accuracy {:.3}",
        history.last("val_accuracy").unwrap_or(0.0)
    );
    Ok(())
}
