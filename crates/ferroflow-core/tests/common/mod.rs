//! Shared by the golden-value tests: fixture decoding and one runner per golden op name.

use ferroflow_core::ops::conv::Padding;
use ferroflow_core::ops::remap::PadMode;
use ferroflow_core::ops::slice::SliceArg;
use ferroflow_core::{Axes, DType, Result, Tensor};
use serde_json::Value;

pub fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap())
        .collect();
    let dtype = match v["dtype"].as_str().unwrap() {
        "f32" => DType::F32,
        "f64" => DType::F64,
        "i32" => DType::I32,
        "i64" => DType::I64,
        "bool" => DType::Bool,
        d => panic!("fixture dtype {d}"),
    };
    Tensor::from_vec(data, &shape).unwrap().cast(dtype).unwrap()
}

fn ints(v: &Value) -> Vec<isize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_i64().unwrap() as isize)
        .collect()
}

fn pair(v: &Value) -> (usize, usize) {
    let v = ints(v);
    (v[0] as usize, v[1] as usize)
}

fn padding(v: &Value) -> Padding {
    if v.as_str() == Some("SAME") {
        Padding::Same
    } else {
        Padding::Valid
    }
}

fn parse_spec(s: &str) -> Vec<SliceArg> {
    s.split(',')
        .map(|part| {
            if !part.contains(':') {
                return SliceArg::Index(part.parse().unwrap());
            }
            let p: Vec<Option<isize>> = part.split(':').map(|x| x.parse().ok()).collect();
            SliceArg::Range(p[0], p[1], p.get(2).copied().flatten().unwrap_or(1))
        })
        .collect()
}

pub fn run(op: &str, a: &Value, x: &[Tensor]) -> Result<Vec<Tensor>> {
    let axis = || a["axis"].as_i64().unwrap() as isize;
    let axes = || Axes::from(ints(&a["axes"]));
    let keep = || a["keepdims"].as_bool().unwrap();
    let one = match op {
        "neg" | "abs" | "square" | "sign" | "relu" | "relu6" | "exp" | "log" | "log1p" | "sqrt"
        | "rsqrt" | "reciprocal" | "tanh" | "sigmoid" | "gelu" | "gelu_tanh" | "silu"
        | "softplus" | "selu" | "sin" | "cos" | "erf" | "floor" | "ceil" | "round" => {
            let t = &x[0];
            match op {
                "neg" => t.neg(),
                "abs" => t.abs(),
                "square" => t.square(),
                "sign" => t.sign(),
                "relu" => t.relu(),
                "relu6" => t.relu6(),
                "exp" => t.exp(),
                "log" => t.log(),
                "log1p" => t.log1p(),
                "sqrt" => t.sqrt(),
                "rsqrt" => t.rsqrt(),
                "reciprocal" => t.reciprocal(),
                "tanh" => t.tanh(),
                "sigmoid" => t.sigmoid(),
                "gelu" => t.gelu(),
                "gelu_tanh" => t.gelu_tanh(),
                "silu" => t.silu(),
                "softplus" => t.softplus(),
                "selu" => t.selu(),
                "sin" => t.sin(),
                "cos" => t.cos(),
                "erf" => t.erf(),
                "floor" => t.floor(),
                "ceil" => t.ceil(),
                _ => t.round(),
            }
        }
        "elu" => x[0].elu(a["alpha"].as_f64().unwrap()),
        "leaky_relu" => x[0].leaky_relu(a["alpha"].as_f64().unwrap()),
        "add" => x[0].add(&x[1]),
        "sub" => x[0].sub(&x[1]),
        "mul" => x[0].mul(&x[1]),
        "div" => x[0].div(&x[1]),
        "pow" => x[0].pow(&x[1]),
        "maximum" => x[0].maximum(&x[1]),
        "minimum" => x[0].minimum(&x[1]),
        "squared_difference" => x[0].squared_difference(&x[1]),
        "floor_div" => x[0].floor_div(&x[1]),
        "floor_mod" => x[0].floor_mod(&x[1]),
        "equal" => x[0].equal(&x[1]),
        "not_equal" => x[0].not_equal(&x[1]),
        "less" => x[0].less(&x[1]),
        "less_equal" => x[0].less_equal(&x[1]),
        "greater" => x[0].greater(&x[1]),
        "greater_equal" => x[0].greater_equal(&x[1]),
        "where" => Tensor::where_(&x[0], &x[1], &x[2]),
        "clip" => x[0].clip_scalar(a["lo"].as_f64().unwrap(), a["hi"].as_f64().unwrap()),
        "sum" => x[0].sum(axes(), keep()),
        "mean" => x[0].mean(axes(), keep()),
        "max" => x[0].max(axes(), keep()),
        "min" => x[0].min(axes(), keep()),
        "prod" => x[0].prod(axes(), keep()),
        "variance" => x[0].variance(axes(), keep()),
        "logsumexp" => x[0].logsumexp(axes(), keep()),
        "argmax" => x[0].argmax(axis()),
        "argmin" => x[0].argmin(axis()),
        "matmul" => x[0].matmul_t(
            &x[1],
            a["ta"].as_bool().unwrap(),
            a["tb"].as_bool().unwrap(),
        ),
        "einsum" => Tensor::einsum(a["equation"].as_str().unwrap(), x),
        "tensordot" => x[0].tensordot(&x[1], &ints(&a["axes_a"]), &ints(&a["axes_b"])),
        "softmax" => x[0].softmax(axis()),
        "log_softmax" => x[0].log_softmax(axis()),
        "transpose" => x[0].transpose(
            &ints(&a["perm"])
                .iter()
                .map(|&p| p as usize)
                .collect::<Vec<_>>(),
        ),
        "concat" => Tensor::concat(x, axis()),
        "stack" => Tensor::stack(x, axis()),
        "pad" => {
            let p: Vec<(usize, usize)> =
                a["paddings"].as_array().unwrap().iter().map(pair).collect();
            let mode = match a["mode"].as_str().unwrap() {
                "constant" => PadMode::Constant(a["value"].as_f64().unwrap()),
                "reflect" => PadMode::Reflect,
                _ => PadMode::Symmetric,
            };
            x[0].pad(&p, mode)
        }
        "tile" => x[0].tile(
            &ints(&a["multiples"])
                .iter()
                .map(|&m| m as usize)
                .collect::<Vec<_>>(),
        ),
        "strided_slice" => x[0].strided_slice(&parse_spec(a["spec"].as_str().unwrap())),
        "gather" => x[0].gather(&x[1], axis()),
        "gather_nd" => x[0].gather_nd(&x[1]),
        "scatter_nd" => Tensor::scatter_nd(
            &x[0],
            &x[1],
            &ints(&a["shape"])
                .iter()
                .map(|&d| d as usize)
                .collect::<Vec<_>>(),
        ),
        "one_hot" => x[0].one_hot(a["depth"].as_u64().unwrap() as usize, 1.0, 0.0, DType::F32),
        "top_k" => {
            return x[0]
                .top_k(a["k"].as_u64().unwrap() as usize)
                .map(|(v, i)| vec![v, i])
        }
        "sort" => x[0].sort(axis(), a["descending"].as_bool().unwrap()),
        "argsort" => x[0].argsort(axis(), a["descending"].as_bool().unwrap()),
        "cumsum" => x[0].cumsum(
            axis(),
            a["exclusive"].as_bool().unwrap(),
            a["reverse"].as_bool().unwrap(),
        ),
        "conv2d" => x[0].conv2d(
            &x[1],
            pair(&a["strides"]),
            padding(&a["padding"]),
            pair(&a["dilations"]),
        ),
        "depthwise_conv2d" => {
            x[0].depthwise_conv2d(&x[1], pair(&a["strides"]), padding(&a["padding"]), (1, 1))
        }
        "conv1d" => x[0].conv1d(
            &x[1],
            a["stride"].as_u64().unwrap() as usize,
            padding(&a["padding"]),
            1,
        ),
        "conv2d_transpose" => x[0].conv2d_transpose(
            &x[1],
            pair(&a["output_hw"]),
            pair(&a["strides"]),
            padding(&a["padding"]),
            (1, 1),
        ),
        "max_pool2d" => x[0].max_pool2d(
            pair(&a["ksize"]),
            pair(&a["strides"]),
            padding(&a["padding"]),
        ),
        "avg_pool2d" => x[0].avg_pool2d(
            pair(&a["ksize"]),
            pair(&a["strides"]),
            padding(&a["padding"]),
        ),
        "max_pool1d" => x[0].max_pool1d(
            a["ksize"].as_u64().unwrap() as usize,
            a["strides"].as_u64().unwrap() as usize,
            padding(&a["padding"]),
        ),
        "avg_pool1d" => x[0].avg_pool1d(
            a["ksize"].as_u64().unwrap() as usize,
            a["strides"].as_u64().unwrap() as usize,
            padding(&a["padding"]),
        ),
        "batch_norm" => x[0].batch_norm(
            &x[1],
            &x[2],
            Some(&x[3]),
            Some(&x[4]),
            a["epsilon"].as_f64().unwrap(),
        ),
        "layer_norm" => {
            x[0].layer_norm(Some(&x[1]), Some(&x[2]), 1, a["epsilon"].as_f64().unwrap())
        }
        other => panic!("golden op {other} has no runner"),
    };
    one.map(|t| vec![t])
}
