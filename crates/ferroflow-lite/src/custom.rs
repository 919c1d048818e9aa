//! Custom operators, as TFLite's op resolver has them: an application registers a kernel
//! under each custom op's name (`Interpreter::builder().custom_op("Name", kernel)`), and
//! the custom ops that LiteRT's own builds include are built in. A model with a custom op
//! that has no kernel is refused at load, naming every such op.

use crate::ir::LiteTensor;
use crate::kernels;
use ferroflow_core::ops::conv::Padding;
use ferroflow_core::{Error, Result, Tensor};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A kernel for a custom operator.
pub trait CustomOp: Send + Sync {
    /// The op's results, one per output: from its inputs (int8/int16 activations arrive
    /// dequantised to float, as builtins see them; `None` for an omitted optional input),
    /// its `custom_options` bytes and its output tensors' descriptions (shape, type).
    fn run(
        &self,
        inputs: &[Option<Tensor>],
        options: &[u8],
        outputs: &[&LiteTensor],
    ) -> Result<Vec<Tensor>>;
}

impl<F> CustomOp for F
where
    F: Fn(&[Option<Tensor>], &[u8], &[&LiteTensor]) -> Result<Vec<Tensor>> + Send + Sync,
{
    fn run(
        &self,
        inputs: &[Option<Tensor>],
        options: &[u8],
        outputs: &[&LiteTensor],
    ) -> Result<Vec<Tensor>> {
        self(inputs, options, outputs)
    }
}

/// Custom-op kernels by name.
#[derive(Clone)]
pub struct CustomOps {
    kernels: BTreeMap<String, Arc<dyn CustomOp>>,
}

impl Default for CustomOps {
    fn default() -> Self {
        Self::with_builtins()
    }
}

impl CustomOps {
    /// The custom ops ferroflow builds in: those LiteRT's Python build runs out of the box.
    pub fn with_builtins() -> Self {
        let mut ops = CustomOps {
            kernels: BTreeMap::new(),
        };
        ops.register(TRANSPOSE_CONV_BIAS, Arc::new(transpose_conv_bias));
        ops
    }

    /// Registers (or replaces) the kernel for custom op `name`.
    pub fn register(&mut self, name: impl Into<String>, kernel: Arc<dyn CustomOp>) {
        self.kernels.insert(name.into(), kernel);
    }

    /// The kernel registered for `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn CustomOp>> {
        self.kernels.get(name)
    }

    /// Whether ferroflow runs custom op `name` without an application's kernel.
    pub fn is_builtin(name: &str) -> bool {
        name == TRANSPOSE_CONV_BIAS
    }
}

/// MediaPipe's transposed convolution with bias, common in segmentation models.
const TRANSPOSE_CONV_BIAS: &str = "Convolution2DTransposeBias";

fn required<'a>(op: &'static str, inputs: &'a [Option<Tensor>], i: usize) -> Result<&'a Tensor> {
    inputs
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| Error::invalid(op, format!("input {i} is missing")))
}

/// `Convolution2DTransposeBias(image, filter[out, kh, kw, in], bias)`; its options are
/// a `TfLiteTransposeConvParams`: padding (1 same, 2 valid), stride width, stride height,
/// each a little-endian int32. The output is `in * stride` (same) or
/// `in * stride + max(k - stride, 0)` (valid) on each axis.
fn transpose_conv_bias(
    inputs: &[Option<Tensor>],
    options: &[u8],
    _outputs: &[&LiteTensor],
) -> Result<Vec<Tensor>> {
    let op = TRANSPOSE_CONV_BIAS;
    let int = |i: usize| {
        options
            .get(4 * i..4 * i + 4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(padding), Some(sw), Some(sh)) = (int(0), int(1), int(2)) else {
        return Err(Error::invalid(
            op,
            format!("options of {} bytes, expected 12 or more", options.len()),
        ));
    };
    let padding = match padding {
        1 => Padding::Same,
        2 => Padding::Valid,
        p => return Err(Error::invalid(op, format!("padding {p} (1 same, 2 valid)"))),
    };
    if sw < 1 || sh < 1 {
        return Err(Error::invalid(op, format!("strides {sh}x{sw}")));
    }
    let (image, filter, bias) = (
        required(op, inputs, 0)?,
        required(op, inputs, 1)?,
        required(op, inputs, 2)?,
    );
    let (&[_, h, w, _], &[_, kh, kw, _]) = (image.shape(), filter.shape()) else {
        return Err(Error::shapes(
            op,
            "needs an NHWC image and a [out, kh, kw, in] filter",
            image.shape(),
            filter.shape(),
        ));
    };
    let (sh, sw) = (sh as usize, sw as usize);
    let size = |n: usize, k: usize, s: usize| match padding {
        Padding::Same => n.checked_mul(s),
        _ => n.checked_mul(s).map(|v| v + k.saturating_sub(s)),
    };
    let (Some(oh), Some(ow)) = (size(h, kh, sh), size(w, kw, sw)) else {
        return Err(Error::invalid(op, "the output size overflows"));
    };
    kernels::check_output_size(op, &[image.shape()[0], oh, ow, filter.shape()[0]])?;
    let w = filter.transpose(&[1, 2, 0, 3])?.contiguous();
    let y = image.conv2d_transpose(&w, (oh, ow), (sh, sw), padding, (1, 1))?;
    Ok(vec![y.add(bias)?])
}
