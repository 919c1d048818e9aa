//! Each pass fires on a small graph; dumps; signatures; gradients through functions.

use ferroflow_core::{random, DType, GradientTape, Result, Tensor, Variable};
use ferroflow_graph::{function, NodeKind, OptLevel, TensorSpec};

/// A plain function used as a traced closure.
type ModelFn = fn(&[Tensor]) -> Result<Vec<Tensor>>;

fn normal(shape: &[usize], seed: u64) -> Tensor {
    random::normal(shape, 0.0, 1.0, DType::F32, Some(seed)).unwrap()
}

fn close(a: &Tensor, b: &Tensor, tol: f64) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.to_f64_vec().iter().zip(b.to_f64_vec()) {
        assert!((x - y).abs() <= tol * y.abs().max(1.0), "{x} vs {y}");
    }
}

#[test]
fn constant_folding_runs_constant_ops_once() {
    let mut f = function(|x: &[Tensor]| {
        let c = Tensor::scalar(2.0f32).mul(&Tensor::scalar(3.0f32))?.exp()?;
        Ok(vec![x[0].mul(&c)?])
    });
    let cf = f.concrete_function(&[normal(&[4], 1)]).unwrap();
    assert_eq!(cf.traced_graph().op_count(), 3);
    assert_eq!(cf.stats().folded, 2);
    assert_eq!(cf.graph().op_count(), 1);
}

#[test]
fn a_folded_view_of_a_constant_is_stored_contiguous() {
    // An imported weight in another layout (ONNX's [out, in] for a product) is transposed
    // in the traced graph; the folded constant must be gathered once, not per call.
    let w = normal(&[5, 3], 2);
    let mut f = function(move |x: &[Tensor]| Ok(vec![x[0].matmul(&w.transpose(&[1, 0])?)?]));
    let x = normal(&[2, 3], 1);
    let cf = f.concrete_function(std::slice::from_ref(&x)).unwrap();
    assert_eq!(cf.stats().folded, 1);
    let consts: Vec<&Tensor> = cf
        .graph()
        .nodes
        .iter()
        .filter_map(|n| match &n.kind {
            NodeKind::Const(t) => Some(t),
            _ => None,
        })
        .collect();
    assert!(!consts.is_empty());
    assert!(consts.iter().all(|t| t.is_contiguous()));
    assert!(consts.iter().any(|t| t.shape() == [3, 5]));
}

#[test]
fn cse_merges_repeated_work_and_dce_drops_unused_work() {
    let mut f = function(|x: &[Tensor]| {
        let _unused = x[0].sin()?.cos()?;
        Ok(vec![x[0].exp()?.add(&x[0].exp()?)?])
    })
    .opt_level(OptLevel::Basic);
    let cf = f.concrete_function(&[normal(&[4], 1)]).unwrap();
    assert_eq!(cf.traced_graph().op_count(), 5);
    assert_eq!(cf.stats().merged, 1);
    assert!(cf.stats().removed >= 3);
    assert_eq!(cf.graph().op_count(), 2);
}

#[test]
fn algebraic_identities_disappear() {
    let mut f = function(|x: &[Tensor]| {
        let y = x[0]
            .mul_scalar(1.0)?
            .add_scalar(0.0)?
            .div(&Tensor::scalar(1.0f32))?;
        let t = y.transpose(&[1, 0])?.transpose(&[1, 0])?;
        let r = t.reshape(&[6])?.reshape(&[3, 2])?.reshape(&[2, 3])?;
        Ok(vec![r.relu()?])
    })
    .opt_level(OptLevel::Basic);
    let x = normal(&[2, 3], 1);
    let cf = f.concrete_function(std::slice::from_ref(&x)).unwrap();
    assert_eq!(cf.traced_graph().op_count(), 9);
    assert!(cf.stats().simplified >= 6, "{:?}", cf.stats());
    assert_eq!(cf.graph().op_count(), 1, "{}", cf.dump(true));
    close(
        &f.call(std::slice::from_ref(&x)).unwrap()[0],
        &x.relu().unwrap(),
        0.0,
    );
}

#[test]
fn elementwise_chains_fuse_into_one_loop() {
    let mut f = function(|x: &[Tensor]| {
        Ok(vec![x[0]
            .mul(&x[1])?
            .add_scalar(0.5)?
            .tanh()?
            .mul_scalar(2.0)?])
    });
    let args = [normal(&[300, 7], 1), normal(&[7], 2)];
    let cf = f.concrete_function(&args).unwrap();
    assert_eq!(cf.traced_graph().op_count(), 4);
    assert_eq!(cf.graph().op_count(), 1);
    assert!(cf
        .graph()
        .nodes
        .iter()
        .any(|n| matches!(n.kind, NodeKind::Fused(_))));
    assert_eq!(cf.stats().kernels, 1);
    let eager = args[0]
        .mul(&args[1])
        .unwrap()
        .add_scalar(0.5)
        .unwrap()
        .tanh()
        .unwrap()
        .mul_scalar(2.0)
        .unwrap();
    // Same kernels per element: bitwise.
    assert_eq!(
        f.call(&args).unwrap()[0].to_vec::<f32>().unwrap(),
        eager.to_vec::<f32>().unwrap()
    );
}

#[test]
fn reductions_join_the_fused_loop() {
    let mut f = function(|x: &[Tensor]| {
        Ok(vec![
            x[0].squared_difference(&x[1])?
                .mul_scalar(0.5)?
                .sum(1, false)?,
            x[0].exp()?.relu()?.sum(0, true)?,
        ])
    });
    let args = [normal(&[64, 33], 1), normal(&[64, 33], 2)];
    let cf = f.concrete_function(&args).unwrap();
    assert_eq!(cf.graph().op_count(), 2, "{}", cf.dump(true));
    assert!(cf.dump(true).contains("-> sum]"), "{}", cf.dump(true));
    let got = f.call(&args).unwrap();
    close(
        &got[0],
        &args[0]
            .squared_difference(&args[1])
            .unwrap()
            .mul_scalar(0.5)
            .unwrap()
            .sum(1, false)
            .unwrap(),
        1e-6,
    );
    close(
        &got[1],
        &args[0].exp().unwrap().relu().unwrap().sum(0, true).unwrap(),
        1e-6,
    );
}

#[test]
fn matmul_bias_activation_fuse() {
    let mut f = function(|x: &[Tensor]| Ok(vec![x[0].matmul(&x[1])?.add(&x[2])?.relu()?]));
    let args = [normal(&[16, 8], 1), normal(&[8, 5], 2), normal(&[5], 3)];
    let cf = f.concrete_function(&args).unwrap();
    assert_eq!(cf.graph().op_count(), 1, "{}", cf.dump(true));
    assert!(cf.dump(true).contains("fused[matmul"));
    let eager = args[0]
        .matmul(&args[1])
        .unwrap()
        .add(&args[2])
        .unwrap()
        .relu()
        .unwrap();
    assert_eq!(
        f.call(&args).unwrap()[0].to_vec::<f32>().unwrap(),
        eager.to_vec::<f32>().unwrap()
    );
}

#[test]
fn a_convolutions_fused_epilogue_runs_on_its_tiles_and_matches_eager() {
    use ferroflow_core::ops::conv::Padding;
    // conv -> bias -> ReLU6 -> plus a same-shaped input: the fused kernel runs inside the
    // convolution, per tile. Pointwise, strided 3x3, depthwise (groups), over several
    // tiles and images, and with an explicit pad.
    type Case = (Vec<usize>, Vec<usize>, (usize, usize), Padding);
    let cases: Vec<Case> = vec![
        (
            vec![2, 40, 37, 16],
            vec![1, 1, 16, 24],
            (1, 1),
            Padding::Valid,
        ),
        (vec![1, 33, 31, 8], vec![3, 3, 8, 12], (2, 2), Padding::Same),
        (
            vec![2, 30, 29, 24],
            vec![3, 3, 1, 24],
            (1, 1),
            Padding::Same,
        ),
        (
            vec![1, 17, 19, 3],
            vec![3, 3, 3, 8],
            (2, 2),
            Padding::Explicit([1, 0, 1, 1]),
        ),
    ];
    for (xs, fs, strides, padding) in cases {
        let conv = move |x: &[Tensor]| -> Result<Vec<Tensor>> {
            let y = x[0].conv2d(&x[1], strides, padding, (1, 1))?.add(&x[2])?;
            let y = y
                .maximum(&Tensor::scalar(0.0f32))?
                .minimum(&Tensor::scalar(6.0f32))?;
            Ok(vec![y.add(&x[3])?])
        };
        let x = normal(&xs, 1);
        let w = normal(&fs, 2);
        let y0 = conv(&[x.clone(), w.clone(), normal(&[1], 3), normal(&[1], 3)]).unwrap();
        let cout = y0[0].shape()[3];
        let args = [x, w, normal(&[cout], 3), normal(y0[0].shape(), 4)];
        let eager = conv(&args).unwrap().remove(0);
        let mut f = function(conv);
        let cf = f.concrete_function(&args).unwrap();
        let dump = cf.dump(true);
        assert_eq!(cf.graph().op_count(), 1, "{dump}");
        assert!(dump.contains("fused[conv2d"), "{dump}");
        close(&f.call(&args).unwrap()[0], &eager, 1e-6);
    }
}

#[test]
fn fused_last_steps_read_the_buffer_they_overwrite_correctly() {
    use ferroflow_core::ops::conv::Padding;
    // The kernel overwrites its producer's output (a conv's tiles, a matmul's buffer):
    // its last step may read that output once, first or second, twice, or not at all,
    // with scalar and per-channel operands on either side.
    type Tail = fn(&Tensor, &Tensor) -> Result<Tensor>;
    let tails: Vec<(&str, Tail)> = vec![
        ("relu", |y, _| y.relu()),
        ("y + b", |y, b| y.add(b)),
        ("b + y", |y, b| b.add(y)),
        ("b - y", |y, b| b.sub(y)),
        ("y * y", |y, _| y.mul(y)),
        ("2 - y", |y, _| Tensor::scalar(2.0f32).sub(y)),
        ("y / 2 - 2", |y, _| {
            y.div(&Tensor::scalar(2.0f32))?.sub(&Tensor::scalar(2.0f32))
        }),
        ("exp(b + y) * y", |y, b| b.add(y)?.exp()?.mul(y)),
    ];
    for (name, tail) in tails {
        let conv = move |x: &[Tensor]| -> Result<Vec<Tensor>> {
            let c = x[0].conv2d(&x[1], (1, 1), Padding::Same, (1, 1))?;
            let m = x[3].matmul(&x[4])?;
            Ok(vec![tail(&c, &x[2])?, tail(&m, &x[2])?])
        };
        let args = [
            normal(&[2, 9, 11, 5], 1),
            normal(&[3, 3, 5, 7], 2),
            normal(&[7], 3),
            normal(&[40, 6], 4),
            normal(&[6, 7], 5),
        ];
        let eager = conv(&args).unwrap();
        let mut f = function(conv);
        let got = f.call(&args).unwrap();
        let dump = f.concrete_function(&args).unwrap().dump(true);
        // (Where the tail reads the conv twice, the kernel runs after it, over its buffer.)
        assert!(dump.contains("fused[") || name == "y * y", "{name}: {dump}");
        for (g, e) in got.iter().zip(&eager) {
            close(g, e, 1e-6);
        }
    }
}

#[test]
fn buffers_are_released_after_their_last_use() {
    let mut f = function(|x: &[Tensor]| {
        let mut y = x[0].clone();
        for _ in 0..8 {
            y = y.matmul(&x[1])?;
        }
        Ok(vec![y])
    });
    let args = [
        normal(&[64, 64], 1),
        normal(&[64, 64], 2).mul_scalar(0.1).unwrap(),
    ];
    let cf = f.concrete_function(&args).unwrap();
    let (peak, total) = cf.memory();
    assert_eq!(total, 8 * 64 * 64 * 4);
    assert!(peak <= 2 * 64 * 64 * 4, "peak {peak}");
}

#[test]
fn dumps_are_readable() {
    let mut f = function(|x: &[Tensor]| Ok(vec![x[0].matmul(&x[1])?.add_scalar(1.0)?.relu()?]))
        .with_name("dense");
    let cf = f
        .concrete_function(&[normal(&[2, 3], 1), normal(&[3, 4], 2)])
        .unwrap();
    let before = cf.dump(false);
    assert!(before.contains("function 'dense' (traced)"), "{before}");
    assert!(
        before.contains("matmul(transpose_a=false, transpose_b=false) %0, %1 : float32[2, 4]"),
        "{before}"
    );
    assert!(cf.dump(true).contains("fused[matmul"));
    let dot = cf.dot(true);
    assert!(dot.starts_with("digraph \"dense\""));
    assert!(dot.contains("->"));
}

#[test]
fn signatures_retrace_or_reject_like_tf() {
    let mut f = function(|x: &[Tensor]| Ok(vec![x[0].sum(-1, false)?]));
    f.call(&[normal(&[2, 3], 1)]).unwrap();
    f.call(&[normal(&[2, 3], 2)]).unwrap();
    assert_eq!(f.tracing_count(), 1);
    f.call(&[normal(&[5, 3], 3)]).unwrap();
    assert_eq!(f.tracing_count(), 2);
    let mut g = function(|x: &[Tensor]| Ok(vec![x[0].sum(-1, false)?]))
        .with_name("g")
        .input_signature(vec![TensorSpec::new(&[None, Some(3)], DType::F32)]);
    g.call(&[normal(&[7, 3], 1)]).unwrap();
    let e = g.call(&[normal(&[7, 4], 1)]).unwrap_err().to_string();
    assert!(
        e.contains("'g': argument 0 of shape [7, 4]")
            && e.contains("TensorSpec(shape=[None, 3], dtype=float32)"),
        "{e}"
    );
    let e = g
        .call(&[Tensor::ones(&[7, 3], DType::F64).unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("float64"), "{e}");
}

#[test]
fn tracing_errors_name_the_op_and_the_closure() {
    let mut f = function(|x: &[Tensor]| Ok(vec![x[0].matmul(&x[1])?])).with_name("bad_step");
    let e = f
        .call(&[normal(&[2, 3], 1), normal(&[4, 5], 2)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad_step") && e.contains("matmul: inner dimensions differ: [2, 3] x [4, 5]"),
        "{e}"
    );
    assert_eq!(f.tracing_count(), 0);
}

#[test]
fn variables_are_captured_by_reference_and_updated_in_graph() {
    let w = Variable::new(normal(&[3, 2], 1));
    let wc = w.clone();
    let mut step = function(move |x: &[Tensor]| {
        let tape = GradientTape::new();
        let loss = x[0]
            .matmul(&wc.value())?
            .square()?
            .mean(ferroflow_core::Axes::All, false)?;
        let g = tape
            .gradient(&loss, &[&wc])?
            .remove(0)
            .expect("connected")
            .to_dense()?;
        wc.assign_sub(&g.mul_scalar(0.1)?)?;
        Ok(vec![loss])
    });
    // Eager reference on a copy.
    let w_eager = Variable::new(w.read_untracked());
    let x = normal(&[4, 3], 2);
    for i in 0..4 {
        let tape = GradientTape::new();
        let loss = x
            .matmul(&w_eager.value())
            .unwrap()
            .square()
            .unwrap()
            .mean(ferroflow_core::Axes::All, false)
            .unwrap();
        let g = tape
            .gradient(&loss, &[&w_eager])
            .unwrap()
            .remove(0)
            .unwrap()
            .to_dense()
            .unwrap();
        w_eager.assign_sub(&g.mul_scalar(0.1).unwrap()).unwrap();
        let l = step.call(std::slice::from_ref(&x)).unwrap();
        close(&l[0], &loss, 1e-6);
        close(&w.read_untracked(), &w_eager.read_untracked(), 1e-6);
        assert_eq!(step.tracing_count(), 1, "step {i}");
    }
}

#[test]
fn gradients_through_a_compiled_function_equal_eager_ones() {
    fn model(x: &[Tensor]) -> Result<Vec<Tensor>> {
        let h = x[0].matmul(&x[1])?.add(&x[2])?.relu()?;
        Ok(vec![h
            .tanh()?
            .mul(&h)?
            .sum(ferroflow_core::Axes::All, false)?])
    }
    let args = [normal(&[5, 4], 1), normal(&[4, 3], 2), normal(&[3], 3)];
    let grads = |use_fn: bool, f: &mut ferroflow_graph::Function<ModelFn>| {
        let tape = GradientTape::new();
        args.iter().for_each(|a| tape.watch(a));
        let y = if use_fn {
            f.call(&args).unwrap()
        } else {
            model(&args).unwrap()
        };
        tape.gradient(&y[0], &args.iter().collect::<Vec<_>>())
            .unwrap()
            .into_iter()
            .map(|g| g.unwrap().to_dense().unwrap())
            .collect::<Vec<_>>()
    };
    let mut f: ferroflow_graph::Function<ModelFn> = function(model as ModelFn);
    f.call(&args).unwrap();
    let compiled = grads(true, &mut f);
    let eager = grads(false, &mut f);
    for (c, e) in compiled.iter().zip(&eager) {
        assert_eq!(c.to_vec::<f32>().unwrap(), e.to_vec::<f32>().unwrap());
    }
}

#[test]
fn fused_kernels_over_many_blocks_read_their_inputs_where_they_lie() {
    // matmul + bias (periodic) is one kernel; swish, which reads its input twice per
    // element, is another, written over that input in place. The domains span many blocks
    // (with a partial last one); the larger is split across threads at offsets that are
    // not a period apart.
    let mut f = function(|x: &[Tensor]| {
        let h = x[0].matmul(&x[1])?.add(&x[2])?;
        Ok(vec![h.mul(&h.sigmoid()?)?])
    });
    for (rows, cols) in [(37, 130), (300, 261)] {
        let args = [
            normal(&[rows, 9], 1),
            normal(&[9, cols], 2),
            normal(&[cols], 3),
        ];
        let cf = f.concrete_function(&args).unwrap();
        assert_eq!(cf.graph().op_count(), 2, "{}", cf.dump(true));
        let h = args[0].matmul(&args[1]).unwrap().add(&args[2]).unwrap();
        let eager = h.mul(&h.sigmoid().unwrap()).unwrap();
        assert_eq!(
            f.call(&args).unwrap()[0].to_vec::<f32>().unwrap(),
            eager.to_vec::<f32>().unwrap(),
            "[{rows}, {cols}]"
        );
    }
}
