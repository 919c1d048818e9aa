//! A custom training loop with GradientTape around a Keras model, as in TF's
//! "writing a training loop from scratch" guide
//! (`cargo run --release -p ferroflow --example custom_training_loop`).

use ferroflow as ff;
use ff::keras::datasets::digits;
use ff::keras::layers::{Dense, Rescaling};
use ff::keras::losses::{Loss, SparseCategoricalCrossentropy};
use ff::keras::metrics::{MeanMetric, Metric, SampleFn};
use ff::keras::optimizers::Optimizer;
use ff::keras::{Input, Model};
use ff::GradientTape;

fn main() -> ff::Result<()> {
    ff::random::set_seed(7);
    let ((x_train, y_train), (x_test, y_test)) = digits::load_split(0.2, 7)?;
    let model = Model::sequential(None);
    model.add(Input::new(&[64]))?;
    model.add(Rescaling::new(1.0 / 16.0, 0.0))?;
    model.add(Dense::new(64).activation("relu"))?;
    model.add(Dense::new(10))?; // logits
    let loss_fn = SparseCategoricalCrossentropy { from_logits: true };
    let mut optimizer = Optimizer::adam(1e-3);
    let mut accuracy = MeanMetric::new("accuracy", SampleFn::SparseCategoricalAccuracy);
    let vars = model.trainable_variables();
    let n = x_train.shape()[0];
    let batch = 64;
    for epoch in 0..20 {
        accuracy.reset_state();
        let mut start = 0;
        while start < n {
            let size = (batch).min(n - start) as isize;
            let xb = x_train.slice(&[start, 0], &[size, -1])?;
            let yb = y_train.slice(&[start], &[size])?;
            let tape = GradientTape::new();
            let logits = model.call(&[xb], true)?.remove(0);
            let loss = loss_fn.compute(&yb, &logits, None)?;
            let grads = tape.gradient(&loss, &vars)?;
            optimizer.apply_gradients(&grads, &vars)?;
            accuracy.update_state(&yb, &logits, None)?;
            start += batch;
        }
        if epoch % 5 == 4 {
            println!(
                "epoch {:>2}: train accuracy {:.3}",
                epoch + 1,
                accuracy.result()
            );
        }
    }
    let logits = model.predict(&x_test, 256)?.remove(0);
    let mut test = MeanMetric::new("accuracy", SampleFn::SparseCategoricalAccuracy);
    test.update_state(&y_test, &logits, None)?;
    println!("test accuracy {:.3}", test.result());
    Ok(())
}
