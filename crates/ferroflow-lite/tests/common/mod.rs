//! Building blocks of the small models the fusion tests write.

use ferroflow_lite::ir::{Activation, ElementType, LiteOp, LiteTensor, Op, Padding, Window};

/// A float tensor: a constant when `data` is given, else an activation.
pub fn tensor(name: &str, shape: &[i32], data: Option<Vec<f32>>) -> LiteTensor {
    LiteTensor {
        name: name.into(),
        shape: shape.to_vec(),
        signature: Vec::new(),
        dtype: ElementType::F32,
        data: data.map(|d| d.iter().flat_map(|v| v.to_le_bytes()).collect()),
        quant: None,
    }
}

/// Operator `op` reading tensors `inputs` and writing tensor `output`.
pub fn op(op: Op, inputs: &[usize], output: usize) -> LiteOp {
    LiteOp {
        op,
        inputs: inputs.iter().map(|&i| i as i32).collect(),
        outputs: vec![output as i32],
    }
}

/// Deterministic values in [-1, 1).
#[allow(dead_code)] // not every test file uses every helper
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| ((i.wrapping_mul(2654435761) ^ seed) % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}

/// A 1x1 CONV_2D (stride 1, no padding) with fused activation `act`.
#[allow(dead_code)]
pub fn pointwise(act: Activation) -> Op {
    Op::Conv2d {
        window: Window {
            padding: Padding::Valid,
            stride: (1, 1),
            dilation: (1, 1),
        },
        act,
    }
}
