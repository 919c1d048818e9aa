//! Elementwise ops after a convolution, fused into it: a bias and a ReLU, a ReLU6 built
//! from maximum/minimum, another activation, and a residual add all give the eager
//! results.

use ferroflow_core::ops::conv::Padding;
use ferroflow_core::{random, BinaryOp, DType, Result, Tensor, UnaryOp};
use ferroflow_graph::{function, NodeKind};

fn normal(shape: &[usize], seed: u64) -> Tensor {
    random::normal(shape, 0.0, 2.0, DType::F32, Some(seed)).unwrap()
}

/// A convolution, then `tail` on its output (with the input for a residual).
fn check(tail: fn(Tensor, &Tensor) -> Result<Tensor>) {
    let filter = normal(&[3, 3, 8, 8], 1);
    let f = move |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let y = x[0].conv2d(&filter, (1, 1), Padding::Same, (1, 1))?;
        Ok(vec![tail(y, &x[0])?])
    };
    let x = normal(&[2, 9, 7, 8], 2);
    let want = f(std::slice::from_ref(&x)).unwrap().remove(0);
    let mut compiled = function(f);
    let got = compiled.call(std::slice::from_ref(&x)).unwrap().remove(0);
    let again = compiled.call(std::slice::from_ref(&x)).unwrap().remove(0);
    let cf = compiled
        .concrete_function(std::slice::from_ref(&x))
        .unwrap();
    assert!(
        cf.graph()
            .nodes
            .iter()
            .any(|n| matches!(&n.kind, NodeKind::Fused(k) if k.prologue.is_some())),
        "the tail fuses into the convolution"
    );
    for y in [got, again] {
        assert_eq!(y.shape(), want.shape());
        for (a, b) in y.to_f64_vec().iter().zip(want.to_f64_vec()) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

fn bias() -> Tensor {
    normal(&[8], 3)
}

#[test]
fn bias_and_relu() {
    check(|y, _| y.add(&bias())?.unary(UnaryOp::Relu));
}

#[test]
fn relu6_from_maximum_and_minimum() {
    check(|y, _| {
        y.add(&bias())?
            .binary(BinaryOp::Maximum, &Tensor::scalar(0.0f32))?
            .binary(BinaryOp::Minimum, &Tensor::scalar(6.0f32))
    });
}

#[test]
fn a_clamp_that_is_no_relu() {
    check(|y, _| {
        y.binary(BinaryOp::Maximum, &Tensor::scalar(-1.0f32))?
            .binary(BinaryOp::Minimum, &Tensor::scalar(1.0f32))
    });
}

#[test]
fn bias_and_another_activation() {
    check(|y, _| y.add(&bias())?.unary(UnaryOp::Sigmoid));
}

#[test]
fn residual_add_then_relu() {
    check(|y, x| y.add(x)?.unary(UnaryOp::Relu));
}

#[test]
fn inference_batch_norm_then_swish() {
    check(|y, _| {
        let (mean, gamma, beta) = (normal(&[8], 4), normal(&[8], 5), normal(&[8], 6));
        let inv = normal(&[8], 7).abs()?.add_scalar(0.5)?;
        y.sub(&mean)?.mul(&inv.mul(&gamma)?)?.add(&beta)?.swish()
    });
}

#[test]
fn scale_divide_and_scalar_shift() {
    check(|y, _| {
        y.mul(&normal(&[8], 8))?
            .div(&Tensor::scalar(3.0f32))?
            .add_scalar(0.25)?
            .unary(UnaryOp::Relu6)
    });
}

#[test]
fn constant_minus_the_output_is_left_to_the_tiles() {
    check(|y, _| Tensor::scalar(1.0f32).sub(&y)?.unary(UnaryOp::Relu));
}

#[test]
fn batch_norm_then_a_residual_then_relu6() {
    check(|y, x| {
        let (gamma, beta) = (normal(&[8], 9), normal(&[8], 10));
        y.mul(&gamma)?
            .add(&beta)?
            .add(x)?
            .add(&bias())?
            .unary(UnaryOp::Relu6)
    });
}

#[test]
fn a_residual_scaled_afterwards_or_added_twice() {
    check(|y, x| y.add(&bias())?.add(x)?.mul(&normal(&[8], 11)));
    check(|y, x| y.add(x)?.add(x)?.unary(UnaryOp::Relu));
    check(|y, x| y.sub(x)?.unary(UnaryOp::Relu));
}

/// A filter read from a variable runs packed too, and a new value of the variable is
/// packed again: the compiled result follows the value, as eager does.
#[test]
fn a_variable_filter_follows_its_value() {
    let filter = ferroflow_core::Variable::new(normal(&[3, 3, 8, 8], 1));
    let v = filter.clone();
    let f = move |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let y = x[0].conv2d(&v.value(), (1, 1), Padding::Same, (1, 1))?;
        Ok(vec![y.add(&bias())?.unary(UnaryOp::Relu)?])
    };
    let x = normal(&[2, 9, 7, 8], 2);
    let mut compiled = function(f.clone());
    for step in 0..3 {
        if step > 0 {
            filter.assign(&normal(&[3, 3, 8, 8], 10 + step)).unwrap();
        }
        let want = f(std::slice::from_ref(&x)).unwrap().remove(0);
        for _ in 0..2 {
            let got = compiled.call(std::slice::from_ref(&x)).unwrap().remove(0);
            for (a, b) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "step {step}: {a} vs {b}"
                );
            }
        }
    }
}
