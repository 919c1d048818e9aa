//! Large batches of compiled functions as chunks of rows: the same results as a whole
//! call, and no split where an op mixes rows or the function uses its batch size as a
//! number.

use ferroflow_core::ops::conv::Padding;
use ferroflow_core::{random, Axes, DType, Result, Tensor};
use ferroflow_graph::{function, ConcreteFunction, Function, OptLevel};

fn normal(shape: &[usize], seed: u64) -> Tensor {
    random::normal(shape, 0.0, 1.0, DType::F32, Some(seed)).unwrap()
}

fn close(a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.to_f64_vec().iter().zip(b.to_f64_vec()) {
        assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{x} vs {y}");
    }
}

fn trace(f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>, x: &Tensor) -> ConcreteFunction {
    ConcreteFunction::trace("f", f, std::slice::from_ref(x), OptLevel::Full)
        .unwrap()
        .0
}

/// `x` run through `f` as chunks of `sizes` rows, with functions traced for each size.
fn chunked(
    f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>> + Copy,
    x: &Tensor,
    sizes: &[usize],
) -> Vec<Tensor> {
    let whole = trace(f, x);
    let pieces = ferroflow_core::row_chunks::cut_rows(x, sizes).unwrap();
    let mut traced: Vec<ConcreteFunction> = Vec::new();
    for p in &pieces {
        if !traced
            .iter()
            .any(|t| t.input_rows() == p.shape().first().copied())
        {
            traced.push(trace(f, p));
        }
    }
    let refs: Vec<&ConcreteFunction> = traced.iter().collect();
    whole
        .call_in_chunks(std::slice::from_ref(x), sizes, &refs)
        .unwrap()
}

fn whole(f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>, x: &Tensor) -> Vec<Tensor> {
    trace(f, x).call(std::slice::from_ref(x)).unwrap()
}

/// A small CNN: convolution, ReLU, flatten, a dense layer and softmax, all row-wise.
fn cnn(x: &[Tensor]) -> Result<Vec<Tensor>> {
    let filter = normal(&[3, 3, 2, 4], 1);
    let dense = normal(&[5 * 5 * 4, 3], 2);
    let h = x[0]
        .conv2d(&filter, (1, 1), Padding::Same, (1, 1))?
        .relu()?;
    let flat = h.reshape(&[-1, 5 * 5 * 4])?;
    Ok(vec![
        flat.matmul(&dense)?.softmax(-1)?,
        h.mean(Axes::from(vec![1, 2]), false)?,
    ])
}

#[test]
fn row_wise_functions_give_the_whole_batch_result_in_any_chunks() {
    let x = normal(&[6, 5, 5, 2], 3);
    let want = whole(cnn, &x);
    for sizes in [&[2, 2, 2][..], &[3, 3], &[4, 2], &[1, 1, 1, 1, 1, 1]] {
        let got = chunked(cnn, &x, sizes);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            close(g, w);
        }
    }
}

/// Divides by the batch size: a chunk's trace holds another constant.
fn over_batch(x: &[Tensor]) -> Result<Vec<Tensor>> {
    Ok(vec![x[0].mul_scalar(1.0 / x[0].shape()[0] as f64)?])
}

/// Subtracts the batch mean: rows mix.
fn centred(x: &[Tensor]) -> Result<Vec<Tensor>> {
    Ok(vec![x[0].sub(&x[0].mean(Axes::from(0), true)?)?])
}

#[test]
fn functions_that_see_the_batch_run_whole() {
    let x = normal(&[6, 3], 4);
    for f in [over_batch as fn(&[Tensor]) -> Result<Vec<Tensor>>, centred] {
        let want = whole(f, &x);
        // Chunks run alone would give another result...
        let naive: Vec<Tensor> = (0..3)
            .map(|c| {
                let piece = x.slice(&[2 * c, 0], &[2, -1]).unwrap();
                whole(f, &piece).remove(0)
            })
            .collect();
        let naive = Tensor::concat(&naive, 0).unwrap();
        let diff = naive
            .to_f64_vec()
            .iter()
            .zip(want[0].to_f64_vec())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            diff > 1e-3,
            "the chunks must differ from the whole batch here"
        );
        // ...so the call runs the batch whole.
        close(&chunked(f, &x, &[2, 2, 2])[0], &want[0]);
    }
}

#[test]
fn large_batches_split_through_function_call() {
    // 16 rows of 2.5 MiB: past the size from which a batch runs in chunks.
    let x = Tensor::full(&[16, 1024, 640], 1.5, DType::F32).unwrap();
    let mut f = function(|x: &[Tensor]| Ok(vec![x[0].mul_scalar(2.0)?.relu()?]));
    let first = f.call(std::slice::from_ref(&x)).unwrap();
    let cf = f.concrete_function(std::slice::from_ref(&x)).unwrap();
    let sizes = cf
        .row_chunks(std::slice::from_ref(&x))
        .expect("a row-wise function splits");
    assert_eq!(sizes.iter().sum::<usize>(), 16);
    let again = f.call(std::slice::from_ref(&x)).unwrap();
    assert_eq!(again[0].shape(), &[16, 1024, 640]);
    assert_eq!(
        again[0].to_vec::<f32>().unwrap(),
        first[0].to_vec::<f32>().unwrap()
    );
    assert!(again[0].to_vec::<f32>().unwrap().iter().all(|&v| v == 3.0));
    // The chunks' functions are internal traces.
    assert_eq!(f.tracing_count(), 1);

    let mut g = function(|x: &[Tensor]| Ok(vec![centred(x)?.remove(0)]));
    g.call(std::slice::from_ref(&x)).unwrap();
    let cg = g.concrete_function(std::slice::from_ref(&x)).unwrap();
    assert_eq!(cg.row_chunks(std::slice::from_ref(&x)), None);
}

#[test]
fn a_closure_that_fixes_its_batch_runs_whole() {
    let x = Tensor::full(&[16, 1024, 640], 0.5, DType::F32).unwrap();
    // A reshape to a fixed first dimension: a chunk's trace gives another graph.
    let mut f = function(|x: &[Tensor]| Ok(vec![x[0].reshape(&[16, -1])?.mul_scalar(4.0)?]));
    // Runs at 16 rows only: a chunk's trace fails.
    let mut g = function(|x: &[Tensor]| match x[0].shape()[0] {
        16 => Ok(vec![x[0].reshape(&[16, -1])?.mul_scalar(4.0)?]),
        n => Err(ferroflow_core::Error::invalid("test", format!("{n} rows"))),
    });
    runs_whole(&mut f, &x);
    runs_whole(&mut g, &x);
}

/// Three calls of `h` on `x` give `x * 4` flattened, and the batch runs whole.
fn runs_whole(h: &mut Function<impl FnMut(&[Tensor]) -> Result<Vec<Tensor>>>, x: &Tensor) {
    for _ in 0..3 {
        let y = h.call(std::slice::from_ref(x)).unwrap().remove(0);
        assert_eq!(y.shape(), &[16, 1024 * 640]);
        assert!(y.to_vec::<f32>().unwrap().iter().all(|&v| v == 2.0));
    }
    let cf = h.concrete_function(std::slice::from_ref(x)).unwrap();
    assert_eq!(cf.row_chunks(std::slice::from_ref(x)), None);
}
