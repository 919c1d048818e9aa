//! Random ops inside a function draw fresh numbers each call, from the same stream as
//! eager execution (its own test binary: it sets the process-wide seed).

use ferroflow_core::{random, DType, Tensor};
use ferroflow_graph::function;

#[test]
fn random_ops_draw_fresh_values_each_call() {
    ferroflow_core::random::set_seed(3);
    let mut f = function(|x: &[Tensor]| {
        Ok(vec![
            x[0].add(&random::uniform(x[0].shape(), 0.0, 1.0, DType::F32, None)?)?,
            x[0].dropout(0.5, true, None)?,
        ])
    });
    let x = Tensor::ones(&[64], DType::F32).unwrap();
    let a = f.call(std::slice::from_ref(&x)).unwrap()[0]
        .to_vec::<f32>()
        .unwrap();
    let b = f.call(std::slice::from_ref(&x)).unwrap()[0]
        .to_vec::<f32>()
        .unwrap();
    assert_ne!(a, b, "a compiled random op must not freeze into a constant");
    // The compiled stream equals the eager one.
    ferroflow_core::random::set_seed(3);
    let e1 = x
        .add(&random::uniform(&[64], 0.0, 1.0, DType::F32, None).unwrap())
        .unwrap();
    let _ = x.dropout(0.5, true, None).unwrap();
    let e2 = x
        .add(&random::uniform(&[64], 0.0, 1.0, DType::F32, None).unwrap())
        .unwrap();
    assert_eq!(e1.to_vec::<f32>().unwrap(), a);
    assert_eq!(e2.to_vec::<f32>().unwrap(), b);
}
