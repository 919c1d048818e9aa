//! A Sequential MLP with Dropout on the digits data shipped with ferroflow
//! (`cargo run --release -p ferroflow --example sequential_mlp`).

use ferroflow as ff;
use ff::keras::datasets::digits;
use ff::keras::layers::{Dense, Dropout, Rescaling};
use ff::keras::{FitOptions, Input, Model};

fn main() -> ff::Result<()> {
    ff::random::set_seed(1);
    let ((x_train, y_train), (x_test, y_test)) = digits::load_split(0.2, 1)?;

    let mut model = Model::sequential(Some("mlp"));
    model.add(Input::new(&[64]))?;
    model.add(Rescaling::new(1.0 / 16.0, 0.0))?;
    model.add(Dense::new(64).activation("relu"))?;
    model.add(Dropout::new(0.2)?)?;
    model.add(Dense::new(10).activation("softmax"))?;
    print!("{}", model.summary());

    model.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])?;
    let history = model.fit(
        &x_train,
        &y_train,
        FitOptions::new()
            .epochs(30)
            .batch_size(32)
            .validation_split(0.1),
    )?;
    println!(
        "final val_accuracy {:.3}",
        history.last("val_accuracy").unwrap_or(0.0)
    );
    let test = model.evaluate(&x_test, &y_test, 128)?;
    println!("test accuracy {:.3}", test["accuracy"]);
    Ok(())
}
