//! Initializer statistics, orthogonality, and regularisation in the training loss.

use ferroflow_core::{random, DType, Tensor};
use ferroflow_keras::initializers::Initializer;
use ferroflow_keras::layers::Dense;
use ferroflow_keras::regularizers::Regularizer;
use ferroflow_keras::{Input, LayerExt, Model};

fn stats(t: &Tensor) -> (f64, f64, f64) {
    let v = t.to_f64_vec();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    (mean, var.sqrt(), max)
}

#[test]
fn variance_scaling_matches_keras_formulas() {
    random::set_seed(0);
    // glorot_uniform on (400, 600): limit sqrt(6 / 1000).
    let g = Initializer::glorot_uniform()
        .init(&[400, 600], DType::F32)
        .unwrap();
    let (m, s, mx) = stats(&g);
    let limit = (6.0f64 / 1000.0).sqrt();
    assert!(m.abs() < 2e-3 && mx <= limit && (s - limit / 3f64.sqrt()).abs() < 2e-3);
    // he_normal on a conv kernel (3, 3, 16, 32): fan_in 144, stddev sqrt(2/144), truncated at 2 sd.
    let h = Initializer::from_name("he_normal")
        .unwrap()
        .init(&[3, 3, 16, 32], DType::F32)
        .unwrap();
    let (_, s, mx) = stats(&h);
    let sd = (2.0f64 / 144.0).sqrt();
    assert!((s - sd).abs() < 0.05 * sd, "{s} vs {sd}");
    assert!(mx <= 2.0 * sd / 0.879_625_661_034_239_8 + 1e-6);
    // Orthogonal: columns (or rows) orthonormal.
    for shape in [[8usize, 5], [5, 8]] {
        let q = Initializer::from_name("orthogonal")
            .unwrap()
            .init(&shape, DType::F32)
            .unwrap();
        let gram = if shape[0] >= shape[1] {
            q.t().unwrap().matmul(&q).unwrap()
        } else {
            q.matmul(&q.t().unwrap()).unwrap()
        };
        let k = shape[0].min(shape[1]);
        let eye = Tensor::eye(k, k, DType::F32).unwrap();
        for (a, b) in gram.to_f64_vec().iter().zip(eye.to_f64_vec()) {
            assert!((a - b).abs() < 1e-5);
        }
    }
    assert!(Initializer::from_name("no_such_init").is_err());
}

#[test]
fn regularizers_add_to_the_loss() {
    random::set_seed(1);
    let m = Model::sequential(None);
    m.add(Input::new(&[3])).unwrap();
    m.add(Dense::new(2).kernel_regularizer(Regularizer::l1_l2(0.01, 0.1)))
        .unwrap();
    let mut m = m;
    m.compile("sgd", "mse", &[]).unwrap();
    let x = random::normal(&[4, 3], 0.0, 1.0, DType::F32, None).unwrap();
    let y = Tensor::zeros(&[4, 2], DType::F32).unwrap();
    let logs = m.test_on_batch(&x, &y).unwrap();
    let w = m.layers()[0].weights()[0]
        .variable
        .read_untracked()
        .to_f64_vec();
    let pred = m.predict(&x, 4).unwrap().remove(0).to_f64_vec();
    let mse = pred.iter().map(|p| p * p).sum::<f64>() / pred.len() as f64;
    let penalty =
        0.01 * w.iter().map(|v| v.abs()).sum::<f64>() + 0.1 * w.iter().map(|v| v * v).sum::<f64>();
    assert!(
        (logs["loss"] - (mse + penalty)).abs() < 1e-5,
        "{} vs {}",
        logs["loss"],
        mse + penalty
    );
}
