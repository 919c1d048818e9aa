//! Every op gives the same result eagerly and through `function`, on the tracing call and
//! on later calls with other inputs (which run the optimised plan).

use ferroflow_core::ops::conv::Padding;
use ferroflow_core::ops::remap::PadMode;
use ferroflow_core::ops::slice::SliceArg;
use ferroflow_core::{random, DType, Result, Tensor};
use ferroflow_graph::{function, OptLevel};

type Op = fn(&[Tensor]) -> Result<Vec<Tensor>>;

fn normal(shape: &[usize], seed: u64) -> Tensor {
    random::normal(shape, 0.0, 1.0, DType::F32, Some(seed)).unwrap()
}

fn positive(shape: &[usize], seed: u64) -> Tensor {
    normal(shape, seed).abs().unwrap().add_scalar(0.5).unwrap()
}

fn ints(values: &[i32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape).unwrap()
}

/// Compares `f` eagerly and compiled at each level on two sets of arguments.
fn check(name: &str, f: Op, args: &[Vec<Tensor>], bitwise: bool) {
    for level in [OptLevel::None, OptLevel::Basic, OptLevel::Full] {
        let mut compiled = function(f).opt_level(level);
        for a in args {
            let want = f(a).unwrap_or_else(|e| panic!("{name}: eager failed: {e}"));
            // First call traces, second runs the plan.
            for _ in 0..2 {
                let got = compiled
                    .call(a)
                    .unwrap_or_else(|e| panic!("{name} ({level:?}): {e}"));
                assert_eq!(got.len(), want.len(), "{name}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.shape(), w.shape(), "{name} ({level:?})");
                    assert_eq!(g.dtype(), w.dtype(), "{name} ({level:?})");
                    let (g, w) = (g.to_f64_vec(), w.to_f64_vec());
                    for (x, y) in g.iter().zip(&w) {
                        let ok = if bitwise || level != OptLevel::Full {
                            x == y || (x.is_nan() && y.is_nan())
                        } else {
                            (x - y).abs() <= 1e-6 * y.abs().max(1.0)
                        };
                        assert!(ok, "{name} ({level:?}): {x} vs {y}");
                    }
                }
            }
        }
        let mut sigs: Vec<Vec<(Vec<usize>, DType)>> = args
            .iter()
            .map(|a| a.iter().map(|t| (t.shape().to_vec(), t.dtype())).collect())
            .collect();
        sigs.dedup();
        assert_eq!(
            compiled.tracing_count(),
            sigs.len(),
            "{name}: one trace per signature"
        );
    }
}

macro_rules! cases {
    ($($name:ident: $args:expr => |$x:ident| $body:expr;)*) => {
        $(
            #[test]
            #[allow(clippy::useless_vec)]
            fn $name() {
                fn f($x: &[Tensor]) -> Result<Vec<Tensor>> { $body }
                check(stringify!($name), f, &$args, false);
            }
        )*
    };
}

fn two<F: Fn(u64) -> Vec<Tensor>>(f: F) -> Vec<Vec<Tensor>> {
    vec![f(1), f(2)]
}

cases! {
    unary_chain: two(|s| vec![normal(&[5, 7], s)]) => |x| Ok(vec![x[0].tanh()?.exp()?.neg()?.relu()?.sigmoid()?.square()?.gelu()?.silu()?.softplus()?.abs()?.sqrt()?.log1p()?.elu(0.5)?.leaky_relu(0.1)?.sin()?.cos()?.erf()?.relu6()?.selu()?.gelu_tanh()?]);
    unary_rounding: two(|s| vec![normal(&[9], s).mul_scalar(3.0).unwrap()]) => |x| Ok(vec![x[0].floor()?, x[0].ceil()?, x[0].round()?, x[0].sign()?]);
    unary_domains: two(|s| vec![positive(&[4, 3], s)]) => |x| Ok(vec![x[0].log()?.add(&x[0].rsqrt()?)?.add(&x[0].reciprocal()?)?]);
    binary_broadcast: two(|s| vec![normal(&[4, 3], s), positive(&[3], s + 9), normal(&[4, 1], s + 3)]) => |x| {
        let a = x[0].add(&x[1])?.sub(&x[2])?.mul(&x[1])?.div(&x[1])?;
        Ok(vec![a.maximum(&x[2])?.minimum(&x[1])?.squared_difference(&x[0])?, x[1].pow(&x[1])?, x[0].floor_div(&x[1])?, x[0].floor_mod(&x[1])?])
    };
    integer_arithmetic: vec![vec![ints(&[7, -7, 9], &[3]), ints(&[2, 2, -4], &[3])], vec![ints(&[1, 5, -3], &[3]), ints(&[3, -2, 1], &[3])]] => |x| Ok(vec![x[0].add(&x[1])?.mul(&x[0])?, x[0].floor_div(&x[1])?, x[0].abs()?]);
    compare_select_clip: two(|s| vec![normal(&[6], s), normal(&[6], s + 1)]) => |x| {
        let m = x[0].greater(&x[1])?.logical_and(&x[0].less_equal(&x[0].scalar_like(0.5)?)?)?.logical_or(&x[1].equal(&x[1])?.logical_not()?)?;
        Ok(vec![Tensor::where_(&m, &x[0], &x[1])?, x[0].clip_scalar(-0.3, 0.4)?, x[0].not_equal(&x[1])?.cast(DType::F32)?, x[0].greater_equal(&x[1])?.logical_xor(&x[0].less(&x[1])?)?])
    };
    casts: two(|s| vec![normal(&[5], s).mul_scalar(4.0).unwrap()]) => |x| Ok(vec![x[0].cast(DType::I32)?.cast(DType::F64)?, x[0].cast(DType::F16)?.cast(DType::F32)?, x[0].cast(DType::Bool)?]);
    matmuls: two(|s| vec![normal(&[2, 4, 3], s), normal(&[3, 5], s + 1), normal(&[5, 3], s + 2)]) => |x| Ok(vec![x[0].matmul(&x[1])?, x[0].matmul_t(&x[2], false, true)?, x[1].matmul_t(&x[1], true, false)?, Tensor::einsum("bij,jk->bik", &[x[0].clone(), x[1].clone()])?, x[0].tensordot(&x[1], &[2], &[0])?]);
    reductions: two(|s| vec![normal(&[3, 4, 5], s)]) => |x| {
        let a = &x[0];
        Ok(vec![a.sum([0, 2], false)?, a.mean(1, true)?, a.max(-1, false)?, a.min(0, false)?, a.prod(2, false)?, a.variance(1, false)?, a.std(0, true)?, a.logsumexp(-1, false)?, a.argmax(1)?, a.argmin(2)?, a.greater(&a.scalar_like(0.0)?)?.any(1, false)?, a.greater(&a.scalar_like(-3.0)?)?.all(0, false)?, a.sum_to_shape(&[1, 4, 1])?])
    };
    views: two(|s| vec![normal(&[2, 3, 4], s)]) => |x| {
        let a = &x[0];
        Ok(vec![a.reshape(&[4, -1])?, a.transpose(&[2, 0, 1])?.contiguous(), a.t()?.add_scalar(1.0)?, a.expand_dims(1)?.squeeze(&[1])?, a.slice(&[1, 0, 1], &[1, -1, 2])?, a.strided_slice(&[SliceArg::Index(1), SliceArg::Range(None, None, -1), SliceArg::Range(Some(1), None, 2)])?, a.reverse(&[0, 2])?, a.broadcast_to(&[3, 2, 3, 4])?.sum(0, false)?, a.flatten_from(1)?])
    };
    joins: two(|s| vec![normal(&[2, 3], s), normal(&[2, 2], s + 1)]) => |x| {
        let mut out = vec![Tensor::concat(x, 1)?, Tensor::stack(&[x[0].clone(), x[0].mul_scalar(2.0)?], 0)?];
        out.extend(x[0].split(&[1, -1], 1)?);
        out.extend(x[1].unstack(0)?);
        out.extend(x[0].split_even(3, 1)?);
        Ok(out)
    };
    remaps: two(|s| vec![normal(&[2, 3], s)]) => |x| Ok(vec![x[0].pad(&[(1, 0), (2, 1)], PadMode::Constant(0.5))?, x[0].pad(&[(1, 1), (1, 1)], PadMode::Reflect)?, x[0].tile(&[2, 1])?]);
    gathers: vec![vec![normal(&[4, 3], 1), ints(&[3, 0, 3], &[3]), ints(&[1, 2, 0, 0], &[2, 2])], vec![normal(&[4, 3], 2), ints(&[1, 1, 2], &[3]), ints(&[3, 1, 2, 2], &[2, 2])]] => |x| {
        Ok(vec![x[0].gather(&x[1], 0)?, x[0].gather(&x[1].slice(&[0], &[2])?.floor_mod(&ints(&[3], &[1]))?, 1)?, x[0].gather_nd(&x[2])?, Tensor::scatter_nd(&x[2], &normal(&[2, 3], 3).slice(&[0, 0], &[2, 1])?.reshape(&[2])?, &[4, 3])?, x[0].tensor_scatter_nd_add(&x[2], &Tensor::ones(&[2], DType::F32)?)?, x[0].tensor_scatter_nd_update(&x[2], &Tensor::zeros(&[2], DType::F32)?)?, x[1].one_hot(4, 1.0, 0.0, DType::F32)?, x[0].slice(&[0, 0], &[2, 3])?.take_along_axis(&x[2].floor_mod(&ints(&[3], &[1]))?, 1)?])
    };
    softmaxes: two(|s| vec![normal(&[3, 5], s)]) => |x| Ok(vec![x[0].softmax(-1)?, x[0].log_softmax(0)?]);
    sorting: two(|s| vec![normal(&[3, 5], s)]) => |x| {
        let (v, i) = x[0].top_k(2)?;
        Ok(vec![x[0].sort(1, true)?, x[0].argsort(0, false)?, v, i, x[0].cumsum(1, true, false)?, x[0].cumsum(0, false, true)?])
    };
    convolutions: two(|s| vec![normal(&[2, 6, 5, 3], s), normal(&[3, 3, 3, 4], s + 1), normal(&[2, 2, 3, 2], s + 2)]) => |x| {
        Ok(vec![x[0].conv2d(&x[1], (1, 2), Padding::Same, (1, 1))?, x[0].depthwise_conv2d(&x[2], (1, 1), Padding::Valid, (1, 1))?, x[0].reshape(&[2, 30, 3])?.conv1d(&x[1].slice(&[0, 0, 0, 0], &[1, -1, -1, -1])?.squeeze(&[0])?, 1, Padding::Same, 1)?, x[0].conv2d_transpose(&x[1].transpose(&[0, 1, 3, 2])?.slice(&[0, 0, 0, 0], &[-1, -1, 3, 3])?, (11, 9), (2, 2), Padding::Same, (1, 1))?])
    };
    pools: two(|s| vec![normal(&[2, 6, 5, 3], s)]) => |x| Ok(vec![x[0].max_pool2d((2, 2), (2, 2), Padding::Same)?, x[0].avg_pool2d((3, 2), (1, 2), Padding::Valid)?, x[0].global_avg_pool()?, x[0].global_max_pool()?, x[0].reshape(&[2, 30, 3])?.max_pool1d(3, 2, Padding::Valid)?, x[0].reshape(&[2, 30, 3])?.avg_pool1d(2, 2, Padding::Same)?]);
    norms: two(|s| vec![normal(&[4, 6], s), positive(&[6], s + 1), normal(&[6], s + 2)]) => |x| {
        let (m, v) = x[0].moments(0, false)?;
        Ok(vec![x[0].batch_norm(&m, &v, Some(&x[2]), Some(&x[1]), 1e-3)?, x[0].layer_norm(Some(&x[1]), Some(&x[2]), 1, 1e-5)?])
    };
}
