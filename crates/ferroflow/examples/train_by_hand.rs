//! The README's hand-written training loop: GradientTape + Variable + Adam.

use ferroflow as ff;
use ff::keras::optimizers::Optimizer;

fn main() -> ff::Result<()> {
    let x = ff::random::normal(&[32, 4], 0.0, 1.0, ff::DType::F32, Some(1))?;
    let y = x.sum(-1, true)?; // learn y = x·1
    let w = ff::Variable::new(ff::Tensor::zeros(&[4, 1], ff::DType::F32)?);
    let mut opt = Optimizer::adam(0.1);
    let mut loss = None;
    for _ in 0..200 {
        let tape = ff::GradientTape::new(); // records ops on trainable variables
        let l = x
            .matmul(&w.value())?
            .sub(&y)?
            .square()?
            .mean(ff::Axes::All, false)?;
        let grads = tape.gradient(&l, &[&w])?;
        opt.apply_gradients(&grads, &[&w])?;
        loss = Some(l);
    }
    println!("final loss {}, weights {}", loss.unwrap(), w.value());
    Ok(())
}
