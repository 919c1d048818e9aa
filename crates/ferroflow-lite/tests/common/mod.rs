//! Building blocks of the small models the fusion tests write.

use ferroflow_lite::ir::{ElementType, LiteOp, LiteTensor, Op};

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
