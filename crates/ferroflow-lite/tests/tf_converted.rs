//! `.tflite` files made by TensorFlow's own converter (tools/make_tflite_fixtures.py:
//! float32, dynamic-range and full-integer int8 Keras models) run in ferroflow's
//! interpreter with the outputs LiteRT gave on the same inputs.

use ferroflow_core::npy::read_npy;
use ferroflow_core::{DType, Tensor};
use ferroflow_lite::Interpreter;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs fixture `name` and returns (ours, LiteRT's, output scale if the output is int8).
fn run(name: &str) -> (Vec<f32>, Vec<f32>, Option<f32>) {
    let interp = Interpreter::from_file(fixture(&format!("{name}.tflite"))).unwrap();
    let n = interp.inputs().len();
    let xs: Vec<Tensor> = (0..n)
        .map(|i| {
            let suffix = if i == 0 { String::new() } else { i.to_string() };
            read_npy(fixture(&format!("{name}_x{suffix}.npy"))).unwrap()
        })
        .collect();
    let ours = interp.run_float(&xs).unwrap().remove(0);
    let want = read_npy(fixture(&format!("{name}_y.npy"))).unwrap();
    assert_eq!(ours.shape(), want.shape(), "{name}");
    let scale = interp.outputs()[0]
        .quant
        .as_ref()
        .filter(|_| interp.outputs()[0].dtype == ferroflow_lite::ir::ElementType::I8)
        .map(|q| q.scale[0]);
    (
        ours.to_vec::<f32>().unwrap(),
        want.to_vec::<f32>().unwrap(),
        scale,
    )
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn float_models_match_litert() {
    for m in ["mlp", "cnn", "multi_input"] {
        let (ours, want, _) = run(&format!("{m}_float"));
        let d = max_diff(&ours, &want);
        eprintln!("{m}: max |ferroflow - LiteRT| = {d}");
        assert!(d <= 1e-5, "{m}_float differs from LiteRT by {d}");
    }
}

#[test]
fn int8_models_match_litert_exactly() {
    for m in ["mlp", "cnn", "multi_input"] {
        let (ours, want, scale) = run(&format!("{m}_int8"));
        let step = scale.expect("int8 output");
        let d = max_diff(&ours, &want);
        eprintln!("{m}: max |ferroflow - LiteRT| = {d}");
        assert!(
            d == 0.0,
            "{m}_int8 differs from LiteRT by {d} (one step is {step})"
        );
    }
}

#[test]
fn dynamic_range_models_match_litert() {
    // LiteRT's hybrid kernels quantise activations on every call; ferroflow quantises
    // them the same way (`hybrid.rs`), so only the float sums' rounding differs.
    for m in ["mlp", "cnn", "multi_input"] {
        let (ours, want, _) = run(&format!("{m}_dynamic"));
        let d = max_diff(&ours, &want);
        eprintln!("{m}: max |ferroflow - LiteRT| = {d}");
        assert!(d <= 1e-5, "{m}_dynamic differs from LiteRT by {d}");
    }
}

#[test]
fn shape_computations_and_decompositions_match_litert() {
    // TF's converter lowers Flatten on a dynamic batch to SHAPE / STRIDED_SLICE / PACK /
    // RESHAPE, Conv1D to EXPAND_DIMS / CONV_2D, guards embedding ids with LESS / SELECT_V2,
    // and decomposes LayerNormalization; all run at batch sizes other than the file's 1.
    for m in ["conv_gelu_layernorm", "sequence", "int_embedding"] {
        let (ours, want, _) = run(&format!("{m}_float"));
        let d = max_diff(&ours, &want);
        eprintln!("{m}: max |ferroflow - LiteRT| = {d}");
        assert!(d <= 1e-5, "{m}_float differs from LiteRT by {d}");
    }
}

#[test]
fn our_dynamic_range_quantiser_reproduces_tf_and_litert() {
    // ferroflow's dynamic-range quantisation of TF's float32 file: the same int8 weights
    // as TF's converter and the asymmetric input flag it sets, so that LiteRT's output on
    // TF's dynamic-range file is ferroflow's too (after a write and read of the file).
    let float = Interpreter::from_file(fixture("mlp_float.tflite")).unwrap();
    let ours = ferroflow_lite::quantize::dynamic_range(float.model());
    let written = ferroflow_lite::write::to_bytes(&ours);
    let interp = Interpreter::from_bytes(&written).unwrap();
    let fc_flags: Vec<bool> = interp
        .model()
        .ops
        .iter()
        .filter_map(|op| match op.op {
            ferroflow_lite::ir::Op::FullyConnected {
                asymmetric_inputs, ..
            } => Some(asymmetric_inputs),
            _ => None,
        })
        .collect();
    // Two layers have >= 1024 weights; the last (480) stays float.
    assert_eq!(fc_flags, [true, true, false]);
    let x = read_npy(fixture("mlp_dynamic_x.npy")).unwrap();
    let got = interp.run_float(&[x]).unwrap().remove(0);
    let want = read_npy(fixture("mlp_dynamic_y.npy")).unwrap();
    let d = max_diff(
        &got.to_vec::<f32>().unwrap(),
        &want.to_vec::<f32>().unwrap(),
    );
    eprintln!("ferroflow-quantised mlp: max |ferroflow - LiteRT| = {d}");
    assert!(d <= 1e-5, "differs from LiteRT on TF's file by {d}");
}

/// `run` releases each intermediate after its last reader and gives the outputs that
/// `run_all` (which keeps every tensor) gives; the graph's outputs survive either way.
#[test]
fn releasing_intermediates_changes_no_output() {
    for name in ["cnn_float", "cnn_dynamic", "mlp_float"] {
        let interp = Interpreter::from_file(fixture(&format!("{name}.tflite"))).unwrap();
        let x = read_npy(fixture(&format!("{name}_x.npy"))).unwrap();
        let outs = interp.run(std::slice::from_ref(&x)).unwrap();
        let all = interp.run_all(&[x]).unwrap();
        let computed = all.iter().filter(|v| v.is_some()).count();
        assert!(computed > interp.model().outputs.len() + 1, "{name}");
        for (o, &t) in outs.iter().zip(&interp.model().outputs) {
            let kept = all[t].as_ref().unwrap();
            assert_eq!(o.dtype(), kept.dtype(), "{name}");
            assert_eq!(
                o.to_vec::<f32>().unwrap(),
                kept.to_vec::<f32>().unwrap(),
                "{name}"
            );
        }
    }
}

/// A profiled call gives `run`'s outputs and one entry per operator in order, with the
/// multiply-adds of each convolution and dense layer as its shapes give them; the int8
/// model's convolutions are reported as running on integers.
#[test]
fn profiled_calls_time_every_operator_and_count_its_work() {
    use ferroflow_lite::ir::Op;
    for name in ["cnn_float", "cnn_int8", "mlp_float"] {
        let interp = Interpreter::from_file(fixture(&format!("{name}.tflite"))).unwrap();
        let spec = interp.inputs()[0];
        let mut shape: Vec<usize> = spec.shape.iter().map(|&d| d as usize).collect();
        shape[0] = 3;
        let n: usize = shape.iter().product();
        let x = match spec.dtype {
            ferroflow_lite::ir::ElementType::I8 => {
                Tensor::from_vec((0..n).map(|i| (i % 61) as i8 - 30).collect(), &shape)
            }
            _ => Tensor::from_vec((0..n).map(|i| (i % 17) as f32 / 17.0).collect(), &shape),
        }
        .unwrap();
        let plain = interp.run(std::slice::from_ref(&x)).unwrap();
        let (outs, profile) = interp.run_profiled(&[x]).unwrap();
        assert_eq!(outs.len(), plain.len());
        for (a, b) in outs.iter().zip(&plain) {
            let (a, b) = (a.cast(DType::F32).unwrap(), b.cast(DType::F32).unwrap());
            assert_eq!(
                a.to_vec::<f32>().unwrap(),
                b.to_vec::<f32>().unwrap(),
                "{name}"
            );
        }
        let m = interp.model();
        assert!(
            profile.windows(2).all(|w| w[0].index < w[1].index),
            "{name}"
        );
        let mut heavy = 0;
        for p in &profile {
            let op = &m.ops[p.index];
            let w = &m.tensors[op.inputs.get(1).copied().unwrap_or(0).max(0) as usize];
            let out: usize = p.output_shape.iter().product();
            assert_eq!(p.output_shape[0], 3, "{name} op {}", p.index);
            let want = match op.op {
                Op::Conv2d { .. } => out * w.numel() / w.shape[0] as usize,
                Op::DepthwiseConv2d { .. } => out * (w.shape[1] * w.shape[2]) as usize,
                Op::FullyConnected { .. } => out * *w.shape.last().unwrap() as usize,
                _ => 0,
            };
            assert_eq!(p.macs, want as u64, "{name} op {} ({})", p.index, p.op);
            if want > 0 {
                heavy += 1;
                assert_eq!(p.int8, name.ends_with("int8"), "{name} op {}", p.index);
                assert!(p.seconds > 0.0 && p.gflops() > 0.0, "{name} op {}", p.index);
            }
        }
        assert!(heavy >= 2, "{name}: {profile:?}");
    }
}

/// A batch whose activations outgrow the caches runs as chunks of rows (one per thread
/// where there are enough), with the outputs of the whole batch run at once.
#[test]
fn large_batches_run_in_chunks_with_the_whole_batchs_outputs() {
    let interp = Interpreter::from_file(fixture("cnn_dynamic.tflite")).unwrap();
    let rows = 8192;
    let chunks = interp
        .row_chunks(rows)
        .expect("a batch of 8192 runs in chunks");
    assert!(chunks.len() > 1 && chunks.iter().sum::<usize>() == rows);
    assert_eq!(interp.row_chunks(4), None);
    let x =
        ferroflow_core::random::uniform(&[rows, 12, 12, 3], 0.0, 1.0, DType::F32, Some(5)).unwrap();
    let chunked = interp.run(std::slice::from_ref(&x)).unwrap().remove(0);
    let (mut whole, _) = interp.run_profiled(&[x]).unwrap();
    let whole = whole.remove(0);
    assert_eq!(chunked.shape(), whole.shape());
    let d = max_diff(
        &chunked.to_vec::<f32>().unwrap(),
        &whole.to_vec::<f32>().unwrap(),
    );
    assert!(d <= 1e-5, "chunked and whole runs differ by {d}");
}
