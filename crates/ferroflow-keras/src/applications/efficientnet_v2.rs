//! EfficientNetV2 (Tan & Le, 2021) as `keras.applications` builds it: the stem, stages of
//! Fused-MBConv and MBConv blocks (squeeze-and-excite, stochastic depth as Dropout with a
//! per-sample noise shape), and the top, with Keras's layer names (`block2a_expand_conv`)
//! and initializers.

use super::{apply, finish, head, merge, AppOptions, HeadStyle};
use crate::models::{Input, KerasTensor, Model};
use ferroflow_core::{DType, Result};
use serde_json::{json, Value};

/// One stage of blocks.
struct Stage {
    kernel: usize,
    repeats: usize,
    input_filters: usize,
    output_filters: usize,
    expand_ratio: usize,
    se_ratio: f64,
    strides: usize,
    fused: bool,
}

/// The stages of EfficientNetV2-B0 (Keras's `DEFAULT_BLOCKS_ARGS["efficientnetv2-b0"]`).
const B0: [Stage; 6] = [
    Stage {
        kernel: 3,
        repeats: 1,
        input_filters: 32,
        output_filters: 16,
        expand_ratio: 1,
        se_ratio: 0.0,
        strides: 1,
        fused: true,
    },
    Stage {
        kernel: 3,
        repeats: 2,
        input_filters: 16,
        output_filters: 32,
        expand_ratio: 4,
        se_ratio: 0.0,
        strides: 2,
        fused: true,
    },
    Stage {
        kernel: 3,
        repeats: 2,
        input_filters: 32,
        output_filters: 48,
        expand_ratio: 4,
        se_ratio: 0.0,
        strides: 2,
        fused: true,
    },
    Stage {
        kernel: 3,
        repeats: 3,
        input_filters: 48,
        output_filters: 96,
        expand_ratio: 4,
        se_ratio: 0.25,
        strides: 2,
        fused: false,
    },
    Stage {
        kernel: 3,
        repeats: 5,
        input_filters: 96,
        output_filters: 112,
        expand_ratio: 6,
        se_ratio: 0.25,
        strides: 1,
        fused: false,
    },
    Stage {
        kernel: 3,
        repeats: 8,
        input_filters: 112,
        output_filters: 192,
        expand_ratio: 6,
        se_ratio: 0.25,
        strides: 2,
        fused: false,
    },
];

/// Network-wide settings of one EfficientNetV2 variant.
struct Variant {
    name: &'static str,
    width: f64,
    depth: f64,
    default_size: usize,
    dropout: f64,
    drop_connect: f64,
    stages: &'static [Stage],
}

const BN_MOMENTUM: f64 = 0.9;
const ACTIVATION: &str = "swish";

fn conv_init() -> Value {
    json!({"class_name": "VarianceScaling",
           "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}})
}

fn dense_init() -> Value {
    json!({"class_name": "VarianceScaling",
           "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}})
}

/// Filters scaled by the width coefficient, rounded to a multiple of 8 (at least 8).
fn round_filters(filters: usize, width: f64) -> usize {
    let divisor = 8.0;
    let f = filters as f64 * width;
    ((f + divisor / 2.0) / divisor).floor().max(1.0) as usize * 8
}

fn round_repeats(repeats: usize, depth: f64) -> usize {
    (repeats as f64 * depth).ceil() as usize
}

fn conv(
    x: &KerasTensor,
    name: &str,
    filters: usize,
    kernel: usize,
    strides: usize,
    bias: bool,
    activation: &str,
) -> Result<KerasTensor> {
    apply(
        "Conv2D",
        json!({"name": name, "filters": filters, "kernel_size": [kernel, kernel],
               "strides": [strides, strides], "padding": "same", "use_bias": bias,
               "activation": activation, "kernel_initializer": conv_init()}),
        x,
    )
}

fn bn(x: &KerasTensor, name: &str) -> Result<KerasTensor> {
    apply(
        "BatchNormalization",
        json!({"name": name, "momentum": BN_MOMENTUM}),
        x,
    )
}

fn act(x: &KerasTensor, name: &str) -> Result<KerasTensor> {
    apply(
        "Activation",
        json!({"name": name, "activation": ACTIVATION}),
        x,
    )
}

/// Squeeze-and-excite: pooled channel weights from two 1x1 convolutions scale `x`.
fn squeeze_excite(
    x: &KerasTensor,
    prefix: &str,
    input_filters: usize,
    filters: usize,
    ratio: f64,
) -> Result<KerasTensor> {
    let reduced = ((input_filters as f64 * ratio) as usize).max(1);
    let se = apply(
        "GlobalAveragePooling2D",
        json!({"name": format!("{prefix}se_squeeze")}),
        x,
    )?;
    let se = apply(
        "Reshape",
        json!({"name": format!("{prefix}se_reshape"), "target_shape": [1, 1, filters]}),
        &se,
    )?;
    let se = conv(
        &se,
        &format!("{prefix}se_reduce"),
        reduced,
        1,
        1,
        true,
        ACTIVATION,
    )?;
    let se = conv(
        &se,
        &format!("{prefix}se_expand"),
        filters,
        1,
        1,
        true,
        "sigmoid",
    )?;
    merge("Multiply", &format!("{prefix}se_excite"), &[x.clone(), se])
}

/// The residual of a block that keeps its shape: stochastic depth, then the sum.
fn residual(
    x: KerasTensor,
    input: &KerasTensor,
    prefix: &str,
    drop_rate: f64,
) -> Result<KerasTensor> {
    let x = if drop_rate > 0.0 {
        apply(
            "Dropout",
            json!({"name": format!("{prefix}drop"), "rate": drop_rate, "noise_shape": [null, 1, 1, 1]}),
            &x,
        )?
    } else {
        x
    };
    merge("Add", &format!("{prefix}add"), &[x, input.clone()])
}

struct BlockArgs<'a> {
    prefix: &'a str,
    kernel: usize,
    input_filters: usize,
    output_filters: usize,
    expand_ratio: usize,
    se_ratio: f64,
    strides: usize,
    drop_rate: f64,
}

/// The expansion step (`expand_conv`, `expand_bn`, `expand_activation`) when the block
/// expands: a 1x1 convolution in MBConv, the block's full convolution in Fused-MBConv.
fn expand(x: &KerasTensor, a: &BlockArgs, kernel: usize, strides: usize) -> Result<KerasTensor> {
    if a.expand_ratio == 1 {
        return Ok(x.clone());
    }
    let p = a.prefix;
    let filters = a.input_filters * a.expand_ratio;
    let x = conv(
        x,
        &format!("{p}expand_conv"),
        filters,
        kernel,
        strides,
        false,
        "linear",
    )?;
    let x = bn(&x, &format!("{p}expand_bn"))?;
    act(&x, &format!("{p}expand_activation"))
}

/// Squeeze-and-excite when the block has it, the projection (`project_conv`,
/// `project_bn`, an activation when asked), and the residual when the shape is kept.
fn finish_block(
    x: KerasTensor,
    input: &KerasTensor,
    a: &BlockArgs,
    kernel: usize,
    strides: usize,
    activate: bool,
) -> Result<KerasTensor> {
    let p = a.prefix;
    let mut x = x;
    if a.se_ratio > 0.0 && a.se_ratio <= 1.0 {
        x = squeeze_excite(
            &x,
            p,
            a.input_filters,
            a.input_filters * a.expand_ratio,
            a.se_ratio,
        )?;
    }
    x = conv(
        &x,
        &format!("{p}project_conv"),
        a.output_filters,
        kernel,
        strides,
        false,
        "linear",
    )?;
    x = bn(&x, &format!("{p}project_bn"))?;
    if activate {
        x = act(&x, &format!("{p}project_activation"))?;
    }
    if a.strides == 1 && a.input_filters == a.output_filters {
        x = residual(x, input, p, a.drop_rate)?;
    }
    Ok(x)
}

/// MBConv: 1x1 expansion, depthwise convolution, squeeze-and-excite, 1x1 projection.
fn mb_conv(input: &KerasTensor, a: &BlockArgs) -> Result<KerasTensor> {
    let p = a.prefix;
    let mut x = expand(input, a, 1, 1)?;
    x = apply(
        "DepthwiseConv2D",
        json!({"name": format!("{p}dwconv2"), "kernel_size": [a.kernel, a.kernel],
               "strides": [a.strides, a.strides], "padding": "same", "use_bias": false,
               "depthwise_initializer": conv_init()}),
        &x,
    )?;
    x = bn(&x, &format!("{p}bn"))?;
    x = act(&x, &format!("{p}activation"))?;
    finish_block(x, input, a, 1, 1, false)
}

/// Fused-MBConv: one full convolution in place of the expansion and depthwise steps
/// (without expansion, the projection itself is that convolution, activated).
fn fused_mb_conv(input: &KerasTensor, a: &BlockArgs) -> Result<KerasTensor> {
    let x = expand(input, a, a.kernel, a.strides)?;
    if a.expand_ratio != 1 {
        finish_block(x, input, a, 1, 1, false)
    } else {
        finish_block(x, input, a, a.kernel, a.strides, true)
    }
}

fn build(v: &Variant, opts: &AppOptions) -> Result<Model> {
    let shape = opts.input_shape(v.name, v.default_size, 32)?;
    let input = Input::with(shape.to_vec(), DType::F32, Some("input_layer"));
    let mut x = input.clone();
    if opts.include_preprocessing {
        // The B variants keep EfficientNet (V1)'s ImageNet scaling for RGB inputs.
        x = apply(
            "Rescaling",
            json!({"name": "rescaling", "scale": 1.0 / 255.0}),
            &x,
        )?;
        x = apply(
            "Normalization",
            json!({"name": "normalization", "axis": -1, "mean": [0.485, 0.456, 0.406],
                   "variance": [0.229f64 * 0.229, 0.224f64 * 0.224, 0.225f64 * 0.225]}),
            &x,
        )?;
    }
    let stem = round_filters(v.stages[0].input_filters, v.width);
    x = conv(&x, "stem_conv", stem, 3, 2, false, "linear")?;
    x = bn(&x, "stem_bn")?;
    x = act(&x, "stem_activation")?;
    let total: usize = v.stages.iter().map(|s| s.repeats).sum();
    let mut b = 0usize;
    for (i, s) in v.stages.iter().enumerate() {
        let (fin, fout) = (
            round_filters(s.input_filters, v.width),
            round_filters(s.output_filters, v.width),
        );
        for j in 0..round_repeats(s.repeats, v.depth) {
            let prefix = format!("block{}{}_", i + 1, (b'a' + j as u8) as char);
            let args = BlockArgs {
                prefix: &prefix,
                kernel: s.kernel,
                input_filters: if j == 0 { fin } else { fout },
                output_filters: fout,
                expand_ratio: s.expand_ratio,
                se_ratio: s.se_ratio,
                strides: if j == 0 { s.strides } else { 1 },
                drop_rate: v.drop_connect * b as f64 / total as f64,
            };
            x = if s.fused {
                fused_mb_conv(&x, &args)?
            } else {
                mb_conv(&x, &args)?
            };
            b += 1;
        }
    }
    x = conv(
        &x,
        "top_conv",
        round_filters(1280, v.width),
        1,
        1,
        false,
        "linear",
    )?;
    x = bn(&x, "top_bn")?;
    x = act(&x, "top_activation")?;
    let style = HeadStyle {
        pool_names: Some(("avg_pool", "max_pool")),
        dropout: v.dropout,
        initializers: Some((
            dense_init(),
            json!({"class_name": "Constant", "config": {"value": 0.0}}),
        )),
    };
    let out = head(x, opts, &style)?;
    finish(input, out, v.name, opts)
}

/// `keras.applications.EfficientNetV2B0`: 224x224 RGB inputs with values in 0–255 (the
/// model scales them itself unless `include_preprocessing` is off).
pub fn efficientnet_v2_b0(opts: &AppOptions) -> Result<Model> {
    build(
        &Variant {
            name: "efficientnetv2-b0",
            width: 1.0,
            depth: 1.0,
            default_size: 224,
            dropout: 0.2,
            drop_connect: 0.2,
            stages: &B0,
        },
        opts,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_round_as_keras_does() {
        assert_eq!(round_filters(32, 1.0), 32);
        assert_eq!(round_filters(1280, 1.1), 1408);
        assert_eq!(round_filters(16, 1.1), 16);
        assert_eq!(round_filters(3, 1.0), 8);
        assert_eq!(round_repeats(3, 1.2), 4);
    }
}
