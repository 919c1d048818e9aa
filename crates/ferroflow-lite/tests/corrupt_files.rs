//! Truncated and corrupted `.tflite` bytes: the reader and interpreter answer with errors,
//! never a panic or an out-of-bounds read.

use ferroflow_core::{DType, Tensor};
use ferroflow_lite::Interpreter;
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(path).unwrap()
}

/// An input the fuzzer found a bug with (`fuzz/regressions/tflite/`, all of which
/// `ferroflow`'s `tests/fuzz_regressions.rs` replays through the fuzz harness).
fn fuzz_regression(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions/tflite")
        .join(name);
    std::fs::read(path).unwrap()
}

/// Most multiply-adds an operator of these files may do (what the fuzz target allows).
const MAX_OP_MACS: usize = 1 << 24;

/// Loads `bytes` and, when that succeeds, runs the model on zeros of its input shapes.
fn load_and_run(bytes: &[u8]) {
    let Ok(interp) = Interpreter::builder()
        .max_op_macs(MAX_OP_MACS)
        .from_bytes(bytes)
    else {
        return;
    };
    let inputs: Option<Vec<Tensor>> = interp
        .inputs()
        .iter()
        .map(|t| {
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            if shape.iter().product::<usize>() > 1 << 20 {
                return None;
            }
            Tensor::zeros(&shape, ferroflow_lite::core_dtype(t.dtype)).ok()
        })
        .collect();
    if let Some(xs) = inputs {
        let _ = interp.run(&xs);
    }
}

const FILES: [&str; 12] = [
    "mlp_float.tflite",
    "cnn_int8.tflite",
    "multi_input_int8.tflite",
    "cnn_dynamic.tflite",
    "conv_gelu_layernorm_float.tflite",
    "int_embedding_float.tflite",
    "ops/op_sparse_csr_densify.tflite",
    "ops/op_sparse_blocks_fully_connected.tflite",
    "ops/op_cnn_float16_weights.tflite",
    "ops/op_custom_transpose_conv_bias.tflite",
    "ops/op_split_v.tflite",
    "ops/op_while_bidirectional_lstm.tflite",
];

#[test]
fn every_truncation_is_an_error() {
    for f in FILES {
        let bytes = fixture(f);
        // Every prefix up to 512 bytes, then every 97th length.
        for len in (0..bytes.len().min(512)).chain((512..bytes.len()).step_by(97)) {
            assert!(
                Interpreter::from_bytes(&bytes[..len]).is_err(),
                "{f} truncated to {len} bytes was accepted"
            );
        }
    }
}

#[test]
fn errors_name_the_problem() {
    let e = Interpreter::from_bytes(b"not a model at all")
        .err()
        .unwrap();
    assert!(e.to_string().contains("TFL3"), "{e}");
    let mut bytes = fixture("mlp_float.tflite");
    bytes.truncate(bytes.len() / 2);
    let e = Interpreter::from_bytes(&bytes).err().unwrap();
    assert!(e.to_string().contains("invalid flatbuffer"), "{e}");
    let interp = Interpreter::from_bytes(&fixture("mlp_float.tflite")).unwrap();
    let wrong = Tensor::zeros(&[2, 7], DType::F32).unwrap();
    let e = interp.run(&[wrong]).err().unwrap();
    assert!(
        e.to_string()
            .contains("expects shape (None, 32), got (2, 7)"),
        "{e}"
    );
}

/// A file the fuzzer found: a CONV_2D whose filter is the model's input, [1, 8, 2048, 3]
/// over itself, 805M multiply-adds from 48k input values. A limit on an operator's work
/// refuses it before it runs, naming the operator.
#[test]
fn work_limit_refuses_a_convolution_before_it_runs() {
    let bytes = fuzz_regression("conv_filter_fed_from_the_input_timeout");
    let interp = Interpreter::builder()
        .max_op_macs(MAX_OP_MACS)
        .from_bytes(&bytes)
        .unwrap();
    let x = Tensor::zeros(&[1, 8, 2048, 3], DType::F32).unwrap();
    let e = interp.run(&[x]).err().unwrap().to_string();
    assert!(
        e.contains("CONV_2D") && e.contains("805306368 multiply-adds"),
        "{e}"
    );
}

/// A file the fuzzer found: a TILE whose multiples make one long output axis. The output
/// alone was under the element limit, but the index maps the tile builds per output
/// position were 2.4 GB; the run must refuse it before allocating.
#[test]
fn tile_with_a_long_output_axis_is_refused() {
    let bytes = fuzz_regression("tile_one_150m_long_axis_index_maps_oom");
    let interp = Interpreter::from_bytes(&bytes).unwrap();
    let inputs: Vec<Tensor> = interp
        .inputs()
        .iter()
        .map(|t| {
            let shape: Vec<usize> = t.shape.iter().map(|&d| d.max(1) as usize).collect();
            Tensor::zeros(&shape, ferroflow_lite::core_dtype(t.dtype)).unwrap()
        })
        .collect();
    let e = interp.run(&inputs).err().unwrap().to_string();
    assert!(e.contains("TILE") && e.contains("too large"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn corrupted_bytes_never_panic(
        file in 0usize..FILES.len(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = fixture(FILES[file]);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        load_and_run(&bytes);
    }
}
