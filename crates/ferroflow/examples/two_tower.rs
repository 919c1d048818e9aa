//! Two-tower retrieval, as TensorFlow Recommenders' basic retrieval tutorial builds it, on
//! the MovieLens-shaped synthetic ratings shipped in the repo
//! (`tools/make_movielens_synth.py`):
//! `cargo run --release -p ferroflow --example two_tower [-- OUT_DIR]`.
//!
//! A user tower (`StringLookup` + `Embedding` on the user id) and a movie tower (the same
//! on the title) are trained with the in-batch softmax loss; `FactorizedTopK` measures how
//! often a held-out movie is among a user's top 1/5/10/50/100 of all movies; then a
//! `BruteForce` index over every movie is put behind the user tower, saved as version 1
//! of a servable model (`OUT_DIR/index/1`, default `target/two_tower`) that
//! `ferroflow serve --model_base_path OUT_DIR/index` answers with the top 100 titles.

use ferroflow as ff;
use ff::data::{csv_dataset, CsvColumn};
use ff::keras::layers::{Embedding, StringLookup};
use ff::keras::optimizers::Optimizer;
use ff::keras::retrieval::{BruteForce, FactorizedTopK, Retrieval};
use ff::keras::{Input, LayerExt, LayerRef, Model, SymbolicCall};
use ff::{DType, GradientTape, Tensor};
use std::sync::Arc;

const DIM: usize = 32;
const BATCH: usize = 1024;
const EPOCHS: usize = 8;

/// Every (user, title) rating of the synthetic set, in file order.
fn ratings() -> ff::Result<(Tensor, Tensor)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ferroflow-keras/data/movielens_synth.csv.gz"
    );
    let cols = vec![
        CsvColumn::required(DType::String),
        CsvColumn::required(DType::String),
    ];
    let all = csv_dataset(&[path], cols, true, b',', Some(vec![0, 1]))?
        .batch(1 << 20, false)?
        .collect()?;
    let row = &all[0];
    Ok((row.get(0)?.tensor()?.clone(), row.get(1)?.tensor()?.clone()))
}

/// A tower: a lookup adapted on `values` into an embedding of `DIM`.
fn tower(values: &Tensor) -> ff::Result<(LayerRef, LayerRef)> {
    let lookup = StringLookup::new();
    lookup.adapt(values)?;
    let size = lookup.vocabulary_size();
    Ok((Arc::new(lookup), Arc::new(Embedding::new(size, DIM))))
}

fn embed(tower: &(LayerRef, LayerRef), x: &Tensor) -> ff::Result<Tensor> {
    let ids = tower.0.forward1(x, false)?;
    tower.1.forward1(&ids, true)
}

fn main() -> ff::Result<()> {
    let out_dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/two_tower".into());
    ff::random::set_seed(42);
    let (users, titles) = ratings()?;
    let n = users.shape()[0];
    // A random 80/20 split of the ratings.
    let order = permutation(n)?;
    let cut = n * 4 / 5;
    let pick = |t: &Tensor, lo: usize, hi: usize| -> ff::Result<Tensor> {
        t.gather(&order.slice(&[lo], &[(hi - lo) as isize])?, 0)
    };
    let (train_u, train_t) = (pick(&users, 0, cut)?, pick(&titles, 0, cut)?);
    let (test_u, test_t) = (pick(&users, cut, n)?, pick(&titles, cut, n)?);
    let user_tower = tower(&users)?;
    let movie_tower = tower(&titles)?;
    let distinct = unique(&titles.to_strings()?);
    let movies = Tensor::from_strings(&distinct, &[distinct.len()])?;
    println!(
        "{n} ratings: {} users, {} movies; train {cut}, test {}",
        unique(&users.to_strings()?).len(),
        movies.numel(),
        n - cut
    );

    // How often each movie appears in training: the in-batch softmax sees popular movies
    // as negatives more often, which the loss corrects with these probabilities.
    let train_ids = movie_tower.0.forward1(&train_t, false)?.to_vec::<i64>()?;
    let mut counts = vec![0.0f64; train_ids.iter().max().map_or(0, |&m| m as usize + 1)];
    for &i in &train_ids {
        counts[i as usize] += 1.0;
    }
    let task = Retrieval::new().remove_accidental_hits(true);
    let mut optimizer = Optimizer::adagrad(0.05);
    // The embeddings are built by their first call.
    embed(&user_tower, &users.slice(&[0], &[1])?)?;
    embed(&movie_tower, &titles.slice(&[0], &[1])?)?;
    let vars: Vec<_> = [&user_tower.1, &movie_tower.1]
        .iter()
        .flat_map(|l| l.trainable_variables())
        .collect();
    for epoch in 0..EPOCHS {
        let perm = permutation(cut)?;
        let mut total = 0.0;
        for start in (0..cut).step_by(BATCH) {
            let size = BATCH.min(cut - start);
            let idx = perm.slice(&[start], &[size as isize])?;
            let (u, t) = (train_u.gather(&idx, 0)?, train_t.gather(&idx, 0)?);
            let tape = GradientTape::new();
            let q = embed(&user_tower, &u)?;
            let c = embed(&movie_tower, &t)?;
            let p: Vec<f64> = idx
                .to_vec::<i32>()?
                .iter()
                .map(|&r| counts[train_ids[r as usize] as usize] / cut as f64)
                .collect();
            let p = Tensor::from_vec(p, &[size])?;
            let loss = task.loss(&q, &c, Some(&t), None, Some(&p))?;
            let grads = tape.gradient(&loss, &vars)?;
            optimizer.apply_gradients(&grads, &vars)?;
            total += loss.to_f64_vec()[0];
        }
        println!(
            "epoch {}/{EPOCHS}: loss {:.1} per batch",
            epoch + 1,
            total / cut.div_ceil(BATCH) as f64
        );
    }

    // Held-out ratings against every movie.
    let candidates = embed(&movie_tower, &movies)?;
    let ks = [1, 5, 10, 50, 100];
    let mut top_k = FactorizedTopK::new(&candidates, &ks)?;
    for start in (0..n - cut).step_by(BATCH) {
        let size = BATCH.min(n - cut - start) as isize;
        let u = test_u.slice(&[start], &[size])?;
        let t = test_t.slice(&[start], &[size])?;
        top_k.update_state(&embed(&user_tower, &u)?, &embed(&movie_tower, &t)?)?;
    }
    for (name, value) in top_k.results() {
        println!("test {name}: {value:.3}");
    }
    println!(
        "(a random ranking scores {:.3} at 100)",
        100.0 / movies.numel() as f64
    );

    // The index: user id in, the top 100 titles and scores out.
    let index = BruteForce::new(100)?.name("top_k");
    index.index(&candidates, Some(&movies))?;
    let user = Input::with(vec![], DType::String, Some("user_id"));
    let q = (&user_tower.0).apply(&user)?;
    let q = (&user_tower.1).apply(&q)?;
    let outs = index.call_many(&[q])?;
    let model = Model::named(&[user], &outs, "user_to_movies")?;
    let path = std::path::Path::new(&out_dir).join("index/1");
    model.save(&path)?;
    let probe = Tensor::from_strings(&["1", "42"], &[2])?;
    let top = model.predict(vec![probe], 2)?;
    let best = top[1].to_strings()?;
    println!(
        "saved {}; user 1's top 3: {:?}; user 42's: {:?}",
        path.display(),
        &best[..3],
        &best[100..103]
    );
    Ok(())
}

/// A random order of `0..n` (as `tf.random.shuffle(tf.range(n))`).
fn permutation(n: usize) -> ff::Result<Tensor> {
    ff::random::uniform(&[n], 0.0, 1.0, DType::F32, None)?.argsort(0, false)
}

/// The distinct values, in first-seen order.
fn unique(values: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values
        .iter()
        .filter(|v| seen.insert(v.as_str()))
        .cloned()
        .collect()
}
