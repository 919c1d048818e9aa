//! ResNet50 (He et al., 2015) as `keras.applications.ResNet50` builds it: bottleneck
//! residual blocks with convolution shortcuts at each stage's first block, and Keras's
//! layer names (`conv3_block2_2_bn`).

use super::{apply, finish, head, merge, AppOptions, HeadStyle};
use crate::models::{Input, KerasTensor, Model};
use ferroflow_core::{DType, Result};
use serde_json::json;

const BN_EPSILON: f64 = 1.001e-5;

fn conv(
    x: &KerasTensor,
    name: &str,
    filters: usize,
    kernel: usize,
    stride: usize,
    padding: &str,
) -> Result<KerasTensor> {
    apply(
        "Conv2D",
        json!({"name": name, "filters": filters, "kernel_size": [kernel, kernel],
               "strides": [stride, stride], "padding": padding}),
        x,
    )
}

fn bn(x: &KerasTensor, name: &str) -> Result<KerasTensor> {
    apply(
        "BatchNormalization",
        json!({"name": name, "epsilon": BN_EPSILON}),
        x,
    )
}

fn relu(x: &KerasTensor, name: &str) -> Result<KerasTensor> {
    apply("Activation", json!({"name": name, "activation": "relu"}), x)
}

/// A bottleneck block: 1x1, 3x3, 1x1 (4 × `filters`), added to the input or to a
/// projected shortcut.
fn block(
    x: &KerasTensor,
    filters: usize,
    stride: usize,
    conv_shortcut: bool,
    name: &str,
) -> Result<KerasTensor> {
    let shortcut = if conv_shortcut {
        let s = conv(
            x,
            &format!("{name}_0_conv"),
            4 * filters,
            1,
            stride,
            "valid",
        )?;
        bn(&s, &format!("{name}_0_bn"))?
    } else {
        x.clone()
    };
    let mut y = conv(x, &format!("{name}_1_conv"), filters, 1, stride, "valid")?;
    y = bn(&y, &format!("{name}_1_bn"))?;
    y = relu(&y, &format!("{name}_1_relu"))?;
    y = conv(&y, &format!("{name}_2_conv"), filters, 3, 1, "same")?;
    y = bn(&y, &format!("{name}_2_bn"))?;
    y = relu(&y, &format!("{name}_2_relu"))?;
    y = conv(&y, &format!("{name}_3_conv"), 4 * filters, 1, 1, "valid")?;
    y = bn(&y, &format!("{name}_3_bn"))?;
    let y = merge("Add", &format!("{name}_add"), &[shortcut, y])?;
    relu(&y, &format!("{name}_out"))
}

/// `keras.applications.ResNet50`: inputs preprocessed as Caffe's (BGR, mean-subtracted;
/// `resnet.preprocess_input`).
pub fn resnet50(opts: &AppOptions) -> Result<Model> {
    let shape = opts.input_shape("ResNet50", 224, 32)?;
    let input = Input::with(shape.to_vec(), DType::F32, Some("input_layer"));
    let mut x = apply(
        "ZeroPadding2D",
        json!({"name": "conv1_pad", "padding": [[3, 3], [3, 3]]}),
        &input,
    )?;
    x = conv(&x, "conv1_conv", 64, 7, 2, "valid")?;
    x = bn(&x, "conv1_bn")?;
    x = relu(&x, "conv1_relu")?;
    x = apply(
        "ZeroPadding2D",
        json!({"name": "pool1_pad", "padding": [[1, 1], [1, 1]]}),
        &x,
    )?;
    x = apply(
        "MaxPooling2D",
        json!({"name": "pool1_pool", "pool_size": [3, 3], "strides": [2, 2]}),
        &x,
    )?;
    for (stage, (filters, blocks, stride)) in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]
        .into_iter()
        .enumerate()
    {
        for b in 1..=blocks {
            let name = format!("conv{}_block{b}", stage + 2);
            x = block(&x, filters, if b == 1 { stride } else { 1 }, b == 1, &name)?;
        }
    }
    let style = HeadStyle {
        pool_names: Some(("avg_pool", "max_pool")),
        dropout: 0.0,
        initializers: None,
    };
    let out = head(x, opts, &style)?;
    finish(input, out, "resnet50", opts)
}
