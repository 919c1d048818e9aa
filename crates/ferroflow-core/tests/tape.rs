//! GradientTape semantics: watching, variables, persistence, higher orders, custom rules.

use ferroflow_core::autodiff::pause_recording;
use ferroflow_core::{
    custom_gradient, DType, Gradient, GradientTape, Tensor, UnconnectedGradients, Variable,
};

fn dense(g: &Option<Gradient>) -> Vec<f32> {
    g.as_ref()
        .unwrap()
        .to_dense()
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn trainable_variables_are_watched_automatically() {
    let w = Variable::new(Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap());
    let frozen = Variable::with_options(
        Tensor::from_vec(vec![3.0f32, 4.0], &[2]).unwrap(),
        "frozen",
        false,
    );
    let tape = GradientTape::new();
    let y = w
        .value()
        .mul(&frozen.value())
        .unwrap()
        .sum(0, false)
        .unwrap();
    let g = tape.gradient(&y, &[&w, &frozen]).unwrap();
    assert_eq!(dense(&g[0]), vec![3.0, 4.0]);
    assert!(g[1].is_none(), "non-trainable variables are not watched");
}

#[test]
fn watch_accessed_variables_false_needs_explicit_watch() {
    let w = Variable::new(Tensor::scalar(2.0f32));
    let tape = GradientTape::with_options(false, false);
    tape.watch_variable(&w);
    let y = w.value().square().unwrap();
    assert_eq!(dense(&tape.gradient(&y, &[&w]).unwrap()[0]), vec![4.0]);
    assert_eq!(tape.watched_variables().len(), 1);
}

#[test]
fn non_persistent_tape_is_single_use_and_persistent_is_not() {
    let x = Tensor::scalar(3.0f32);
    let tape = GradientTape::new();
    tape.watch(&x);
    let y = x.square().unwrap();
    assert!(tape.gradient(&y, &[&x]).is_ok());
    let err = tape.gradient(&y, &[&x]).unwrap_err().to_string();
    assert!(err.contains("non-persistent"), "{err}");

    let p = GradientTape::persistent();
    p.watch(&x);
    let y = x.square().unwrap();
    let z = y.mul(&x).unwrap();
    assert_eq!(dense(&p.gradient(&y, &[&x]).unwrap()[0]), vec![6.0]);
    assert_eq!(dense(&p.gradient(&z, &[&x]).unwrap()[0]), vec![27.0]);
}

#[test]
fn unconnected_and_integer_sources() {
    let x = Tensor::scalar(1.0f32);
    let other = Tensor::scalar(5.0f32);
    let idx = Tensor::from_vec(vec![1i32, 0], &[2]).unwrap();
    let table = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    let tape = GradientTape::persistent();
    tape.watch(&x);
    tape.watch(&other);
    tape.watch(&idx);
    tape.watch(&table);
    let y = x
        .mul_scalar(2.0)
        .unwrap()
        .add(&table.gather(&idx, 0).unwrap().sum(0, false).unwrap())
        .unwrap();
    let g = tape.gradient(&y, &[&x, &other, &idx]).unwrap();
    assert_eq!(dense(&g[0]), vec![2.0]);
    assert!(g[1].is_none() && g[2].is_none());
    let z = tape
        .gradient_with(&y, &[&other], None, UnconnectedGradients::Zero)
        .unwrap();
    assert_eq!(dense(&z[0]), vec![0.0]);
    // The table's gradient comes back sparse.
    let gt = tape.gradient(&y, &[&table]).unwrap();
    assert!(matches!(gt[0], Some(Gradient::Sparse(_))));
    assert_eq!(dense(&gt[0]), vec![1.0, 1.0]);
}

#[test]
fn non_scalar_targets_sum_and_output_gradients_weight() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
    let tape = GradientTape::persistent();
    tape.watch(&x);
    let y = x.square().unwrap();
    assert_eq!(
        dense(&tape.gradient(&y, &[&x]).unwrap()[0]),
        vec![2.0, 4.0, 6.0]
    );
    let w = Tensor::from_vec(vec![1.0f32, 0.0, -1.0], &[3]).unwrap();
    let g = tape
        .gradient_with(&y, &[&x], Some(&w), UnconnectedGradients::None)
        .unwrap();
    assert_eq!(dense(&g[0]), vec![2.0, 0.0, -6.0]);
    let bad = Tensor::ones(&[2], DType::F32).unwrap();
    assert!(tape
        .gradient_with(&y, &[&x], Some(&bad), UnconnectedGradients::None)
        .is_err());
}

#[test]
fn second_derivatives_through_nested_tapes() {
    let x = Tensor::from_vec(vec![0.5f64, -1.0], &[2]).unwrap();
    let outer = GradientTape::new();
    outer.watch(&x);
    let inner = GradientTape::new();
    inner.watch(&x);
    let y = x.pow_scalar(3.0).unwrap().add(&x.tanh().unwrap()).unwrap();
    let dy = inner.gradient(&y, &[&x]).unwrap()[0]
        .as_ref()
        .unwrap()
        .to_dense()
        .unwrap();
    let d2 = outer.gradient(&dy, &[&x]).unwrap()[0]
        .as_ref()
        .unwrap()
        .to_dense()
        .unwrap();
    for (i, &v) in [0.5f64, -1.0].iter().enumerate() {
        let t = v.tanh();
        let expect = 6.0 * v - 2.0 * t * (1.0 - t * t);
        assert!((d2.to_vec::<f64>().unwrap()[i] - expect).abs() < 1e-12);
    }
    // Matmul: f(A) = sum((A B)^2) has Hessian-vector structure; check d/dA of sum(dF/dA).
    let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let b = Tensor::from_vec(vec![0.5f64, -1.0, 2.0, 1.0], &[2, 2]).unwrap();
    let outer = GradientTape::new();
    outer.watch(&a);
    let inner = GradientTape::new();
    inner.watch(&a);
    let f = a
        .matmul(&b)
        .unwrap()
        .square()
        .unwrap()
        .sum(ferroflow_core::Axes::All, false)
        .unwrap();
    let ga = inner.gradient(&f, &[&a]).unwrap()[0]
        .as_ref()
        .unwrap()
        .to_dense()
        .unwrap();
    // ga = 2 (A B) Bᵀ, so d(sum ga)/dA = 2 · 1 · (B Bᵀ) summed over rows: 2·(ones·B Bᵀ).
    let h = outer
        .gradient(&ga.sum(ferroflow_core::Axes::All, false).unwrap(), &[&a])
        .unwrap()[0]
        .as_ref()
        .unwrap()
        .to_dense()
        .unwrap();
    let bbt = b.matmul_t(&b, false, true).unwrap();
    let expect = Tensor::ones(&[2, 2], DType::F64)
        .unwrap()
        .matmul(&bbt)
        .unwrap()
        .mul_scalar(2.0)
        .unwrap();
    assert_eq!(h.to_vec::<f64>().unwrap(), expect.to_vec::<f64>().unwrap());
}

#[test]
fn stop_gradient_stop_recording_and_custom_gradient() {
    let x = Tensor::scalar(2.0f32);
    let tape = GradientTape::persistent();
    tape.watch(&x);
    let y = x.square().unwrap().stop_gradient().mul(&x).unwrap();
    assert_eq!(dense(&tape.gradient(&y, &[&x]).unwrap()[0]), vec![4.0]);
    let z = {
        let _pause = tape.stop_recording();
        x.square().unwrap()
    };
    assert!(tape.gradient(&z, &[&x]).unwrap()[0].is_none());
    let _p = pause_recording();
    drop(_p);
    let c = custom_gradient(std::slice::from_ref(&x), |xs| {
        let y = xs[0].exp()?;
        Ok((
            y,
            Box::new(|g: &Tensor| Ok(vec![Some(g.mul_scalar(10.0)?)])),
        ))
    })
    .unwrap();
    assert_eq!(dense(&tape.gradient(&c, &[&x]).unwrap()[0]), vec![10.0]);
}

#[test]
fn variable_assignments_check_shape_and_dtype() {
    let v = Variable::with_options(Tensor::zeros(&[2, 2], DType::F32).unwrap(), "kernel", true);
    let err = v
        .assign(&Tensor::zeros(&[3], DType::F32).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kernel") && err.contains("[2, 2]") && err.contains("[3]"),
        "{err}"
    );
    assert!(v
        .assign_add(&Tensor::zeros(&[2, 2], DType::F64).unwrap())
        .is_err());
    assert_eq!(v.read_untracked().to_vec::<f32>().unwrap(), vec![0.0; 4]);
    v.assign_add(&Tensor::ones(&[2, 2], DType::F32).unwrap())
        .unwrap();
    v.assign_sub(&Tensor::full(&[2, 2], 0.25, DType::F32).unwrap())
        .unwrap();
    assert_eq!(v.read_untracked().to_vec::<f32>().unwrap(), vec![0.75; 4]);
    // Assignments are not recorded: a tape sees only reads.
    let tape = GradientTape::new();
    let y = v.value().sum(ferroflow_core::Axes::All, false).unwrap();
    v.assign_add(&Tensor::ones(&[2, 2], DType::F32).unwrap())
        .unwrap();
    assert_eq!(dense(&tape.gradient(&y, &[&v]).unwrap()[0]), vec![1.0; 4]);
}

#[test]
fn f16_values_differentiate_through_the_f32_compute_path() {
    let x = Tensor::from_vec(vec![1.0f32, -2.0], &[2])
        .unwrap()
        .cast(DType::F16)
        .unwrap();
    let tape = GradientTape::new();
    tape.watch(&x);
    let y = x.square().unwrap().mul(&x).unwrap();
    let g = tape.gradient(&y, &[&x]).unwrap()[0]
        .as_ref()
        .unwrap()
        .to_dense()
        .unwrap();
    assert_eq!(g.dtype(), DType::F16);
    assert_eq!(
        g.cast(DType::F32).unwrap().to_vec::<f32>().unwrap(),
        vec![3.0, 12.0]
    );
}

#[test]
fn streamed_gradients_arrive_last_layer_first_while_the_pass_runs() -> ferroflow_core::Result<()> {
    use ferroflow_core::Axes;
    // Three layers; w0 is read first, w2 last, and `unused` never.
    let w: Vec<Variable> = (0..3)
        .map(|i| Variable::new(Tensor::from_vec(vec![0.5f32 + i as f32; 4], &[2, 2]).unwrap()))
        .collect();
    let unused = Variable::new(Tensor::scalar(1.0f32));
    let x = Tensor::from_vec(vec![1.0f32, -2.0, 0.5, 3.0], &[2, 2])?;
    let tape = GradientTape::new();
    let mut h = x.clone();
    for v in &w {
        h = h.matmul(&v.value())?.tanh()?;
    }
    let loss = h.sum(Axes::All, false)?;
    let sources = [w[0].clone(), w[1].clone(), w[2].clone(), unused.clone()];
    let mut order = Vec::new();
    let streamed = tape.gradient_streamed(
        &loss,
        &sources,
        None,
        UnconnectedGradients::None,
        &mut |i, g| {
            order.push(i);
            Ok(g)
        },
    )?;
    assert_eq!(
        order,
        vec![2, 1, 0],
        "each as soon as the pass is done with it"
    );
    assert!(streamed[3].is_none());
    // The same values as the plain call.
    let tape = GradientTape::new();
    let mut h = x.clone();
    for v in &w {
        h = h.matmul(&v.value())?.tanh()?;
    }
    let plain = tape.gradient(&h.sum(Axes::All, false)?, &sources)?;
    for (a, b) in streamed.iter().zip(&plain) {
        match (a, b) {
            (Some(a), Some(b)) => assert_eq!(
                a.to_dense()?.to_vec::<f32>()?,
                b.to_dense()?.to_vec::<f32>()?
            ),
            (None, None) => {}
            _ => panic!("streamed and plain gradients disagree on which exist"),
        }
    }
    Ok(())
}
