//! A 1x1 convolution and the depthwise convolution that alone reads its output (each with
//! a bias and an activation, a MobileNet block's expansion and depthwise step) run as one
//! banded step in a compiled function, with the eager results; pairs that cannot (the
//! expanded map also returned, an epilogue that is no affine map) still give them.

use ferroflow_core::ops::conv::Padding;
use ferroflow_core::{
    random, BinaryOp, DType, PackedConvFilter, Result, Tensor, UnaryOp, Variable,
};

mod common;
use common::compiled_matches_eager;
use ferroflow_graph::function;

fn normal(shape: &[usize], seed: u64) -> Tensor {
    random::normal(shape, 0.0, 1.0, DType::F32, Some(seed)).unwrap()
}

fn relu6(y: Tensor) -> Result<Tensor> {
    y.binary(BinaryOp::Maximum, &Tensor::scalar(0.0f32))?
        .binary(BinaryOp::Minimum, &Tensor::scalar(6.0f32))
}

/// The pair's settings: strides and padding of the depthwise step, batch, and whether the
/// filters are variables (read in the function) instead of captured constants.
struct Case {
    strides: (usize, usize),
    padding: Padding,
    batch: usize,
    variables: bool,
    /// Also return the expanded map: it must then be made whole.
    expanded_out: bool,
    /// The expansion's epilogue squares its values (no affine map and activation).
    square: bool,
}

const BASE: Case = Case {
    strides: (1, 1),
    padding: Padding::Same,
    batch: 1,
    variables: false,
    expanded_out: false,
    square: false,
};

/// Pairs run banded where the 1x1 filter can be packed: on a CPU with a packed kernel.
fn banded(pairs: usize) -> usize {
    let packs = PackedConvFilter::new(&normal(&[1, 1, 1, 1], 0))
        .unwrap()
        .is_some();
    if packs {
        pairs
    } else {
        0
    }
}

/// Runs `case` eagerly and compiled (twice); returns the number of banded pairs.
fn check(case: Case) -> usize {
    // 48x40 pixels of 144 channels: 1.1 MB, enough to run in bands.
    let (cin, mid) = (24, 144);
    let pw = normal(&[1, 1, cin, mid], 1)
        .mul(&Tensor::scalar(0.3f32))
        .unwrap();
    let dw = normal(&[3, 3, mid, 1], 2);
    let (b1, b2) = (normal(&[mid], 3), normal(&[mid], 4));
    let vars = case
        .variables
        .then(|| (Variable::new(pw.clone()), Variable::new(dw.clone())));
    let f = move |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let (pw, dw) = match &vars {
            Some((p, d)) => (p.value(), d.value()),
            None => (pw.clone(), dw.clone()),
        };
        let e = x[0].conv2d(&pw, (1, 1), Padding::Valid, (1, 1))?.add(&b1)?;
        let e = if case.square { e.mul(&e)? } else { relu6(e)? };
        let y = e.depthwise_conv2d(&dw, case.strides, case.padding, (1, 1))?;
        let y = relu6(y.add(&b2)?)?;
        Ok(if case.expanded_out {
            vec![y, e]
        } else {
            vec![y]
        })
    };
    let x = normal(&[case.batch, 48, 40, cin], 5);
    let mut compiled = compiled_matches_eager(f, &x);
    let cf = compiled.concrete_function(&[x]).unwrap();
    cf.banded_pairs().len()
}

#[test]
fn expansion_and_depthwise_run_banded() {
    assert_eq!(check(BASE), banded(1));
}

#[test]
fn strided_explicit_padding_and_a_batch() {
    let case = Case {
        strides: (2, 2),
        padding: Padding::Explicit([1, 0, 0, 1]),
        batch: 2,
        ..BASE
    };
    assert_eq!(check(case), banded(1));
}

#[test]
fn filters_read_from_variables() {
    let case = Case {
        variables: true,
        padding: Padding::Valid,
        ..BASE
    };
    assert_eq!(check(case), banded(1));
}

#[test]
fn an_expanded_map_also_returned_is_made_whole() {
    let case = Case {
        expanded_out: true,
        ..BASE
    };
    assert_eq!(check(case), 0);
}

#[test]
fn an_epilogue_that_is_no_affine_map_runs_the_two_one_after_the_other() {
    let case = Case {
        square: true,
        ..BASE
    };
    // Paired, but run as two steps: the values must still be the eager ones.
    check(case);
}

#[test]
fn a_relu_in_between_and_a_sigmoid_after() {
    // Activations other than ReLU6 go to the epilogues too.
    let pw = normal(&[1, 1, 16, 128], 6);
    let dw = normal(&[5, 5, 128, 1], 7);
    let f = move |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let e = x[0]
            .conv2d(&pw, (1, 1), Padding::Valid, (1, 1))?
            .unary(UnaryOp::Relu)?;
        let y = e.depthwise_conv2d(&dw, (1, 1), Padding::Same, (2, 2))?;
        Ok(vec![y.unary(UnaryOp::Sigmoid)?])
    };
    let x = normal(&[1, 64, 48, 16], 8);
    let want = f(std::slice::from_ref(&x)).unwrap().remove(0);
    let mut compiled = function(f);
    let got = compiled.call(std::slice::from_ref(&x)).unwrap().remove(0);
    for (a, b) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
    let cf = compiled.concrete_function(&[x]).unwrap();
    assert_eq!(cf.banded_pairs().len(), banded(1));
}
