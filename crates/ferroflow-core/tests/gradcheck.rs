//! Finite-difference checks of every differentiable op's gradient rule.
//!
//! Each case differentiates `Σ w ⊙ f(inputs)` (fixed random weights `w`, so symmetric
//! errors cannot cancel) with the tape and with central differences. Ops with f64 kernels
//! are checked in f64; the f32-only kernels (conv, pooling) in f32 with a looser bound.

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in the case lists

use ferroflow_core::ops::conv::Padding;
use ferroflow_core::ops::remap::PadMode;
use ferroflow_core::ops::slice::SliceArg;
use ferroflow_core::{DType, GradientTape, Result, Tensor};

/// Deterministic values in [lo, hi) (a small LCG, so the file needs no RNG state).
fn values(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

fn t(shape: &[usize], seed: u64) -> Tensor {
    tr(shape, seed, -2.0, 2.0)
}

fn tr(shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(values(n, seed, lo, hi), shape).unwrap()
}

fn f32t(x: &Tensor) -> Tensor {
    x.cast(DType::F32).unwrap()
}

type Op = dyn Fn(&[Tensor]) -> Result<Tensor>;

fn weighted_loss(f: &Op, xs: &[Tensor], w: &mut Option<Tensor>) -> Result<Tensor> {
    let y = f(xs)?;
    let wt = w.get_or_insert_with(|| {
        Tensor::from_vec(values(y.numel(), 99, -1.0, 1.0), y.shape())
            .unwrap()
            .cast(y.dtype())
            .unwrap()
    });
    y.mul(wt)?.sum(ferroflow_core::Axes::All, false)
}

/// Compares tape gradients with central differences for every input.
fn check_with(name: &str, f: &Op, inputs: &[Tensor], eps: f64, tol: f64) {
    let mut w = None;
    let tape = GradientTape::new();
    for x in inputs {
        tape.watch(x);
    }
    let loss = weighted_loss(f, inputs, &mut w).unwrap_or_else(|e| panic!("{name}: {e}"));
    let grads = tape
        .gradient(&loss, inputs)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    drop(tape);
    for (i, x) in inputs.iter().enumerate() {
        let analytic = grads[i]
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no gradient for input {i}"))
            .to_dense()
            .unwrap();
        assert_eq!(
            analytic.shape(),
            x.shape(),
            "{name}: gradient shape of input {i}"
        );
        let a = analytic.to_f64_vec();
        let base = x.to_f64_vec();
        for k in 0..base.len() {
            let mut eval = |delta: f64| {
                let mut v = base.clone();
                v[k] += delta;
                let mut xs = inputs.to_vec();
                xs[i] = Tensor::from_vec(v, x.shape())
                    .unwrap()
                    .cast(x.dtype())
                    .unwrap();
                weighted_loss(f, &xs, &mut w).unwrap().to_f64_vec()[0]
            };
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps);
            let err = (a[k] - numeric).abs();
            assert!(
                err <= tol * (1.0 + numeric.abs()),
                "{name}: input {i} element {k}: tape {} vs finite difference {numeric}",
                a[k]
            );
        }
    }
}

fn check(name: &str, f: &Op, inputs: &[Tensor]) {
    check_with(name, f, inputs, 1e-6, 1e-6);
}

fn check32(name: &str, f: &Op, inputs: &[Tensor]) {
    let xs: Vec<Tensor> = inputs.iter().map(f32t).collect();
    check_with(name, f, &xs, 1e-2, 5e-3);
}

#[test]
fn unary_ops() {
    let x = t(&[2, 3], 1);
    let pos = tr(&[2, 3], 2, 0.2, 3.0);
    let away = x.sign().unwrap().mul_scalar(0.1).unwrap().add(&x).unwrap(); // |x| > 0.1
    let cases: Vec<(&str, Box<Op>, &Tensor)> = vec![
        ("neg", Box::new(|v| v[0].neg()), &x),
        ("abs", Box::new(|v| v[0].abs()), &away),
        ("square", Box::new(|v| v[0].square()), &x),
        ("relu", Box::new(|v| v[0].relu()), &away),
        ("relu6", Box::new(|v| v[0].mul_scalar(4.0)?.relu6()), &away),
        ("exp", Box::new(|v| v[0].exp()), &x),
        ("log", Box::new(|v| v[0].log()), &pos),
        ("log1p", Box::new(|v| v[0].log1p()), &pos),
        ("sqrt", Box::new(|v| v[0].sqrt()), &pos),
        ("rsqrt", Box::new(|v| v[0].rsqrt()), &pos),
        ("reciprocal", Box::new(|v| v[0].reciprocal()), &pos),
        ("tanh", Box::new(|v| v[0].tanh()), &x),
        ("sigmoid", Box::new(|v| v[0].sigmoid()), &x),
        ("gelu", Box::new(|v| v[0].gelu()), &x),
        ("gelu_tanh", Box::new(|v| v[0].gelu_tanh()), &x),
        ("silu", Box::new(|v| v[0].silu()), &x),
        ("softplus", Box::new(|v| v[0].softplus()), &x),
        ("elu", Box::new(|v| v[0].elu(0.7)), &away),
        ("selu", Box::new(|v| v[0].selu()), &away),
        ("leaky_relu", Box::new(|v| v[0].leaky_relu(0.2)), &away),
        ("sin", Box::new(|v| v[0].sin()), &x),
        ("cos", Box::new(|v| v[0].cos()), &x),
        ("erf", Box::new(|v| v[0].erf()), &x),
        ("sign", Box::new(|v| v[0].sign()?.add(&v[0])), &away),
    ];
    for (name, f, input) in &cases {
        check(name, f.as_ref(), std::slice::from_ref(*input));
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    let a = t(&[2, 3], 3);
    let b = t(&[3], 4);
    let col = t(&[2, 1], 5);
    let pos = tr(&[2, 3], 6, 0.5, 2.0);
    let bpos = tr(&[3], 7, 0.5, 2.0);
    check("add", &|v| v[0].add(&v[1]), &[a.clone(), b.clone()]);
    check("sub", &|v| v[0].sub(&v[1]), &[col.clone(), b.clone()]);
    check("mul", &|v| v[0].mul(&v[1]), &[a.clone(), col.clone()]);
    check("div", &|v| v[0].div(&v[1]), &[a.clone(), bpos.clone()]);
    check("pow", &|v| v[0].pow(&v[1]), &[pos.clone(), b.clone()]);
    check("maximum", &|v| v[0].maximum(&v[1]), &[a.clone(), b.clone()]);
    check(
        "minimum",
        &|v| v[0].minimum(&v[1]),
        &[a.clone(), col.clone()],
    );
    check(
        "squared_difference",
        &|v| v[0].squared_difference(&v[1]),
        &[a.clone(), b.clone()],
    );
    check(
        "floor_mod",
        &|v| v[0].floor_mod(&v[1]),
        &[pos.mul_scalar(3.3).unwrap(), bpos.clone()],
    );
    check(
        "scalar chain",
        &|v| v[0].mul_scalar(3.0)?.add_scalar(1.0)?.pow_scalar(2.0),
        &[a],
    );
}

#[test]
fn select_clip_cast() {
    let x = t(&[2, 3], 8);
    let y = t(&[3], 9);
    let cond = x.greater(&y).unwrap();
    check(
        "where",
        &move |v| Tensor::where_(&cond, &v[0], &v[1]),
        &[x.clone(), y.clone()],
    );
    let lo = Tensor::from_vec(vec![-1.0f64, -0.5, -1.5], &[3]).unwrap();
    let hi = Tensor::scalar(1.0f64);
    check(
        "clip",
        &|v| v[0].clip(&v[1], &v[2]),
        &[x.mul_scalar(1.3).unwrap(), lo, hi],
    );
    check_with(
        "cast",
        &|v| v[0].cast(DType::F32)?.mul(&v[0].cast(DType::F32)?),
        &[x],
        1e-3,
        1e-4,
    );
}

#[test]
fn reductions() {
    let x = t(&[2, 3, 4], 10);
    for keep in [false, true] {
        check("sum", &move |v| v[0].sum([0, 2], keep), &[x.clone()]);
        check("mean", &move |v| v[0].mean(1, keep), &[x.clone()]);
        check("max", &move |v| v[0].max(-1, keep), &[x.clone()]);
        check("min", &move |v| v[0].min([0, 1], keep), &[x.clone()]);
        check("prod", &move |v| v[0].prod(2, keep), &[x.clone()]);
        check("variance", &move |v| v[0].variance(1, keep), &[x.clone()]);
        check("std", &move |v| v[0].std([1, 2], keep), &[x.clone()]);
        check(
            "logsumexp",
            &move |v| v[0].logsumexp(-1, keep),
            &[x.clone()],
        );
    }
    let z = Tensor::from_vec(vec![0.0f64, 2.0, 3.0, 0.5, 0.0, 0.0], &[2, 3]).unwrap();
    check("prod with zeros", &|v| v[0].prod(1, false), &[z]);
    check(
        "sum all",
        &|v| v[0].sum(ferroflow_core::Axes::All, false),
        &[x],
    );
}

#[test]
fn matmul_family() {
    let a = t(&[3, 4], 11);
    let b = t(&[4, 2], 12);
    check("matmul", &|v| v[0].matmul(&v[1]), &[a.clone(), b.clone()]);
    check(
        "matmul_t",
        &|v| v[0].matmul_t(&v[1], true, true),
        &[a.t().unwrap().contiguous(), b.t().unwrap().contiguous()],
    );
    let batch = t(&[2, 3, 4], 13);
    check(
        "batched broadcast",
        &|v| v[0].matmul(&v[1]),
        &[batch.clone(), b.clone()],
    );
    check(
        "einsum",
        &|v| Tensor::einsum("bij,jk->bik", &[v[0].clone(), v[1].clone()]),
        &[batch.clone(), b.clone()],
    );
    check(
        "tensordot",
        &|v| v[0].tensordot(&v[1], &[2], &[0]),
        &[batch, b],
    );
}

#[test]
fn softmax_family() {
    let x = t(&[2, 3, 4], 14);
    for axis in [-1, 1] {
        check("softmax", &move |v| v[0].softmax(axis), &[x.clone()]);
        check(
            "log_softmax",
            &move |v| v[0].log_softmax(axis),
            &[x.clone()],
        );
    }
}

#[test]
fn movement_ops() {
    let x = t(&[2, 3, 4], 15);
    check(
        "reshape",
        &|v| v[0].reshape(&[4, -1])?.square(),
        &[x.clone()],
    );
    check(
        "transpose",
        &|v| {
            v[0].transpose(&[2, 0, 1])?
                .matmul(&v[0].transpose(&[2, 1, 0])?)
        },
        &[x.clone()],
    );
    check(
        "expand_squeeze",
        &|v| v[0].expand_dims(1)?.square()?.squeeze(&[1]),
        &[x.clone()],
    );
    check(
        "broadcast_to",
        &|v| v[0].broadcast_to(&[5, 2, 3, 4])?.cumsum(0, false, false),
        &[x.clone()],
    );
    check("flatten", &|v| v[0].flatten_from(1)?.exp(), &[x.clone()]);
    check(
        "slice",
        &|v| v[0].slice(&[1, 0, 1], &[1, -1, 2]),
        &[x.clone()],
    );
    let args = [
        SliceArg::Index(-1),
        SliceArg::NewAxis,
        SliceArg::Range(None, None, -2),
        SliceArg::Range(Some(1), Some(4), 2),
    ];
    check(
        "strided_slice",
        &move |v| v[0].strided_slice(&args),
        &[x.clone()],
    );
    check("reverse", &|v| v[0].reverse(&[0, 2]), &[x.clone()]);
    check(
        "contiguous",
        &|v| Ok(v[0].transpose(&[1, 0, 2])?.contiguous()),
        &[x.clone()],
    );
    let y = t(&[2, 2, 4], 16);
    check(
        "concat",
        &|v| Tensor::concat(&[v[0].clone(), v[1].square()?], 1),
        &[x.clone(), y],
    );
    check(
        "stack",
        &|v| Tensor::stack(&[v[0].clone(), v[0].exp()?], 0),
        &[x.clone()],
    );
    check(
        "split",
        &|v| {
            let p = v[0].split(&[1, 3], 2)?;
            p[0].add(&p[1].sum(2, true)?)
        },
        &[x.clone()],
    );
    check(
        "unstack",
        &|v| {
            let p = v[0].unstack(1)?;
            p[0].mul(&p[2])
        },
        &[x.clone()],
    );
    for mode in [PadMode::Constant(0.5), PadMode::Reflect, PadMode::Symmetric] {
        check(
            "pad",
            &move |v| v[0].pad(&[(1, 0), (0, 2), (1, 1)], mode),
            &[x.clone()],
        );
    }
    check("tile", &|v| v[0].tile(&[2, 1, 3]), &[x]);
}

#[test]
fn indexed_ops() {
    let table = t(&[5, 3], 17);
    let idx = Tensor::from_vec(vec![4i32, 0, 4, 2], &[2, 2]).unwrap();
    let i2 = idx.clone();
    check(
        "gather axis 0",
        &move |v| v[0].gather(&i2, 0),
        &[table.clone()],
    );
    let i3 = Tensor::from_vec(vec![2i64, 0, 2], &[3]).unwrap();
    check(
        "gather axis 1",
        &move |v| v[0].gather(&i3, 1),
        &[table.clone()],
    );
    let nd = Tensor::from_vec(vec![1i32, 2, 4, 0, 1, 2], &[3, 2]).unwrap();
    let nd2 = nd.clone();
    check(
        "gather_nd",
        &move |v| v[0].gather_nd(&nd2),
        &[table.clone()],
    );
    let upd = t(&[3], 18);
    let nd3 = nd.clone();
    check(
        "scatter_nd",
        &move |v| Tensor::scatter_nd(&nd3, &v[0], &[5, 3]),
        &[upd.clone()],
    );
    let nd4 = nd.clone();
    check(
        "tensor_scatter_nd_add",
        &move |v| v[0].tensor_scatter_nd_add(&nd4, &v[1]),
        &[table.clone(), upd.clone()],
    );
    // Distinct rows: with repeated indices the last update wins and TF's rule (like this
    // one) still hands every update the gradient.
    let distinct = Tensor::from_vec(vec![1i32, 2, 4, 0, 3, 1], &[3, 2]).unwrap();
    check(
        "tensor_scatter_nd_update",
        &move |v| v[0].tensor_scatter_nd_update(&distinct, &v[1]),
        &[table.clone(), upd],
    );
    let _ = nd;
    let order = Tensor::from_vec(vec![2i32, 0, 0, 1, 1, 1], &[2, 3]).unwrap();
    check(
        "take_along_axis",
        &move |v| v[0].take_along_axis(&order, 1),
        &[t(&[2, 3], 19)],
    );
    let x = t(&[3, 5], 20);
    check("sort", &|v| v[0].sort(1, false), &[x.clone()]);
    check("sort desc axis 0", &|v| v[0].sort(0, true), &[x.clone()]);
    check("top_k", &|v| Ok(v[0].top_k(2)?.0), &[x.clone()]);
    for (ex, rev) in [(false, false), (true, false), (false, true), (true, true)] {
        check("cumsum", &move |v| v[0].cumsum(1, ex, rev), &[x.clone()]);
    }
}

#[test]
fn convolution_and_pooling() {
    let x = t(&[2, 5, 6, 4], 21);
    let w = t(&[3, 2, 4, 3], 22);
    for (pad, s, d) in [
        (Padding::Same, (1, 1), (1, 1)),
        (Padding::Valid, (2, 1), (1, 2)),
        (Padding::Same, (2, 2), (1, 1)),
    ] {
        check32(
            "conv2d",
            &move |v| v[0].conv2d(&v[1], s, pad, d),
            &[x.clone(), w.clone()],
        );
    }
    let w1x1 = t(&[1, 1, 4, 3], 27);
    check32(
        "pointwise conv2d",
        &|v| v[0].conv2d(&v[1], (1, 1), Padding::Valid, (1, 1)),
        &[x.clone(), w1x1],
    );
    let wg = t(&[2, 2, 2, 6], 23); // 2 groups
    check32(
        "grouped conv2d",
        &|v| v[0].conv2d(&v[1], (1, 1), Padding::Same, (1, 1)),
        &[x.clone(), wg],
    );
    let dw = t(&[3, 3, 4, 2], 24);
    check32(
        "depthwise",
        &|v| v[0].depthwise_conv2d(&v[1], (2, 2), Padding::Same, (1, 1)),
        &[x.clone(), dw],
    );
    let s1 = t(&[2, 7, 3], 25);
    let w1 = t(&[3, 3, 2], 26);
    check32(
        "conv1d",
        &|v| v[0].conv1d(&v[1], 2, Padding::Same, 1),
        &[s1.clone(), w1],
    );
    let y = t(&[2, 3, 3, 4], 27);
    let wt = t(&[3, 3, 5, 4], 28);
    check32(
        "conv2d_transpose",
        &|v| v[0].conv2d_transpose(&v[1], (5, 6), (2, 2), Padding::Same, (1, 1)),
        &[y, wt],
    );
    // Distinct values 0.05 apart, so a finite-difference step never changes a window's max.
    let n = x.numel();
    let spaced: Vec<f64> = (0..n).map(|k| ((k * 37) % n) as f64 * 0.05).collect();
    let xs = Tensor::from_vec(spaced, x.shape()).unwrap();
    check32(
        "max_pool2d",
        &|v| v[0].max_pool2d((2, 3), (2, 2), Padding::Same),
        &[xs],
    );
    check32(
        "avg_pool2d",
        &|v| v[0].avg_pool2d((3, 3), (2, 2), Padding::Same),
        &[x.clone()],
    );
    check32(
        "max_pool1d",
        &|v| v[0].max_pool1d(2, 2, Padding::Valid),
        &[s1.clone()],
    );
    check32(
        "avg_pool1d",
        &|v| v[0].avg_pool1d(3, 1, Padding::Same),
        &[s1],
    );
    check("global_avg_pool", &|v| v[0].global_avg_pool(), &[x.clone()]);
    check("global_max_pool", &|v| v[0].global_max_pool(), &[x]);
}

#[test]
fn normalisation() {
    let x = t(&[4, 3], 29);
    let gamma = t(&[3], 30);
    let beta = t(&[3], 31);
    check(
        "layer_norm",
        &|v| v[0].layer_norm(Some(&v[1]), Some(&v[2]), 1, 1e-3),
        &[x.clone(), gamma.clone(), beta.clone()],
    );
    check(
        "batch_norm (batch stats)",
        &|v| {
            let (m, var) = v[0].moments(0, false)?;
            v[0].batch_norm(&m, &var, Some(&v[2]), Some(&v[1]), 1e-3)
        },
        &[x.clone(), gamma, beta],
    );
    let mv = tr(&[3], 32, 0.5, 2.0);
    check(
        "batch_norm (given stats)",
        &|v| v[0].batch_norm(&v[1], &v[2], None, None, 1e-3),
        &[x, t(&[3], 33), mv],
    );
}

#[test]
fn dropout_gradient_is_the_mask() {
    let x = tr(&[200], 34, 0.5, 1.5);
    let tape = GradientTape::new();
    tape.watch(&x);
    let y = x.dropout(0.25, true, Some(7)).unwrap();
    let g = tape.gradient(&y, &[&x]).unwrap()[0]
        .as_ref()
        .unwrap()
        .to_dense()
        .unwrap();
    let (yv, gv, xv) = (y.to_f64_vec(), g.to_f64_vec(), x.to_f64_vec());
    for k in 0..200 {
        let expect = yv[k] / xv[k];
        assert!((gv[k] - expect).abs() < 1e-12, "element {k}");
    }
}
