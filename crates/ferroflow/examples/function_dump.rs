//! Prints the traced and optimised graphs of a compiled MLP training step.
use ferroflow as ff;
use ff::keras::optimizers::Optimizer;
use ff::{Axes, DType, GradientTape, Tensor, Variable};

fn main() -> ff::Result<()> {
    let sizes = [784, 256, 128, 10];
    let mut vars = Vec::new();
    for (i, w) in sizes.windows(2).enumerate() {
        let k = ff::random::uniform(&[w[0], w[1]], -0.05, 0.05, DType::F32, Some(i as u64))?;
        vars.push(Variable::with_options(
            k,
            &format!("dense_{i}/kernel"),
            true,
        ));
        vars.push(Variable::with_options(
            Tensor::zeros(&[w[1]], DType::F32)?,
            &format!("dense_{i}/bias"),
            true,
        ));
    }
    let mut opt = Optimizer::adam(1e-3);
    let mut step = ff::function(|a: &[Tensor]| {
        let tape = GradientTape::new();
        let mut h = a[0].clone();
        for (i, pair) in vars.chunks(2).enumerate() {
            h = h.matmul(&pair[0].value())?.add(&pair[1].value())?;
            if i < 2 {
                h = h.relu()?;
            }
        }
        let loss = h
            .log_softmax(-1)?
            .mul(&a[1])?
            .sum(-1, false)?
            .mean(Axes::All, false)?
            .neg()?;
        let grads = tape.gradient(&loss, &vars)?;
        opt.apply_gradients(&grads, &vars)?;
        Ok(vec![loss])
    })
    .with_name("train_step");
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(32);
    let x = ff::random::normal(&[batch, 784], 0.0, 1.0, DType::F32, Some(1))?;
    let y = Tensor::from_vec(
        (0..batch as i32).map(|i| i % 10).collect::<Vec<i32>>(),
        &[batch],
    )?
    .one_hot(10, 1.0, 0.0, DType::F32)?;
    let cf = step.concrete_function(&[x.clone(), y.clone()])?;
    println!("{}", cf.dump(false));
    println!("{}", cf.dump(true));
    println!("{:?}", cf.stats());
    println!("{}", cf.profile(&[x, y], 3000)?);
    if let Some(path) = std::env::args().nth(1) {
        std::fs::write(path, cf.dot(true)).map_err(|e| ff::Error::invalid("dot", e.to_string()))?;
    }
    Ok(())
}
