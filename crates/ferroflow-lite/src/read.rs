//! Parses and validates `.tflite` bytes into a [`LiteModel`].
//!
//! Everything a file claims is checked before it is used: the flatbuffer itself (by the
//! flatbuffers verifier), the schema version, tensor and buffer indices, buffer sizes
//! against shapes and types, quantisation parameters, operator codes and versions. A file
//! that fails any check is an error naming what is wrong; nothing panics on bad bytes.

use crate::ir::{
    Activation, BinaryKind, CompareKind, ElementType, LiteModel, LiteOp, LiteTensor, LogicalKind,
    Op, Padding, Quantization, ReduceKind, UnaryKind, Window,
};
use crate::schema as fb;
use ferroflow_core::{Error, Result};

/// Schema versions this reader accepts.
const SCHEMA_VERSION: u32 = 3;

fn bad(what: impl Into<String>) -> Error {
    Error::Format {
        path: "tflite model".into(),
        msg: what.into(),
    }
}

/// The root of `.tflite` bytes, after the flatbuffers verifier has checked every offset
/// and the file identifier and schema version are right.
pub(crate) fn verified_root(bytes: &[u8]) -> Result<fb::Model<'_>> {
    let opts = flatbuffers::VerifierOptions {
        max_tables: 1 << 24,
        max_apparent_size: 1 << 31,
        ..Default::default()
    };
    if bytes.len() < 8 {
        return Err(bad(format!(
            "{} bytes is too short for a TFLite file",
            bytes.len()
        )));
    }
    if !fb::model_buffer_has_identifier(bytes) {
        return Err(bad(
            "missing the TFL3 file identifier (not a TFLite flatbuffer)",
        ));
    }
    let model = fb::root_as_model_with_opts(&opts, bytes)
        .map_err(|e| bad(format!("invalid flatbuffer: {e}")))?;
    if model.version() != SCHEMA_VERSION {
        return Err(bad(format!(
            "schema version {} (ferroflow reads version {SCHEMA_VERSION})",
            model.version()
        )));
    }
    Ok(model)
}

/// An operator code: the builtin operator, its version and a custom op's name.
pub(crate) type OpCode = (fb::BuiltinOperator, i32, Option<String>);

/// The model's operator codes, indexed as the operators' `opcode_index` (the larger of
/// the deprecated and the current builtin code field, as the schema says).
pub(crate) fn operator_codes(model: &fb::Model<'_>) -> Vec<OpCode> {
    model
        .operator_codes()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let code = c.builtin_code().0.max(c.deprecated_builtin_code() as i32);
                    (
                        fb::BuiltinOperator(code),
                        c.version(),
                        c.custom_code().map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Most subgraphs a file may have.
const MAX_SUBGRAPHS: usize = 1024;

/// Parses `.tflite` bytes: the main subgraph, and the others (control-flow bodies).
pub fn from_bytes(bytes: &[u8]) -> Result<LiteModel> {
    let model = verified_root(bytes)?;
    let subgraphs = model.subgraphs().ok_or_else(|| bad("no subgraphs"))?;
    if subgraphs.is_empty() {
        return Err(bad("no subgraphs"));
    }
    if subgraphs.len() > MAX_SUBGRAPHS {
        return Err(bad(format!(
            "{} subgraphs (ferroflow reads at most {MAX_SUBGRAPHS})",
            subgraphs.len()
        )));
    }
    let codes = operator_codes(&model);
    let buffers = model.buffers();
    let mut graphs = Vec::with_capacity(subgraphs.len());
    for (g, sg) in subgraphs.iter().enumerate() {
        let parsed = subgraph(&sg, buffers, &codes, subgraphs.len()).map_err(|e| match e {
            Error::Format { msg, .. } if g > 0 => bad(format!("subgraph {g}: {msg}")),
            other => other,
        })?;
        graphs.push(parsed);
    }
    let mut main = graphs.remove(0);
    main.subgraphs = graphs;
    main.description = model.description().unwrap_or_default().to_string();
    Ok(main)
}

type Buffers<'a> = Option<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<fb::Buffer<'a>>>>;

/// One subgraph (its `subgraphs` empty); `n_graphs`: how many the file has.
fn subgraph(
    sg: &fb::SubGraph<'_>,
    buffers: Buffers<'_>,
    codes: &[OpCode],
    n_graphs: usize,
) -> Result<LiteModel> {
    let n_buffers = buffers.map_or(0, |b| b.len());
    let mut tensors = Vec::new();
    if let Some(ts) = sg.tensors() {
        for (i, t) in ts.iter().enumerate() {
            tensors.push(tensor(i, &t, buffers, n_buffers)?);
        }
    }
    let n = tensors.len();
    let index = |v: i32, what: &str| -> Result<usize> {
        if v >= 0 && (v as usize) < n {
            Ok(v as usize)
        } else {
            Err(bad(format!(
                "{what} refers to tensor {v}, but there are {n}"
            )))
        }
    };

    let mut ops = Vec::new();
    if let Some(list) = sg.operators() {
        for (k, o) in list.iter().enumerate() {
            let (code, version, custom) = codes
                .get(o.opcode_index() as usize)
                .cloned()
                .ok_or_else(|| {
                    bad(format!(
                        "operator {k} uses opcode {} of {}",
                        o.opcode_index(),
                        codes.len()
                    ))
                })?;
            let op = operator(code, version, custom.as_deref(), &o).map_err(|e| match e {
                Error::Format { msg, .. } => bad(format!("operator {k}: {msg}")),
                other => other,
            })?;
            if let Op::While { cond, body } = op {
                if cond == 0 || body == 0 || cond >= n_graphs || body >= n_graphs {
                    return Err(bad(format!(
                        "operator {k}: WHILE names subgraphs {cond} and {body} of {n_graphs} (the main one, 0, cannot be a body)"
                    )));
                }
            }
            let inputs: Vec<i32> = o.inputs().map(|v| v.iter().collect()).unwrap_or_default();
            let outputs: Vec<i32> = o.outputs().map(|v| v.iter().collect()).unwrap_or_default();
            for &i in &inputs {
                if i != -1 {
                    index(i, &format!("operator {k} input"))?;
                }
            }
            if outputs.is_empty() {
                return Err(bad(format!("operator {k} has no outputs")));
            }
            for &i in &outputs {
                index(i, &format!("operator {k} output"))?;
            }
            ops.push(LiteOp {
                op,
                inputs,
                outputs,
            });
        }
    }
    let list = |v: Option<flatbuffers::Vector<'_, i32>>, what: &str| -> Result<Vec<usize>> {
        v.map(|v| v.iter().map(|i| index(i, what)).collect())
            .unwrap_or(Ok(Vec::new()))
    };
    let inputs = list(sg.inputs(), "subgraph input")?;
    let outputs = list(sg.outputs(), "subgraph output")?;
    if outputs.is_empty() {
        return Err(bad("the subgraph has no outputs"));
    }
    Ok(LiteModel {
        tensors,
        ops,
        inputs,
        outputs,
        ..Default::default()
    })
}

/// The element type of a tensor type ferroflow reads; an error for the others.
pub(crate) fn element_type(t: fb::TensorType) -> Result<ElementType> {
    Ok(match t {
        fb::TensorType::FLOAT32 => ElementType::F32,
        fb::TensorType::INT32 => ElementType::I32,
        fb::TensorType::INT64 => ElementType::I64,
        fb::TensorType::INT8 => ElementType::I8,
        fb::TensorType::UINT8 => ElementType::U8,
        fb::TensorType::INT16 => ElementType::I16,
        fb::TensorType::BOOL => ElementType::Bool,
        fb::TensorType::FLOAT16 => ElementType::F16,
        other => {
            return Err(bad(format!(
                "tensor type {} is not supported",
                other.variant_name().unwrap_or("unknown")
            )))
        }
    })
}

fn tensor(
    i: usize,
    t: &fb::Tensor<'_>,
    buffers: Buffers<'_>,
    n_buffers: usize,
) -> Result<LiteTensor> {
    let name = t.name().unwrap_or_default().to_string();
    let what = |msg: String| bad(format!("tensor {i} '{name}': {msg}"));
    let shape: Vec<i32> = t.shape().map(|s| s.iter().collect()).unwrap_or_default();
    if shape.iter().any(|&d| d < 0) {
        return Err(what(format!("negative dimension in shape {shape:?}")));
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .ok_or_else(|| what(format!("shape {shape:?} overflows")))?;
    let dtype = element_type(t.type_()).map_err(|e| match e {
        Error::Format { msg, .. } => what(msg),
        other => other,
    })?;
    let b = t.buffer() as usize;
    if b >= n_buffers.max(1) && b != 0 {
        return Err(what(format!("buffer {b} of {n_buffers}")));
    }
    let mut data = None;
    if b != 0 {
        let buf = buffers.expect("n_buffers > b").get(b);
        if buf.offset() > 1 || buf.size() > 0 {
            return Err(what(
                "buffers stored outside the flatbuffer (>2 GB models) are not supported".into(),
            ));
        }
        if let (Some(sp), Some(d)) = (t.sparsity(), buf.data()) {
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            data = Some(
                crate::sparse::densify(&sp, &dims, dtype.size(), d.bytes())
                    .map_err(|e| what(e.to_string()))?,
            );
        } else if let Some(d) = buf.data() {
            if !d.is_empty() {
                let want = numel
                    .checked_mul(dtype.size())
                    .ok_or_else(|| what("size overflows".into()))?;
                if d.len() != want {
                    return Err(what(format!(
                        "buffer {b} holds {} bytes, but shape {shape:?} of {} needs {want}",
                        d.len(),
                        dtype.name()
                    )));
                }
                data = Some(d.bytes().to_vec());
            }
        }
    }
    let signature: Vec<i32> = t
        .shape_signature()
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    if !signature.is_empty() && signature.len() != shape.len() {
        return Err(what(format!(
            "shape signature {signature:?} does not match shape {shape:?}"
        )));
    }
    let quant = match t.quantization() {
        Some(q) => quantization(&q, &shape).map_err(|e| what(e.to_string()))?,
        None => None,
    };
    Ok(LiteTensor {
        name,
        shape,
        signature,
        dtype,
        data,
        quant,
    })
}

fn quantization(q: &fb::QuantizationParameters<'_>, shape: &[i32]) -> Result<Option<Quantization>> {
    let scale: Vec<f32> = q.scale().map(|s| s.iter().collect()).unwrap_or_default();
    if scale.is_empty() {
        return Ok(None);
    }
    let zero_point: Vec<i64> = q
        .zero_point()
        .map(|s| s.iter().collect())
        .unwrap_or_else(|| vec![0; scale.len()]);
    if zero_point.len() != scale.len() {
        return Err(bad(format!(
            "{} scales but {} zero points",
            scale.len(),
            zero_point.len()
        )));
    }
    if scale.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(bad("quantisation scales must be positive and finite"));
    }
    let axis = q.quantized_dimension();
    if scale.len() > 1 {
        if axis < 0 || axis as usize >= shape.len() {
            return Err(bad(format!(
                "quantized_dimension {axis} is outside shape {shape:?}"
            )));
        }
        if shape[axis as usize] as usize != scale.len() {
            return Err(bad(format!(
                "{} per-channel scales for dimension {axis} of size {}",
                scale.len(),
                shape[axis as usize]
            )));
        }
    }
    Ok(Some(Quantization {
        scale,
        zero_point,
        axis: axis.max(0) as usize,
    }))
}

fn activation(a: fb::ActivationFunctionType) -> Result<Activation> {
    Ok(match a {
        fb::ActivationFunctionType::NONE => Activation::None,
        fb::ActivationFunctionType::RELU => Activation::Relu,
        fb::ActivationFunctionType::RELU_N1_TO_1 => Activation::ReluN1To1,
        fb::ActivationFunctionType::RELU6 => Activation::Relu6,
        fb::ActivationFunctionType::TANH => Activation::Tanh,
        other => {
            return Err(bad(format!(
                "fused activation {} is not supported",
                other.variant_name().unwrap_or("unknown")
            )))
        }
    })
}

fn padding(p: fb::Padding) -> Result<Padding> {
    Ok(match p {
        fb::Padding::SAME => Padding::Same,
        fb::Padding::VALID => Padding::Valid,
        _ => return Err(bad("unknown padding")),
    })
}

fn positive(v: i32, what: &str) -> Result<usize> {
    if v >= 1 {
        Ok(v as usize)
    } else {
        Err(bad(format!("{what} must be >= 1, got {v}")))
    }
}

/// A convolution window from the schema's fields (strides and dilations must be >= 1).
fn window(p: fb::Padding, stride: (i32, i32), dilation: (i32, i32)) -> Result<Window> {
    Ok(Window {
        padding: padding(p)?,
        stride: (positive(stride.0, "stride")?, positive(stride.1, "stride")?),
        dilation: (
            positive(dilation.0, "dilation")?,
            positive(dilation.1, "dilation")?,
        ),
    })
}

/// The newest version of each builtin this interpreter implements.
fn max_version(code: fb::BuiltinOperator) -> i32 {
    use fb::BuiltinOperator as B;
    match code {
        B::FULLY_CONNECTED => 12,
        B::CONV_2D => 8,
        B::DEPTHWISE_CONV_2D => 7,
        B::ADD | B::SUB | B::MUL => 5,
        B::SOFTMAX | B::CONCATENATION | B::MEAN | B::GATHER | B::PAD => 4,
        B::TRANSPOSE_CONV | B::RESIZE_BILINEAR | B::RESIZE_NEAREST_NEIGHBOR => 4,
        _ => 3,
    }
}

/// The operator `o` (with opcode `code` at `version`) in ferroflow's form, or an error
/// saying why ferroflow cannot run it.
pub(crate) fn operator(
    code: fb::BuiltinOperator,
    version: i32,
    custom: Option<&str>,
    o: &fb::Operator<'_>,
) -> Result<Op> {
    use fb::BuiltinOperator as B;
    let name = code.variant_name().unwrap_or("unknown");
    if let Some(kind) = UnaryKind::from_builtin(code) {
        return Ok(Op::Unary(kind));
    }
    if code == B::CUSTOM {
        if o.large_custom_options_size() > 0 {
            return Err(bad(
                "custom options stored outside the flatbuffer are not supported",
            ));
        }
        return match custom {
            Some(name) if !name.is_empty() => Ok(Op::Custom {
                name: name.to_string(),
                options: o
                    .custom_options()
                    .map(|v| v.bytes().to_vec())
                    .unwrap_or_default(),
            }),
            _ => Err(bad("a custom op without a name")),
        };
    }
    if version > max_version(code) {
        return Err(bad(format!(
            "{name} version {version} is newer than ferroflow supports ({})",
            max_version(code)
        )));
    }
    let missing = || bad(format!("{name} has no options"));
    let binary = |kind, act| Ok(Op::Binary { kind, act });
    Ok(match code {
        B::FULLY_CONNECTED => {
            let opt = o.builtin_options_as_fully_connected_options();
            if let Some(opt) = &opt {
                if opt.weights_format() != fb::FullyConnectedOptionsWeightsFormat::DEFAULT {
                    return Err(bad(
                        "FULLY_CONNECTED with shuffled weights is not supported",
                    ));
                }
            }
            Op::FullyConnected {
                act: activation(opt.map_or(fb::ActivationFunctionType::NONE, |o| {
                    o.fused_activation_function()
                }))?,
                keep_num_dims: opt.is_some_and(|o| o.keep_num_dims()),
                asymmetric_inputs: opt.is_some_and(|o| o.asymmetric_quantize_inputs()),
            }
        }
        B::CONV_2D => {
            let opt = o.builtin_options_as_conv_2_doptions().ok_or_else(missing)?;
            Op::Conv2d {
                window: window(
                    opt.padding(),
                    (opt.stride_h(), opt.stride_w()),
                    (opt.dilation_h_factor(), opt.dilation_w_factor()),
                )?,
                act: activation(opt.fused_activation_function())?,
            }
        }
        B::DEPTHWISE_CONV_2D => {
            let opt = o
                .builtin_options_as_depthwise_conv_2_doptions()
                .ok_or_else(missing)?;
            Op::DepthwiseConv2d {
                window: window(
                    opt.padding(),
                    (opt.stride_h(), opt.stride_w()),
                    (opt.dilation_h_factor(), opt.dilation_w_factor()),
                )?,
                multiplier: opt.depth_multiplier().max(0) as usize,
                act: activation(opt.fused_activation_function())?,
            }
        }
        B::MAX_POOL_2D | B::AVERAGE_POOL_2D => {
            let opt = o.builtin_options_as_pool_2_doptions().ok_or_else(missing)?;
            Op::Pool2d {
                max: code == B::MAX_POOL_2D,
                window: window(opt.padding(), (opt.stride_h(), opt.stride_w()), (1, 1))?,
                filter: (
                    positive(opt.filter_height(), "filter height")?,
                    positive(opt.filter_width(), "filter width")?,
                ),
                act: activation(opt.fused_activation_function())?,
            }
        }
        B::RESHAPE => Op::Reshape {
            new_shape: o
                .builtin_options_as_reshape_options()
                .and_then(|r| r.new_shape())
                .map(|v| v.iter().collect())
                .unwrap_or_default(),
        },
        B::SOFTMAX => Op::Softmax {
            beta: o
                .builtin_options_as_softmax_options()
                .map_or(1.0, |s| s.beta()),
        },
        B::CONCATENATION => {
            let opt = o
                .builtin_options_as_concatenation_options()
                .ok_or_else(missing)?;
            Op::Concatenation {
                axis: opt.axis(),
                act: activation(opt.fused_activation_function())?,
            }
        }
        c if BinaryKind::from_builtin(c).is_some() => {
            // ADD, SUB, MUL and DIV may fuse an activation; the others have no options.
            let fused = match code {
                B::ADD => o
                    .builtin_options_as_add_options()
                    .map(|x| x.fused_activation_function()),
                B::SUB => o
                    .builtin_options_as_sub_options()
                    .map(|x| x.fused_activation_function()),
                B::MUL => o
                    .builtin_options_as_mul_options()
                    .map(|x| x.fused_activation_function()),
                B::DIV => o
                    .builtin_options_as_div_options()
                    .map(|x| x.fused_activation_function()),
                _ => None,
            };
            let kind = BinaryKind::from_builtin(c).ok_or_else(missing)?;
            binary(
                kind,
                activation(fused.unwrap_or(fb::ActivationFunctionType::NONE))?,
            )?
        }
        B::MEAN | B::SUM | B::REDUCE_MAX | B::REDUCE_MIN | B::REDUCE_PROD => Op::Reduce {
            kind: match code {
                B::MEAN => ReduceKind::Mean,
                B::SUM => ReduceKind::Sum,
                B::REDUCE_MAX => ReduceKind::Max,
                B::REDUCE_MIN => ReduceKind::Min,
                _ => ReduceKind::Prod,
            },
            keep_dims: o
                .builtin_options_as_reducer_options()
                .is_some_and(|r| r.keep_dims()),
        },
        B::GATHER => {
            let opt = o.builtin_options_as_gather_options();
            if opt.is_some_and(|g| g.batch_dims() != 0) {
                return Err(bad("GATHER with batch_dims is not supported"));
            }
            let axis = opt.map_or(0, |g| g.axis());
            if axis < 0 {
                return Err(bad("GATHER with a negative axis is not supported"));
            }
            Op::Gather {
                axis: axis as usize,
            }
        }
        B::PAD => Op::Pad,
        B::TRANSPOSE => Op::Transpose,
        B::QUANTIZE => Op::Quantize,
        B::DEQUANTIZE => Op::Dequantize,
        B::CAST => Op::Cast,
        B::LEAKY_RELU => Op::LeakyRelu {
            alpha: o
                .builtin_options_as_leaky_relu_options()
                .map_or(0.2, |l| l.alpha()),
        },
        B::GELU => Op::Gelu {
            approximate: o
                .builtin_options_as_gelu_options()
                .is_some_and(|g| g.approximate()),
        },
        B::SHAPE => Op::Shape,
        B::STRIDED_SLICE => {
            let opt = o.builtin_options_as_strided_slice_options();
            Op::StridedSlice {
                begin_mask: opt.map_or(0, |x| x.begin_mask()),
                end_mask: opt.map_or(0, |x| x.end_mask()),
                ellipsis_mask: opt.map_or(0, |x| x.ellipsis_mask()),
                new_axis_mask: opt.map_or(0, |x| x.new_axis_mask()),
                shrink_axis_mask: opt.map_or(0, |x| x.shrink_axis_mask()),
                offset: opt.is_some_and(|x| x.offset()),
            }
        }
        B::PACK => Op::Pack {
            axis: o.builtin_options_as_pack_options().map_or(0, |p| p.axis()),
        },
        B::EXPAND_DIMS => Op::ExpandDims,
        B::SQUEEZE => Op::Squeeze {
            dims: o
                .builtin_options_as_squeeze_options()
                .and_then(|q| q.squeeze_dims())
                .map(|v| v.iter().collect())
                .unwrap_or_default(),
        },
        B::LESS => Op::Compare(CompareKind::Less),
        B::LESS_EQUAL => Op::Compare(CompareKind::LessEqual),
        B::GREATER => Op::Compare(CompareKind::Greater),
        B::GREATER_EQUAL => Op::Compare(CompareKind::GreaterEqual),
        B::EQUAL => Op::Compare(CompareKind::Equal),
        B::NOT_EQUAL => Op::Compare(CompareKind::NotEqual),
        B::SELECT | B::SELECT_V2 => Op::Select,
        B::BATCH_MATMUL => {
            let opt = o.builtin_options_as_batch_mat_mul_options();
            Op::BatchMatMul {
                adj_x: opt.is_some_and(|b| b.adj_x()),
                adj_y: opt.is_some_and(|b| b.adj_y()),
            }
        }
        B::PRELU => Op::Prelu,
        // Sparse constants are decoded when the file is read: DENSIFY passes them on.
        B::DENSIFY => Op::Densify,
        B::SPACE_TO_BATCH_ND => Op::SpaceToBatchNd,
        B::BATCH_TO_SPACE_ND => Op::BatchToSpaceNd,
        B::RESIZE_BILINEAR => {
            let opt = o.builtin_options_as_resize_bilinear_options();
            Op::Resize {
                bilinear: true,
                align_corners: opt.is_some_and(|r| r.align_corners()),
                half_pixel_centers: opt.is_some_and(|r| r.half_pixel_centers()),
            }
        }
        B::RESIZE_NEAREST_NEIGHBOR => {
            let opt = o.builtin_options_as_resize_nearest_neighbor_options();
            Op::Resize {
                bilinear: false,
                align_corners: opt.is_some_and(|r| r.align_corners()),
                half_pixel_centers: opt.is_some_and(|r| r.half_pixel_centers()),
            }
        }
        B::DEPTH_TO_SPACE => Op::DepthToSpace {
            block: positive(
                o.builtin_options_as_depth_to_space_options()
                    .ok_or_else(missing)?
                    .block_size(),
                "block size",
            )?,
        },
        B::SPACE_TO_DEPTH => Op::SpaceToDepth {
            block: positive(
                o.builtin_options_as_space_to_depth_options()
                    .ok_or_else(missing)?
                    .block_size(),
                "block size",
            )?,
        },
        B::TRANSPOSE_CONV => {
            let opt = o
                .builtin_options_as_transpose_conv_options()
                .ok_or_else(missing)?;
            Op::TransposeConv {
                window: window(opt.padding(), (opt.stride_h(), opt.stride_w()), (1, 1))?,
                act: activation(opt.fused_activation_function())?,
            }
        }
        B::SPLIT => Op::Split {
            num: positive(
                o.builtin_options_as_split_options()
                    .ok_or_else(missing)?
                    .num_splits(),
                "num_splits",
            )?,
            sized: false,
        },
        B::SPLIT_V => Op::Split {
            num: positive(
                o.builtin_options_as_split_voptions()
                    .ok_or_else(missing)?
                    .num_splits(),
                "num_splits",
            )?,
            sized: true,
        },
        B::SLICE => Op::Slice,
        B::TILE => Op::Tile,
        B::UNPACK => {
            let opt = o.builtin_options_as_unpack_options().ok_or_else(missing)?;
            Op::Unpack {
                num: positive(opt.num(), "num")?,
                axis: opt.axis(),
            }
        }
        B::GATHER_ND => Op::GatherNd,
        B::ARG_MAX | B::ARG_MIN => Op::ArgReduce {
            max: code == B::ARG_MAX,
        },
        B::L2_NORMALIZATION => Op::L2Normalization {
            act: activation(
                o.builtin_options_as_l2_norm_options()
                    .map_or(fb::ActivationFunctionType::NONE, |l| {
                        l.fused_activation_function()
                    }),
            )?,
        },
        B::LOCAL_RESPONSE_NORMALIZATION => {
            let opt = o
                .builtin_options_as_local_response_normalization_options()
                .ok_or_else(missing)?;
            if opt.radius() < 0 {
                return Err(bad(format!("radius {} is negative", opt.radius())));
            }
            Op::LocalResponseNorm {
                radius: opt.radius() as usize,
                bias: opt.bias(),
                alpha: opt.alpha(),
                beta: opt.beta(),
            }
        }
        B::MIRROR_PAD => Op::MirrorPad {
            symmetric: o
                .builtin_options_as_mirror_pad_options()
                .is_some_and(|m| m.mode() == fb::MirrorPadMode::SYMMETRIC),
        },
        B::WHILE => {
            let opt = o.builtin_options_as_while_options().ok_or_else(missing)?;
            let index = |v: i32| usize::try_from(v).map_err(|_| bad(format!("subgraph {v}")));
            Op::While {
                cond: index(opt.cond_subgraph_index())?,
                body: index(opt.body_subgraph_index())?,
            }
        }
        B::LOGICAL_AND => Op::Logical(LogicalKind::And),
        B::LOGICAL_OR => Op::Logical(LogicalKind::Or),
        B::LOGICAL_NOT => Op::Logical(LogicalKind::Not),
        B::REVERSE_V2 => Op::Reverse,
        B::CUMSUM => {
            let opt = o.builtin_options_as_cumsum_options();
            Op::Cumsum {
                exclusive: opt.is_some_and(|c| c.exclusive()),
                reverse: opt.is_some_and(|c| c.reverse()),
            }
        }
        _ => return Err(bad(format!("builtin op {name} is not supported"))),
    })
}
