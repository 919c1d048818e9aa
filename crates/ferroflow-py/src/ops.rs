//! The tensor ops under their TensorFlow names (`ff.math`, `ff.nn`, top level). Unary and
//! binary elementwise ops are looked up by the core's own op names, which the Python side
//! reads from [`unary_names`] and [`binary_names`] to build its namespaces.

use crate::convert::{dtype_arg, to_tensor};
use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use ferroflow_core::ops::conv::Padding;
use ferroflow_core::{BinaryOp, DType, ReduceOp, Tensor, UnaryOp};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

const UNARY: &[UnaryOp] = &[
    UnaryOp::Neg,
    UnaryOp::Abs,
    UnaryOp::Square,
    UnaryOp::Sign,
    UnaryOp::Relu,
    UnaryOp::Relu6,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Log1p,
    UnaryOp::Sqrt,
    UnaryOp::Rsqrt,
    UnaryOp::Reciprocal,
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::Gelu,
    UnaryOp::GeluTanh,
    UnaryOp::Silu,
    UnaryOp::Softplus,
    UnaryOp::Selu,
    UnaryOp::Sin,
    UnaryOp::Cos,
    UnaryOp::Erf,
    UnaryOp::Floor,
    UnaryOp::Ceil,
    UnaryOp::Round,
];

const BINARY: &[BinaryOp] = &[
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Maximum,
    BinaryOp::Minimum,
    BinaryOp::FloorDiv,
    BinaryOp::FloorMod,
    BinaryOp::SquaredDifference,
];

const REDUCE: &[(&str, ReduceOp)] = &[
    ("sum", ReduceOp::Sum),
    ("prod", ReduceOp::Prod),
    ("max", ReduceOp::Max),
    ("min", ReduceOp::Min),
];

type T<'a> = &'a Bound<'a, PyAny>;

fn t(x: T<'_>) -> PyResult<Tensor> {
    to_tensor(x, None)
}

fn out(r: ferroflow_core::Result<Tensor>) -> PyResult<PyTensor> {
    Ok(PyTensor(r.py()?))
}

fn axes_of(axis: Option<T<'_>>, rank: usize) -> PyResult<Vec<isize>> {
    match axis {
        None => Ok((0..rank as isize).collect()),
        Some(a) if a.is_none() => Ok((0..rank as isize).collect()),
        Some(a) => match a.extract::<isize>() {
            Ok(i) => Ok(vec![i]),
            Err(_) => a.extract::<Vec<isize>>(),
        },
    }
}

/// The core's names of the elementwise unary ops.
#[pyfunction]
pub fn unary_names() -> Vec<&'static str> {
    UNARY.iter().map(|o| o.name()).collect()
}

/// The core's names of the elementwise binary ops.
#[pyfunction]
pub fn binary_names() -> Vec<&'static str> {
    BINARY.iter().map(|o| o.name()).collect()
}

/// The reductions `reduce` takes.
#[pyfunction]
pub fn reduce_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = REDUCE.iter().map(|(n, _)| *n).collect();
    v.extend(["mean", "any", "all", "logsumexp", "variance", "std"]);
    v
}

/// An elementwise unary op by its core name.
#[pyfunction]
pub fn unary(op: &str, x: T<'_>) -> PyResult<PyTensor> {
    let o = UNARY
        .iter()
        .find(|o| o.name() == op)
        .ok_or_else(|| PyValueError::new_err(format!("no unary op '{op}'")))?;
    out(t(x)?.unary(*o))
}

/// An elementwise binary op by its core name, with broadcasting. A Python or NumPy
/// operand takes the other's dtype, as TensorFlow converts literals.
#[pyfunction]
pub fn binary(op: &str, a: T<'_>, b: T<'_>) -> PyResult<PyTensor> {
    let o = BINARY
        .iter()
        .find(|o| o.name() == op)
        .ok_or_else(|| PyValueError::new_err(format!("no binary op '{op}'")))?;
    let (a, b) = operands(a, b)?;
    out(a.binary(*o, &b))
}

/// Both operands as tensors; a non-tensor one converted to the other's dtype.
fn operands(a: T<'_>, b: T<'_>) -> PyResult<(Tensor, Tensor)> {
    let a_is = a.is_instance_of::<PyTensor>() || a.is_instance_of::<crate::variable::PyVariable>();
    let b_is = b.is_instance_of::<PyTensor>() || b.is_instance_of::<crate::variable::PyVariable>();
    Ok(match (a_is, b_is) {
        (false, true) => {
            let b = t(b)?;
            (to_tensor(a, Some(b.dtype()))?, b)
        }
        (true, false) => {
            let a = t(a)?;
            let b = to_tensor(b, Some(a.dtype()))?;
            (a, b)
        }
        _ => (t(a)?, t(b)?),
    })
}

/// `tf.reduce_<op>(x, axis=None, keepdims=False)`.
#[pyfunction]
#[pyo3(signature = (op, x, axis=None, keepdims=false))]
pub fn reduce(op: &str, x: T<'_>, axis: Option<T<'_>>, keepdims: bool) -> PyResult<PyTensor> {
    let x = t(x)?;
    let axes = axes_of(axis, x.rank())?;
    let r = match op {
        "logsumexp" => x.logsumexp(axes, keepdims),
        "variance" => x.variance(axes, keepdims),
        "std" => x.std(axes, keepdims),
        "mean" => x.mean(axes, keepdims),
        "any" => x.any(axes, keepdims),
        "all" => x.all(axes, keepdims),
        _ => {
            let (_, o) = REDUCE
                .iter()
                .find(|(n, _)| *n == op)
                .ok_or_else(|| PyValueError::new_err(format!("no reduction '{op}'")))?;
            x.reduce(*o, axes, keepdims)
        }
    };
    out(r)
}

/// `tf.constant(value, dtype=None, shape=None)`.
#[pyfunction]
#[pyo3(signature = (value, dtype=None, shape=None))]
pub fn constant(
    value: T<'_>,
    dtype: Option<T<'_>>,
    shape: Option<Vec<usize>>,
) -> PyResult<PyTensor> {
    let d = dtype.map(dtype_arg).transpose()?;
    let mut x = to_tensor(value, d)?;
    if let Some(s) = shape {
        x = if x.numel() == 1 && s.iter().product::<usize>() != 1 {
            x.reshape_to(&[]).py()?.broadcast_to(&s).py()?.contiguous()
        } else {
            x.reshape_to(&s).py()?
        };
    }
    Ok(PyTensor(x))
}

/// `tf.matmul(a, b, transpose_a=False, transpose_b=False)`.
#[pyfunction]
#[pyo3(signature = (a, b, transpose_a=false, transpose_b=false))]
pub fn matmul(a: T<'_>, b: T<'_>, transpose_a: bool, transpose_b: bool) -> PyResult<PyTensor> {
    let (a, b) = operands(a, b)?;
    out(a.matmul_t(&b, transpose_a, transpose_b))
}

/// `tf.reshape(x, shape)` (one dimension may be -1).
#[pyfunction]
pub fn reshape(x: T<'_>, shape: Vec<isize>) -> PyResult<PyTensor> {
    out(t(x)?.reshape(&shape))
}

/// `tf.transpose(x, perm=None)` (reversed axes by default).
#[pyfunction]
#[pyo3(signature = (x, perm=None))]
pub fn transpose(x: T<'_>, perm: Option<Vec<usize>>) -> PyResult<PyTensor> {
    let x = t(x)?;
    let perm = perm.unwrap_or_else(|| (0..x.rank()).rev().collect());
    out(x.transpose(&perm))
}

fn tensors(values: T<'_>) -> PyResult<Vec<Tensor>> {
    values.try_iter()?.map(|v| t(&v?)).collect()
}

/// `tf.concat(values, axis)`.
#[pyfunction]
pub fn concat(values: T<'_>, axis: isize) -> PyResult<PyTensor> {
    out(Tensor::concat(&tensors(values)?, axis))
}

/// `tf.stack(values, axis=0)`.
#[pyfunction]
#[pyo3(signature = (values, axis=0))]
pub fn stack(values: T<'_>, axis: isize) -> PyResult<PyTensor> {
    out(Tensor::stack(&tensors(values)?, axis))
}

/// `tf.unstack(x, axis=0)`.
#[pyfunction]
#[pyo3(signature = (x, axis=0))]
pub fn unstack(x: T<'_>, axis: isize) -> PyResult<Vec<PyTensor>> {
    Ok(t(x)?
        .unstack(axis)
        .py()?
        .into_iter()
        .map(PyTensor)
        .collect())
}

/// `tf.split(x, num_or_size_splits, axis=0)`.
#[pyfunction]
#[pyo3(signature = (x, num_or_size_splits, axis=0))]
pub fn split(x: T<'_>, num_or_size_splits: T<'_>, axis: isize) -> PyResult<Vec<PyTensor>> {
    let x = t(x)?;
    let parts = match num_or_size_splits.extract::<usize>() {
        Ok(n) => x.split_even(n, axis),
        Err(_) => x.split(&num_or_size_splits.extract::<Vec<isize>>()?, axis),
    };
    Ok(parts.py()?.into_iter().map(PyTensor).collect())
}

/// `tf.expand_dims(x, axis)`.
#[pyfunction]
pub fn expand_dims(x: T<'_>, axis: isize) -> PyResult<PyTensor> {
    out(t(x)?.expand_dims(axis))
}

/// `tf.squeeze(x, axis=None)`.
#[pyfunction]
#[pyo3(signature = (x, axis=None))]
pub fn squeeze(x: T<'_>, axis: Option<T<'_>>) -> PyResult<PyTensor> {
    let x = t(x)?;
    let axes = match axis {
        None => x
            .shape()
            .iter()
            .enumerate()
            .filter(|(_, d)| **d == 1)
            .map(|(i, _)| i as isize)
            .collect(),
        Some(a) => axes_of(Some(a), x.rank())?,
    };
    out(x.squeeze(&axes))
}

/// `tf.cast(x, dtype)`.
#[pyfunction]
pub fn cast(x: T<'_>, dtype: T<'_>) -> PyResult<PyTensor> {
    out(t(x)?.cast(dtype_arg(dtype)?))
}

/// `tf.argmax(x, axis=0)` / `tf.argmin`.
#[pyfunction]
#[pyo3(signature = (x, axis=0, smallest=false))]
pub fn argmax(x: T<'_>, axis: isize, smallest: bool) -> PyResult<PyTensor> {
    let x = t(x)?;
    out(if smallest {
        x.argmin(axis)
    } else {
        x.argmax(axis)
    })
}

/// `tf.one_hot(indices, depth, on_value=1, off_value=0, dtype=float32)`.
#[pyfunction]
#[pyo3(signature = (indices, depth, on_value=1.0, off_value=0.0, dtype=None))]
pub fn one_hot(
    indices: T<'_>,
    depth: usize,
    on_value: f64,
    off_value: f64,
    dtype: Option<T<'_>>,
) -> PyResult<PyTensor> {
    let d = dtype.map(dtype_arg).transpose()?.unwrap_or(DType::F32);
    out(t(indices)?.one_hot(depth, on_value, off_value, d))
}

/// `tf.nn.softmax(x, axis=-1)` / `log_softmax`.
#[pyfunction]
#[pyo3(signature = (x, axis=-1, log=false))]
pub fn softmax(x: T<'_>, axis: isize, log: bool) -> PyResult<PyTensor> {
    let x = t(x)?;
    out(if log {
        x.log_softmax(axis)
    } else {
        x.softmax(axis)
    })
}

/// `tf.where(cond, x, y)`.
#[pyfunction]
#[pyo3(name = "where_")]
pub fn where_(cond: T<'_>, x: T<'_>, y: T<'_>) -> PyResult<PyTensor> {
    let (x, y) = operands(x, y)?;
    out(Tensor::where_(&t(cond)?, &x, &y))
}

/// `tf.gather(params, indices, axis=0)`.
#[pyfunction]
#[pyo3(signature = (params, indices, axis=0))]
pub fn gather(params: T<'_>, indices: T<'_>, axis: isize) -> PyResult<PyTensor> {
    out(t(params)?.gather(&t(indices)?, axis))
}

/// `tf.fill(shape, value, dtype)`, `tf.zeros`, `tf.ones`.
#[pyfunction]
#[pyo3(signature = (shape, value, dtype=None))]
pub fn fill(shape: Vec<usize>, value: f64, dtype: Option<T<'_>>) -> PyResult<PyTensor> {
    let d = dtype.map(dtype_arg).transpose()?.unwrap_or(DType::F32);
    out(Tensor::full(&shape, value, d))
}

/// `tf.range(start, limit, delta, dtype)`.
#[pyfunction]
#[pyo3(signature = (start, limit, delta, dtype))]
pub fn range(start: f64, limit: f64, delta: f64, dtype: T<'_>) -> PyResult<PyTensor> {
    out(Tensor::arange(start, limit, delta, dtype_arg(dtype)?))
}

/// `tf.eye(n, m, dtype)`.
#[pyfunction]
#[pyo3(signature = (n, m=None, dtype=None))]
pub fn eye(n: usize, m: Option<usize>, dtype: Option<T<'_>>) -> PyResult<PyTensor> {
    let d = dtype.map(dtype_arg).transpose()?.unwrap_or(DType::F32);
    out(Tensor::eye(n, m.unwrap_or(n), d))
}

/// `tf.random.normal` / `uniform` / `truncated_normal`.
#[pyfunction]
#[pyo3(signature = (kind, shape, a, b, dtype=None, seed=None))]
pub fn random(
    kind: &str,
    shape: Vec<usize>,
    a: f64,
    b: f64,
    dtype: Option<T<'_>>,
    seed: Option<u64>,
) -> PyResult<PyTensor> {
    let d = dtype.map(dtype_arg).transpose()?.unwrap_or(DType::F32);
    use ferroflow_core::random as r;
    out(match kind {
        "normal" => r::normal(&shape, a, b, d, seed),
        "uniform" => r::uniform(&shape, a, b, d, seed),
        "truncated_normal" => r::truncated_normal(&shape, a, b, d, seed),
        other => {
            return Err(PyValueError::new_err(format!(
                "no random distribution '{other}'"
            )))
        }
    })
}

/// `tf.random.set_seed(seed)` (also `keras.utils.set_random_seed`).
#[pyfunction]
pub fn set_seed(seed: u64) {
    ferroflow_core::random::set_seed(seed);
}

/// `tf.clip_by_value(x, lo, hi)`.
#[pyfunction]
pub fn clip_by_value(x: T<'_>, lo: f64, hi: f64) -> PyResult<PyTensor> {
    out(t(x)?.clip_scalar(lo, hi))
}

/// `tf.tile(x, multiples)`.
#[pyfunction]
pub fn tile(x: T<'_>, multiples: Vec<usize>) -> PyResult<PyTensor> {
    out(t(x)?.tile(&multiples))
}

/// `tf.reverse(x, axis)`.
#[pyfunction]
pub fn reverse(x: T<'_>, axis: Vec<isize>) -> PyResult<PyTensor> {
    out(t(x)?.reverse(&axis))
}

/// `tf.broadcast_to(x, shape)`.
#[pyfunction]
pub fn broadcast_to(x: T<'_>, shape: Vec<usize>) -> PyResult<PyTensor> {
    out(t(x)?.broadcast_to(&shape).map(|v| v.contiguous()))
}

/// `tf.sort` / `tf.argsort` (`direction` "ASCENDING" or "DESCENDING").
#[pyfunction]
#[pyo3(signature = (x, axis=-1, direction="ASCENDING", indices=false))]
pub fn sort(x: T<'_>, axis: isize, direction: &str, indices: bool) -> PyResult<PyTensor> {
    let x = t(x)?;
    let desc = direction.eq_ignore_ascii_case("descending");
    out(if indices {
        x.argsort(axis, desc)
    } else {
        x.sort(axis, desc)
    })
}

/// `tf.math.top_k(x, k)`: values and indices.
#[pyfunction]
#[pyo3(signature = (x, k=1))]
pub fn top_k(x: T<'_>, k: usize) -> PyResult<(PyTensor, PyTensor)> {
    let (v, i) = t(x)?.top_k(k).py()?;
    Ok((PyTensor(v), PyTensor(i)))
}

/// `tf.math.cumsum(x, axis=0, exclusive=False, reverse=False)`.
#[pyfunction]
#[pyo3(signature = (x, axis=0, exclusive=false, reverse=false))]
pub fn cumsum(x: T<'_>, axis: isize, exclusive: bool, reverse: bool) -> PyResult<PyTensor> {
    out(t(x)?.cumsum(axis, exclusive, reverse))
}

/// `tf.einsum(equation, *operands)`.
#[pyfunction]
#[pyo3(signature = (equation, *operands))]
pub fn einsum(equation: &str, operands: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<PyTensor> {
    out(Tensor::einsum(equation, &tensors(operands.as_any())?))
}

/// `tf.nn.leaky_relu(x, alpha)` / `tf.nn.elu`.
#[pyfunction]
#[pyo3(signature = (kind, x, alpha))]
pub fn parametric(kind: &str, x: T<'_>, alpha: f64) -> PyResult<PyTensor> {
    let x = t(x)?;
    out(match kind {
        "leaky_relu" => x.leaky_relu(alpha),
        "elu" => x.elu(alpha),
        other => return Err(PyValueError::new_err(format!("no op '{other}'"))),
    })
}

/// `tf.nn.dropout(x, rate, seed=None)` (always applied, as in TensorFlow).
#[pyfunction]
#[pyo3(signature = (x, rate, seed=None))]
pub fn dropout(x: T<'_>, rate: f64, seed: Option<u64>) -> PyResult<PyTensor> {
    out(t(x)?.dropout(rate, true, seed))
}

/// `tf.shape(x)` as an int32 tensor.
#[pyfunction]
pub fn shape_of(x: T<'_>) -> PyResult<PyTensor> {
    let dims: Vec<i32> = t(x)?.shape().iter().map(|&d| d as i32).collect();
    let n = dims.len();
    out(Tensor::from_vec(dims, &[n]))
}

/// `tf.convert_to_tensor(value, dtype=None)`.
#[pyfunction]
#[pyo3(signature = (value, dtype=None))]
pub fn convert_to_tensor(value: T<'_>, dtype: Option<T<'_>>) -> PyResult<PyTensor> {
    let d = dtype.map(dtype_arg).transpose()?;
    Ok(PyTensor(to_tensor(value, d)?))
}

fn padding(p: &str) -> PyResult<Padding> {
    match p.to_ascii_uppercase().as_str() {
        "SAME" => Ok(Padding::Same),
        "VALID" => Ok(Padding::Valid),
        other => Err(PyValueError::new_err(format!(
            "padding must be 'SAME' or 'VALID', got '{other}'"
        ))),
    }
}

/// A window or stride argument as TensorFlow takes it: `n`, `[h, w]` or `[1, h, w, 1]`.
fn pair(v: T<'_>, what: &str) -> PyResult<(usize, usize)> {
    if let Ok(n) = v.extract::<usize>() {
        return Ok((n, n));
    }
    match v.extract::<Vec<usize>>()?.as_slice() {
        [n] => Ok((*n, *n)),
        [h, w] | [1, h, w, 1] => Ok((*h, *w)),
        other => Err(PyValueError::new_err(format!(
            "{what} must be n, [h, w] or [1, h, w, 1], got {other:?}"
        ))),
    }
}

/// `tf.nn.conv2d(input, filters, strides, padding, dilations)`: NHWC input, HWIO filters.
#[pyfunction]
#[pyo3(signature = (input, filters, strides, padding, dilations=None))]
pub fn conv2d(
    input: T<'_>,
    filters: T<'_>,
    strides: T<'_>,
    padding: &str,
    dilations: Option<T<'_>>,
) -> PyResult<PyTensor> {
    let d = dilations
        .map(|d| pair(d, "dilations"))
        .transpose()?
        .unwrap_or((1, 1));
    out(t(input)?.conv2d(
        &t(filters)?,
        pair(strides, "strides")?,
        self::padding(padding)?,
        d,
    ))
}

/// `tf.nn.max_pool2d` / `avg_pool2d` on NHWC input.
#[pyfunction]
pub fn pool2d(
    kind: &str,
    input: T<'_>,
    ksize: T<'_>,
    strides: T<'_>,
    padding: &str,
) -> PyResult<PyTensor> {
    let (x, k, s, p) = (
        t(input)?,
        pair(ksize, "ksize")?,
        pair(strides, "strides")?,
        self::padding(padding)?,
    );
    out(match kind {
        "max" => x.max_pool2d(k, s, p),
        "avg" => x.avg_pool2d(k, s, p),
        other => return Err(PyValueError::new_err(format!("no pooling '{other}'"))),
    })
}

/// `tf.nn.moments(x, axes, keepdims)`: mean and variance.
#[pyfunction]
#[pyo3(signature = (x, axes, keepdims=false))]
pub fn moments(x: T<'_>, axes: Vec<isize>, keepdims: bool) -> PyResult<(PyTensor, PyTensor)> {
    let (m, v) = t(x)?.moments(axes, keepdims).py()?;
    Ok((PyTensor(m), PyTensor(v)))
}

/// `tf.stop_gradient(x)`: the same values, no gradient.
#[pyfunction]
pub fn stop_gradient(x: T<'_>) -> PyResult<PyTensor> {
    Ok(PyTensor(t(x)?.stop_gradient()))
}

/// Registers the op functions on the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    macro_rules! add {
        ($($f:ident),* $(,)?) => { $( m.add_function(wrap_pyfunction!($f, m)?)?; )* };
    }
    add!(
        unary_names,
        binary_names,
        reduce_names,
        unary,
        binary,
        reduce,
        constant,
        matmul,
        reshape,
        transpose,
        concat,
        stack,
        unstack,
        split,
        expand_dims,
        squeeze,
        cast,
        argmax,
        one_hot,
        softmax,
        where_,
        gather,
        fill,
        range,
        eye,
        random,
        set_seed,
        clip_by_value,
        tile,
        reverse,
        broadcast_to,
        sort,
        top_k,
        cumsum,
        einsum,
        parametric,
        dropout,
        shape_of,
        convert_to_tensor,
        conv2d,
        pool2d,
        moments,
        stop_gradient,
    );
    Ok(())
}
