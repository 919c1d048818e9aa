//! Full-integer int8 models converted by TensorFlow (tools/make_int8_fixtures.py) give
//! exactly LiteRT's int8 outputs in ferroflow's interpreter: every byte of every row.

use ferroflow_core::npy::read_npy;
use ferroflow_core::Tensor;
use ferroflow_lite::Interpreter;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/int8")
        .join(name)
}

/// Runs fixture `name` row by row (the models were converted at batch 1) and returns how
/// many output bytes differ from LiteRT's, and the largest difference in steps.
fn mismatches(name: &str, threads: usize) -> (usize, i32, usize) {
    let interp = Interpreter::from_file(fixture(&format!("{name}.tflite")))
        .unwrap()
        .with_threads(threads)
        .unwrap();
    let x = read_npy(fixture(&format!("{name}_x.npy"))).unwrap();
    let want = read_npy(fixture(&format!("{name}_y.npy")))
        .unwrap()
        .to_vec::<i8>()
        .unwrap();
    let rows = x.shape()[0];
    let mut ours = Vec::new();
    for r in 0..rows {
        let mut begin = vec![0; x.rank()];
        begin[0] = r;
        let mut size = vec![-1isize; x.rank()];
        size[0] = 1;
        let row: Tensor = x.slice(&begin, &size).unwrap().contiguous();
        let y = interp.run(&[row]).unwrap().remove(0);
        ours.extend(y.to_vec::<i8>().unwrap());
    }
    assert_eq!(ours.len(), want.len(), "{name}: output size");
    let diffs: Vec<i32> = ours
        .iter()
        .zip(&want)
        .map(|(&a, &b)| (a as i32 - b as i32).abs())
        .collect();
    let n = diffs.iter().filter(|&&d| d != 0).count();
    (n, diffs.into_iter().max().unwrap_or(0), want.len())
}

#[test]
fn int8_models_give_litert_s_exact_bytes() {
    let mut failures = Vec::new();
    for name in ["mobilenet_v2", "cnn_pools", "layer_norm_sigmoid"] {
        for threads in [1, 2] {
            let (n, max, total) = mismatches(name, threads);
            eprintln!(
                "{name} ({threads} thread(s)): {n} of {total} bytes differ, at most {max} step(s)"
            );
            if n > 0 {
                failures.push(format!("{name}: {n} of {total} bytes differ (max {max})"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
