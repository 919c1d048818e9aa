//! MobileNetV2 (Sandler et al., 2018) as `keras.applications.MobileNetV2` builds it:
//! inverted residual blocks (1x1 expansion, depthwise 3x3, linear 1x1 projection) with
//! ReLU6, Keras's layer names (`block_3_depthwise_BN`) and width multiplier `alpha`.

use super::{apply, finish, head, merge, AppOptions, HeadStyle};
use crate::models::{Input, KerasTensor, Model};
use ferroflow_core::{DType, Error, Result};
use serde_json::json;

/// Keras's `_make_divisible`: the nearest multiple of `divisor` (at least `divisor`), not
/// more than 10 % below `v`.
fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut n = (((v + d / 2.0) as usize) / divisor * divisor).max(divisor);
    if (n as f64) < 0.9 * v {
        n += divisor;
    }
    n
}

/// The blocks after the first: (output filters, stride, expansion).
const BLOCKS: [(usize, usize, usize); 16] = [
    (24, 2, 6),
    (24, 1, 6),
    (32, 2, 6),
    (32, 1, 6),
    (32, 1, 6),
    (64, 2, 6),
    (64, 1, 6),
    (64, 1, 6),
    (64, 1, 6),
    (96, 1, 6),
    (96, 1, 6),
    (96, 1, 6),
    (160, 2, 6),
    (160, 1, 6),
    (160, 1, 6),
    (320, 1, 6),
];

fn bn(x: &KerasTensor, name: &str) -> Result<KerasTensor> {
    apply(
        "BatchNormalization",
        json!({"name": name, "epsilon": 1e-3, "momentum": 0.999}),
        x,
    )
}

fn relu6(x: &KerasTensor, name: &str) -> Result<KerasTensor> {
    apply("ReLU", json!({"name": name, "max_value": 6.0}), x)
}

fn conv1x1(x: &KerasTensor, name: &str, filters: usize, padding: &str) -> Result<KerasTensor> {
    apply(
        "Conv2D",
        json!({"name": name, "filters": filters, "kernel_size": [1, 1], "padding": padding, "use_bias": false}),
        x,
    )
}

/// One inverted residual block; block 0 has no expansion and Keras's `expanded_conv_`
/// names.
fn inverted_residual(
    input: &KerasTensor,
    id: usize,
    filters: usize,
    stride: usize,
    expansion: usize,
    alpha: f64,
) -> Result<KerasTensor> {
    let in_channels = input.shape().last().copied().flatten().unwrap_or(0);
    let out_channels = make_divisible((filters as f64 * alpha).trunc(), 8);
    let mut x = input.clone();
    let prefix = if id == 0 {
        "expanded_conv_".to_string()
    } else {
        let p = format!("block_{id}_");
        x = conv1x1(&x, &format!("{p}expand"), expansion * in_channels, "same")?;
        x = bn(&x, &format!("{p}expand_BN"))?;
        x = relu6(&x, &format!("{p}expand_relu"))?;
        p
    };
    if stride == 2 {
        // Keras's `correct_pad` for a 3x3 kernel: one less on the leading side of even sizes.
        let adjust = |d: Option<usize>| d.map_or(1, |d| 1 - d % 2);
        let s = x.shape();
        let (ah, aw) = (adjust(s[1]), adjust(s[2]));
        x = apply(
            "ZeroPadding2D",
            json!({"name": format!("{prefix}pad"), "padding": [[1 - ah, 1], [1 - aw, 1]]}),
            &x,
        )?;
    }
    x = apply(
        "DepthwiseConv2D",
        json!({"name": format!("{prefix}depthwise"), "kernel_size": [3, 3], "strides": [stride, stride],
               "use_bias": false, "padding": if stride == 1 { "same" } else { "valid" }}),
        &x,
    )?;
    x = bn(&x, &format!("{prefix}depthwise_BN"))?;
    x = relu6(&x, &format!("{prefix}depthwise_relu"))?;
    x = conv1x1(&x, &format!("{prefix}project"), out_channels, "same")?;
    x = bn(&x, &format!("{prefix}project_BN"))?;
    if in_channels == out_channels && stride == 1 {
        return merge("Add", &format!("{prefix}add"), &[input.clone(), x]);
    }
    Ok(x)
}

/// `keras.applications.MobileNetV2` with width multiplier `alpha` (1.0 is the standard
/// model); inputs scaled to [-1, 1] (`mobilenet_v2.preprocess_input`).
pub fn mobilenet_v2(opts: &AppOptions, alpha: f64) -> Result<Model> {
    if alpha.is_nan() || alpha <= 0.0 {
        return Err(Error::invalid(
            "MobileNetV2",
            format!("alpha must be positive, got {alpha}"),
        ));
    }
    // Keras takes the default size from a square input of a standard size.
    let default = match opts.input_shape {
        Some([Some(h), Some(w), _]) if h == w && [96, 128, 160, 192, 224].contains(&h) => h,
        _ => 224,
    };
    let shape = opts.input_shape("MobileNetV2", default, 32)?;
    let rows = shape[0].map_or("None".to_string(), |r| r.to_string());
    let name = format!("mobilenetv2_{alpha:.2}_{rows}");
    let input = Input::with(shape.to_vec(), DType::F32, Some("input_layer"));
    let mut x = apply(
        "Conv2D",
        json!({"name": "Conv1", "filters": make_divisible(32.0 * alpha, 8), "kernel_size": [3, 3],
               "strides": [2, 2], "padding": "same", "use_bias": false}),
        &input,
    )?;
    x = bn(&x, "bn_Conv1")?;
    x = relu6(&x, "Conv1_relu")?;
    x = inverted_residual(&x, 0, 16, 1, 1, alpha)?;
    for (i, &(filters, stride, expansion)) in BLOCKS.iter().enumerate() {
        x = inverted_residual(&x, i + 1, filters, stride, expansion, alpha)?;
    }
    let last = if alpha > 1.0 {
        make_divisible(1280.0 * alpha, 8)
    } else {
        1280
    };
    x = conv1x1(&x, "Conv_1", last, "valid")?;
    x = bn(&x, "Conv_1_bn")?;
    x = relu6(&x, "out_relu")?;
    let style = HeadStyle {
        pool_names: None,
        dropout: 0.0,
        initializers: None,
    };
    let out = head(x, opts, &style)?;
    finish(input, out, &name, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_round_as_keras_does() {
        assert_eq!(make_divisible(32.0, 8), 32);
        assert_eq!(make_divisible(16.0 * 0.35, 8), 8);
        assert_eq!(make_divisible(1280.0 * 1.3, 8), 1664);
        assert_eq!(make_divisible(24.0 * 0.75, 8), 24);
    }
}
