//! `fit`, `evaluate` and `predict` on string features end to end: a model whose first layer
//! is a `StringLookup` trains on string arrays (sliced, shuffled and batched as strings),
//! and its compiled steps follow each batch.

use ferroflow_core::{DType, Tensor};
use ferroflow_keras::layers::{Dense, Embedding, Flatten, StringLookup};
use ferroflow_keras::optimizers::Optimizer;
use ferroflow_keras::training::progress::Verbosity;
use ferroflow_keras::{FitOptions, Input, Model, SymbolicCall};

const WORDS: [&str; 8] = [
    "apple", "banana", "cherry", "date", "elder", "fig", "grape", "honeydew",
];

/// `n` words and their labels: 1 for the first four words.
fn data(n: usize, seed: u64) -> (Tensor, Tensor) {
    let mut s = seed;
    let picks: Vec<usize> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as usize % WORDS.len()
        })
        .collect();
    let words: Vec<&str> = picks.iter().map(|&i| WORDS[i]).collect();
    let labels: Vec<f32> = picks.iter().map(|&i| (i < 4) as u8 as f32).collect();
    (
        Tensor::from_strings(&words, &[n, 1]).unwrap(),
        Tensor::from_vec(labels, &[n, 1]).unwrap(),
    )
}

#[test]
fn a_model_on_string_features_fits_evaluates_and_predicts() {
    ferroflow_core::random::set_seed(4);
    let (x, y) = data(512, 1);
    let lookup = StringLookup::new();
    lookup.adapt(&x).unwrap();
    let input = Input::with(vec![Some(1)], DType::String, Some("word"));
    let h = lookup.apply(&input).unwrap();
    let h = Embedding::new(WORDS.len() + 1, 4).apply(&h).unwrap();
    let h = Flatten::new().apply(&h).unwrap();
    let out = Dense::new(1).activation("sigmoid").apply(&h).unwrap();
    let mut model = Model::named(&[input], &[out], "words").unwrap();
    model
        .compile(Optimizer::adam(0.05), "binary_crossentropy", &["accuracy"])
        .unwrap();
    let history = model
        .fit(
            x.clone(),
            &y,
            FitOptions::new()
                .epochs(15)
                .batch_size(32)
                .validation_split(0.25)
                .verbose(Verbosity::Silent),
        )
        .unwrap();
    assert!(history.last("val_accuracy").unwrap() > 0.99, "{history:?}");
    let (xt, yt) = data(100, 2);
    let logs = model.evaluate(xt.clone(), yt.clone(), 16).unwrap();
    assert!(logs["accuracy"] > 0.99, "{logs:?}");
    // Batches of different words through the same compiled plan: each gets its own answer.
    let p = model
        .predict(vec![xt], 10)
        .unwrap()
        .remove(0)
        .to_vec::<f32>()
        .unwrap();
    let want = yt.to_vec::<f32>().unwrap();
    assert!(p.iter().zip(&want).all(|(p, w)| (p - w).abs() < 0.5));
}
