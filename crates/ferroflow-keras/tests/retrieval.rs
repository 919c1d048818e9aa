//! Two-tower retrieval pieces: the in-batch softmax loss against a direct computation
//! and finite differences, the top-k metric, and a `BruteForce` index inside a model that
//! predicts, compiles, saves and loads.

use ferroflow_core::{DType, GradientTape, Tensor, Variable};
use ferroflow_keras::layers::{Embedding, StringLookup};
use ferroflow_keras::retrieval::{BruteForce, FactorizedTopK, Retrieval, RetrievalReduction};
use ferroflow_keras::{load_model, Input, LayerExt, LayerRef, Model, SymbolicCall};
use std::sync::Arc;

fn table(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..rows * dim)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// Softmax cross-entropy of row i against column i of q.c^T / t, in f64.
fn direct_loss(q: &[f32], c: &[f32], b: usize, d: usize, t: f64, ids: Option<&[i64]>) -> Vec<f64> {
    direct_loss_p(q, c, b, d, t, ids, None)
}

/// [`direct_loss`] with column j's logits lowered by `ln p[j]`.
fn direct_loss_p(
    q: &[f32],
    c: &[f32],
    b: usize,
    d: usize,
    t: f64,
    ids: Option<&[i64]>,
    p: Option<&[f64]>,
) -> Vec<f64> {
    (0..b)
        .map(|i| {
            let logit = |j: usize| {
                (0..d)
                    .map(|k| q[i * d + k] as f64 * c[j * d + k] as f64)
                    .sum::<f64>()
                    / t
                    - p.map_or(0.0, |p| p[j].ln())
            };
            let keep = |j: usize| j == i || ids.is_none_or(|ids| ids[j] != ids[i]);
            let lse = (0..b)
                .filter(|&j| keep(j))
                .map(|j| logit(j).exp())
                .sum::<f64>()
                .ln();
            lse - logit(i)
        })
        .collect()
}

#[test]
fn in_batch_softmax_loss_matches_a_direct_computation_and_finite_differences() {
    let (b, d) = (6, 4);
    let (q, c) = (table(b, d, 1), table(b, d, 2));
    let qt = Tensor::from_vec(q.clone(), &[b, d]).unwrap();
    let ct = Tensor::from_vec(c.clone(), &[b, d]).unwrap();
    let per = direct_loss(&q, &c, b, d, 1.0, None);
    let sum: f64 = per.iter().sum();
    let got = Retrieval::new()
        .loss(&qt, &ct, None, None, None)
        .unwrap()
        .to_f64_vec()[0];
    assert!((got - sum).abs() < 1e-5, "{got} vs {sum}");
    let mean = Retrieval::new()
        .reduction(RetrievalReduction::Mean)
        .temperature(0.5)
        .unwrap()
        .loss(&qt, &ct, None, None, None)
        .unwrap()
        .to_f64_vec()[0];
    let want = direct_loss(&q, &c, b, d, 0.5, None).iter().sum::<f64>() / b as f64;
    assert!((mean - want).abs() < 1e-5, "{mean} vs {want}");
    // Rows 1 and 4 hold the same item: each is dropped from the other's negatives.
    let ids = [10i64, 11, 12, 13, 11, 15];
    let idt = Tensor::from_vec(ids.to_vec(), &[b]).unwrap();
    let got = Retrieval::new()
        .remove_accidental_hits(true)
        .loss(&qt, &ct, Some(&idt), None, None)
        .unwrap()
        .to_f64_vec()[0];
    let want: f64 = direct_loss(&q, &c, b, d, 1.0, Some(&ids)).iter().sum();
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    assert!((got - sum).abs() > 1e-3, "the hit changed nothing");
    // Sampling-probability correction and per-query weights.
    let probs = [0.5, 0.01, 0.2, 0.05, 0.1, 0.3];
    let weights = [1.0, 0.0, 2.0, 1.0, 0.5, 1.0];
    let got = Retrieval::new()
        .loss(
            &qt,
            &ct,
            None,
            Some(&Tensor::from_vec(weights.to_vec(), &[b]).unwrap()),
            Some(&Tensor::from_vec(probs.to_vec(), &[b]).unwrap()),
        )
        .unwrap()
        .to_f64_vec()[0];
    let want: f64 = direct_loss_p(&q, &c, b, d, 1.0, None, Some(&probs))
        .iter()
        .zip(weights)
        .map(|(l, w)| l * w)
        .sum();
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");

    // Gradients in both towers against central differences.
    let (vq, vc) = (Variable::new(qt.clone()), Variable::new(ct.clone()));
    let tape = GradientTape::new();
    let loss = Retrieval::new()
        .loss(&vq.value(), &vc.value(), None, None, None)
        .unwrap();
    let grads = tape.gradient(&loss, &[vq.clone(), vc.clone()]).unwrap();
    for (g, (base, which)) in grads.iter().zip([(&q, 0), (&c, 1)]) {
        let g = g.as_ref().unwrap().to_dense().unwrap().to_f64_vec();
        for (i, gi) in g.iter().enumerate() {
            let eps = 1e-3f32;
            let at = |delta: f32| {
                let mut v = base.clone();
                v[i] += delta;
                let (q2, c2) = if which == 0 { (&v, &c) } else { (&q, &v) };
                direct_loss(q2, c2, b, d, 1.0, None).iter().sum::<f64>()
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            assert!(
                (gi - numeric).abs() < 2e-3,
                "grad[{which}][{i}] {gi} vs {numeric}"
            );
        }
    }
    assert!(Retrieval::new()
        .loss(&qt, &ct.slice(&[0, 0], &[3, -1]).unwrap(), None, None, None)
        .is_err());
    assert!(Retrieval::new()
        .remove_accidental_hits(true)
        .loss(&qt, &ct, None, None, None)
        .is_err());
}

#[test]
fn factorized_top_k_counts_candidates_scoring_above_the_true_one() {
    let (n, d) = (50, 8);
    let cands = table(n, d, 3);
    let ct = Tensor::from_vec(cands.clone(), &[n, d]).unwrap();
    let mut m = FactorizedTopK::new(&ct, &[1, 5, 50]).unwrap();
    // Queries equal to a candidate scaled up find it at rank 0 for most rows; the
    // direct count decides the expected values.
    let rows = [0usize, 7, 13, 49];
    let q: Vec<f32> = rows
        .iter()
        .flat_map(|&r| cands[r * d..(r + 1) * d].iter().map(|v| v * 3.0))
        .collect();
    let truth: Vec<f32> = rows
        .iter()
        .flat_map(|&r| cands[r * d..(r + 1) * d].to_vec())
        .collect();
    let qt = Tensor::from_vec(q.clone(), &[4, d]).unwrap();
    m.update_state(&qt, &Tensor::from_vec(truth, &[4, d]).unwrap())
        .unwrap();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let ranks: Vec<usize> = rows
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            let qi = &q[i * d..(i + 1) * d];
            let p = dot(qi, &cands[r * d..(r + 1) * d]);
            (0..n)
                .filter(|&j| dot(qi, &cands[j * d..(j + 1) * d]) > p)
                .count()
        })
        .collect();
    let res = m.results();
    for ((name, acc), k) in res.iter().zip([1, 5, 50]) {
        let want = ranks.iter().filter(|&&r| r < k).count() as f64 / 4.0;
        assert!(
            (acc - want).abs() < 1e-12,
            "{name}: {acc} vs {want} (ranks {ranks:?})"
        );
    }
    assert_eq!(res[2].1, 1.0);
    assert_eq!(res[0].0, "factorized_top_k/top_1_categorical_accuracy");
    m.reset_state();
    assert_eq!(m.results()[0].1, 0.0);
    assert!(m
        .update_state(&qt, &qt.slice(&[0, 0], &[2, -1]).unwrap())
        .is_err());
}

/// A query model `user id -> StringLookup -> Embedding -> BruteForce(k)` over items
/// with string titles.
fn index_model(k: usize) -> (Model, Vec<f32>, Vec<String>, LayerRef) {
    let users: Vec<String> = (0..20).map(|i| format!("user {i}")).collect();
    let lookup: LayerRef = Arc::new(
        StringLookup::new()
            .vocabulary(users.iter().map(|u| u.clone().into()).collect(), None)
            .unwrap(),
    );
    let emb: LayerRef = Arc::new(Embedding::new(21, 6));
    let input = Input::with(vec![], DType::String, Some("user_id"));
    let e = (&lookup).apply(&input).unwrap();
    let e = (&emb).apply(&e).unwrap();
    let (n, d) = (300, 6);
    let items = table(n, d, 9);
    let titles: Vec<String> = (0..n)
        .map(|i| format!("Movie {i} (19{:02})", i % 100))
        .collect();
    let index = BruteForce::new(k).unwrap().name("top_k");
    index
        .index(
            &Tensor::from_vec(items.clone(), &[n, d]).unwrap(),
            Some(&Tensor::from_strings(&titles, &[n]).unwrap()),
        )
        .unwrap();
    let outs = index.call_many(&[e]).unwrap();
    let model = Model::named(&[input], &outs, "index").unwrap();
    (model, items, titles, emb)
}

#[test]
fn brute_force_index_predicts_compiles_saves_and_loads() {
    let k = 10;
    let (model, items, titles, emb) = index_model(k);
    let queries: Vec<String> = (0..8)
        .map(|i| format!("user {}", i * 2))
        .chain(["stranger".to_string()])
        .collect();
    let x = Tensor::from_strings(&queries, &[queries.len()]).unwrap();
    let out = model.predict(vec![x.clone()], 4).unwrap();
    assert_eq!(out[0].shape(), [9, k]);
    assert_eq!(out[1].dtype(), DType::String);
    // The expected answer, scored directly from the embedding table.
    let table = emb.weights()[0].variable.value().to_vec::<f32>().unwrap();
    let d = 6;
    let scores = out[0].to_vec::<f32>().unwrap();
    let got_titles = out[1].to_strings().unwrap();
    for (r, u) in queries.iter().enumerate() {
        let row = u
            .strip_prefix("user ")
            .map_or(0, |i| i.parse::<usize>().unwrap() + 1);
        let q = &table[row * d..(row + 1) * d];
        let mut all: Vec<(f32, usize)> = (0..items.len() / d)
            .map(|j| {
                (
                    q.iter()
                        .zip(&items[j * d..(j + 1) * d])
                        .map(|(a, b)| a * b)
                        .sum(),
                    j,
                )
            })
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for t in 0..k {
            assert_eq!(
                got_titles[r * k + t],
                titles[all[t].1],
                "query {u} rank {t}"
            );
            assert!((scores[r * k + t] - all[t].0).abs() < 1e-5);
        }
    }
    // The same shapes reversed go through the compiled plan and follow the inputs.
    let rev = Tensor::from_vec((0..9i64).rev().collect::<Vec<_>>(), &[9]).unwrap();
    let back = model.predict(vec![x.gather(&rev, 0).unwrap()], 4).unwrap();
    assert_eq!(
        back[1].gather(&rev, 0).unwrap().to_strings().unwrap(),
        got_titles
    );
    // Saved and loaded in both formats, the index answers the same.
    let dir = std::env::temp_dir().join(format!("ff_retrieval_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for path in [dir.join("index.keras"), dir.join("index_dir")] {
        model.save(&path).unwrap();
        let loaded = load_model(&path).unwrap();
        let again = loaded.predict(vec![x.clone()], 16).unwrap();
        assert_eq!(
            again[1].to_strings().unwrap(),
            got_titles,
            "{}",
            path.display()
        );
        assert_eq!(again[0].to_vec::<f32>().unwrap(), scores);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn brute_force_refuses_bad_tables_and_empty_queries() {
    let index = BruteForce::new(5).unwrap();
    let q = Tensor::from_vec(vec![1.0f32; 8], &[2, 4]).unwrap();
    assert!(index
        .query(&q, 5)
        .unwrap_err()
        .to_string()
        .contains("index() first"));
    let small = Tensor::from_vec(vec![0.5f32; 12], &[3, 4]).unwrap();
    assert!(index
        .index(&small, None)
        .unwrap_err()
        .to_string()
        .contains("3 candidates"));
    let c = Tensor::from_vec(table(10, 4, 5), &[10, 4]).unwrap();
    let ids = Tensor::from_vec((0..9i64).collect::<Vec<_>>(), &[9]).unwrap();
    assert!(index.index(&c, Some(&ids)).is_err());
    assert!(index.is_empty(), "a refused index changes nothing");
    index.index(&c, None).unwrap();
    let (s, i) = index.query(&q, 5).unwrap();
    assert_eq!((s.shape(), i.dtype()), (&[2usize, 5][..], DType::I64));
    let wrong_dim = Tensor::from_vec(vec![1.0f32; 6], &[2, 3]).unwrap();
    assert!(index
        .query(&wrong_dim, 5)
        .unwrap_err()
        .to_string()
        .contains("[2, 3]"));
    assert!(BruteForce::new(0).is_err());
}
