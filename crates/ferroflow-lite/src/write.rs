//! Serialises a [`LiteModel`] into the TFLite flatbuffer format (schema version 3).

use crate::ir::{
    Activation, BinaryKind, ElementType, LiteModel, LiteTensor, Op, Padding, ReduceKind, UnaryKind,
};
use crate::ir::{CompareKind, LogicalKind};
use crate::schema as fb;
use flatbuffers::{FlatBufferBuilder, PushAlignment, UnionWIPOffset, WIPOffset};

/// The schema version this writer produces.
pub const SCHEMA_VERSION: u32 = 3;

/// A byte that flatbuffers aligns to 16 when it starts a vector: constant buffers are
/// 16-byte aligned as the schema asks (`force_align: 16`), so runtimes can map them.
struct AlignedByte(u8);

impl flatbuffers::Push for AlignedByte {
    type Output = u8;

    unsafe fn push(&self, dst: &mut [u8], _written_len: usize) {
        dst[0] = self.0;
    }

    fn size() -> usize {
        1
    }

    fn alignment() -> PushAlignment {
        PushAlignment::new(16)
    }
}

/// Serialises `model` (and its further subgraphs) into `.tflite` bytes.
pub fn to_bytes(model: &LiteModel) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(1 << 16);
    // Buffer 0 is the empty sentinel; every constant tensor gets its own buffer.
    let mut buffers = vec![fb::Buffer::create(&mut fbb, &fb::BufferArgs::default())];
    // Operator codes in order of first use, with the version each use needs.
    let mut codes: Vec<(fb::BuiltinOperator, i32, Option<&str>)> = Vec::new();
    let graphs: Vec<&LiteModel> = std::iter::once(model).chain(&model.subgraphs).collect();
    let subgraphs: Vec<_> = graphs
        .iter()
        .enumerate()
        .map(|(g, graph)| {
            let name = if g == 0 {
                "main".to_string()
            } else {
                format!("subgraph_{g}")
            };
            subgraph(&mut fbb, graph, &name, &mut buffers, &mut codes)
        })
        .collect();
    let codes: Vec<_> = codes
        .iter()
        .map(|&(code, version, custom)| {
            let custom_code = custom.map(|n| fbb.create_string(n));
            fb::OperatorCode::create(
                &mut fbb,
                &fb::OperatorCodeArgs {
                    deprecated_builtin_code: code.0.min(127) as i8,
                    custom_code,
                    version,
                    builtin_code: code,
                },
            )
        })
        .collect();

    let signature = signature(&mut fbb, model);
    let codes = fbb.create_vector(&codes);
    let subgraphs = fbb.create_vector(&subgraphs);
    let description = fbb.create_string(&model.description);
    let buffers = fbb.create_vector(&buffers);
    let signatures = fbb.create_vector(&[signature]);
    let root = fb::Model::create(
        &mut fbb,
        &fb::ModelArgs {
            version: SCHEMA_VERSION,
            operator_codes: Some(codes),
            subgraphs: Some(subgraphs),
            description: Some(description),
            buffers: Some(buffers),
            signature_defs: Some(signatures),
            ..Default::default()
        },
    );
    fb::finish_model_buffer(&mut fbb, root);
    fbb.finished_data().to_vec()
}

/// One subgraph: its constants appended to `buffers`, its operator codes to `codes`.
fn subgraph<'a, 'm>(
    fbb: &mut FlatBufferBuilder<'a>,
    model: &'m LiteModel,
    name: &str,
    buffers: &mut Vec<WIPOffset<fb::Buffer<'a>>>,
    codes: &mut Vec<(fb::BuiltinOperator, i32, Option<&'m str>)>,
) -> WIPOffset<fb::SubGraph<'a>> {
    let mut buffer_of = Vec::with_capacity(model.tensors.len());
    for t in &model.tensors {
        match &t.data {
            Some(bytes) => {
                let aligned: Vec<AlignedByte> = bytes.iter().map(|&b| AlignedByte(b)).collect();
                let data = fbb.create_vector(&aligned);
                let buf = fb::Buffer::create(
                    fbb,
                    &fb::BufferArgs {
                        data: Some(data),
                        ..Default::default()
                    },
                );
                buffer_of.push(buffers.len() as u32);
                buffers.push(buf);
            }
            None => buffer_of.push(0),
        }
    }
    let tensors: Vec<_> = model
        .tensors
        .iter()
        .zip(&buffer_of)
        .map(|(t, &b)| tensor(fbb, t, b))
        .collect();
    let mut operators = Vec::with_capacity(model.ops.len());
    for op in &model.ops {
        let code = builtin(&op.op);
        let custom = match &op.op {
            Op::Custom { name, .. } => Some(name.as_str()),
            _ => None,
        };
        let input_type = op
            .inputs
            .first()
            .and_then(|&i| model.tensors.get(i as usize))
            .map(|t| t.dtype);
        let version = version(&op.op, input_type, model, &op.inputs);
        let index = match codes
            .iter()
            .position(|(c, _, n)| *c == code && *n == custom)
        {
            Some(i) => {
                codes[i].1 = codes[i].1.max(version);
                i
            }
            None => {
                codes.push((code, version, custom));
                codes.len() - 1
            }
        };
        let out_type = op
            .outputs
            .first()
            .and_then(|&i| model.tensors.get(i as usize))
            .map_or(ElementType::F32, |t| t.dtype);
        let (kind, options) = options(fbb, &op.op, out_type);
        let inputs = fbb.create_vector(&op.inputs);
        let outputs = fbb.create_vector(&op.outputs);
        let custom_options = match &op.op {
            Op::Custom { options, .. } => Some(fbb.create_vector(options)),
            _ => None,
        };
        operators.push(fb::Operator::create(
            fbb,
            &fb::OperatorArgs {
                opcode_index: index as u32,
                inputs: Some(inputs),
                outputs: Some(outputs),
                builtin_options_type: kind,
                builtin_options: options,
                custom_options,
                ..Default::default()
            },
        ));
    }
    let to_i32 = |v: &[usize]| v.iter().map(|&i| i as i32).collect::<Vec<i32>>();
    let tensors = fbb.create_vector(&tensors);
    let inputs = fbb.create_vector(&to_i32(&model.inputs));
    let outputs = fbb.create_vector(&to_i32(&model.outputs));
    let operators = fbb.create_vector(&operators);
    let name = fbb.create_string(name);
    fb::SubGraph::create(
        fbb,
        &fb::SubGraphArgs {
            tensors: Some(tensors),
            inputs: Some(inputs),
            outputs: Some(outputs),
            operators: Some(operators),
            name: Some(name),
        },
    )
}

/// The `serving_default` signature, naming inputs and outputs by their tensor names (as
/// TensorFlow's converter does for Keras models).
fn signature<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    model: &LiteModel,
) -> WIPOffset<fb::SignatureDef<'a>> {
    let mut map = |ids: &[usize]| {
        let entries: Vec<_> = ids
            .iter()
            .map(|&i| {
                let name = fbb.create_string(&model.tensors[i].name);
                fb::TensorMap::create(
                    fbb,
                    &fb::TensorMapArgs {
                        name: Some(name),
                        tensor_index: i as u32,
                    },
                )
            })
            .collect();
        fbb.create_vector(&entries)
    };
    let inputs = map(&model.inputs);
    let outputs = map(&model.outputs);
    let key = fbb.create_string("serving_default");
    fb::SignatureDef::create(
        fbb,
        &fb::SignatureDefArgs {
            inputs: Some(inputs),
            outputs: Some(outputs),
            signature_key: Some(key),
            subgraph_index: 0,
        },
    )
}

fn tensor<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    t: &LiteTensor,
    buffer: u32,
) -> WIPOffset<fb::Tensor<'a>> {
    let shape = fbb.create_vector(&t.shape);
    let signature = (!t.signature.is_empty()).then(|| fbb.create_vector(&t.signature));
    let name = fbb.create_string(&t.name);
    let quantization = t.quant.as_ref().map(|q| {
        let scale = fbb.create_vector(&q.scale);
        let zero_point = fbb.create_vector(&q.zero_point);
        fb::QuantizationParameters::create(
            fbb,
            &fb::QuantizationParametersArgs {
                scale: Some(scale),
                zero_point: Some(zero_point),
                quantized_dimension: q.axis as i32,
                ..Default::default()
            },
        )
    });
    fb::Tensor::create(
        fbb,
        &fb::TensorArgs {
            shape: Some(shape),
            type_: tensor_type(t.dtype),
            buffer,
            name: Some(name),
            quantization,
            shape_signature: signature,
            has_rank: true,
            ..Default::default()
        },
    )
}

/// The schema's tensor type for `dtype`.
pub(crate) fn tensor_type(dtype: ElementType) -> fb::TensorType {
    match dtype {
        ElementType::F32 => fb::TensorType::FLOAT32,
        ElementType::I32 => fb::TensorType::INT32,
        ElementType::I64 => fb::TensorType::INT64,
        ElementType::I8 => fb::TensorType::INT8,
        ElementType::U8 => fb::TensorType::UINT8,
        ElementType::I16 => fb::TensorType::INT16,
        ElementType::Bool => fb::TensorType::BOOL,
        ElementType::F16 => fb::TensorType::FLOAT16,
    }
}

fn activation(a: Activation) -> fb::ActivationFunctionType {
    match a {
        Activation::None => fb::ActivationFunctionType::NONE,
        Activation::Relu => fb::ActivationFunctionType::RELU,
        Activation::ReluN1To1 => fb::ActivationFunctionType::RELU_N1_TO_1,
        Activation::Relu6 => fb::ActivationFunctionType::RELU6,
        Activation::Tanh => fb::ActivationFunctionType::TANH,
    }
}

fn padding(p: Padding) -> fb::Padding {
    match p {
        Padding::Same => fb::Padding::SAME,
        Padding::Valid => fb::Padding::VALID,
    }
}

/// The builtin operator code of `op`.
pub(crate) fn builtin(op: &Op) -> fb::BuiltinOperator {
    use fb::BuiltinOperator as B;
    match op {
        Op::FullyConnected { .. } => B::FULLY_CONNECTED,
        Op::Conv2d { .. } => B::CONV_2D,
        Op::DepthwiseConv2d { .. } => B::DEPTHWISE_CONV_2D,
        Op::Pool2d { max: true, .. } => B::MAX_POOL_2D,
        Op::Pool2d { max: false, .. } => B::AVERAGE_POOL_2D,
        Op::Reshape { .. } => B::RESHAPE,
        Op::Softmax { .. } => B::SOFTMAX,
        Op::Concatenation { .. } => B::CONCATENATION,
        Op::Binary { kind, .. } => kind.builtin(),
        Op::Unary(kind) => kind.builtin(),
        Op::Reduce { kind, .. } => match kind {
            ReduceKind::Mean => B::MEAN,
            ReduceKind::Sum => B::SUM,
            ReduceKind::Max => B::REDUCE_MAX,
            ReduceKind::Min => B::REDUCE_MIN,
            ReduceKind::Prod => B::REDUCE_PROD,
        },
        Op::Shape => B::SHAPE,
        Op::StridedSlice { .. } => B::STRIDED_SLICE,
        Op::Pack { .. } => B::PACK,
        Op::ExpandDims => B::EXPAND_DIMS,
        Op::Squeeze { .. } => B::SQUEEZE,
        Op::Compare(kind) => match kind {
            CompareKind::Less => B::LESS,
            CompareKind::LessEqual => B::LESS_EQUAL,
            CompareKind::Greater => B::GREATER,
            CompareKind::GreaterEqual => B::GREATER_EQUAL,
            CompareKind::Equal => B::EQUAL,
            CompareKind::NotEqual => B::NOT_EQUAL,
        },
        Op::Select => B::SELECT_V2,
        Op::BatchMatMul { .. } => B::BATCH_MATMUL,
        Op::Gather { .. } => B::GATHER,
        Op::Pad => B::PAD,
        Op::Transpose => B::TRANSPOSE,
        Op::Quantize => B::QUANTIZE,
        Op::Dequantize => B::DEQUANTIZE,
        Op::Cast => B::CAST,
        Op::LeakyRelu { .. } => B::LEAKY_RELU,
        Op::Gelu { .. } => B::GELU,
        Op::Prelu => B::PRELU,
        Op::Densify => B::DENSIFY,
        Op::SpaceToBatchNd => B::SPACE_TO_BATCH_ND,
        Op::BatchToSpaceNd => B::BATCH_TO_SPACE_ND,
        Op::Resize { bilinear: true, .. } => B::RESIZE_BILINEAR,
        Op::Resize {
            bilinear: false, ..
        } => B::RESIZE_NEAREST_NEIGHBOR,
        Op::DepthToSpace { .. } => B::DEPTH_TO_SPACE,
        Op::SpaceToDepth { .. } => B::SPACE_TO_DEPTH,
        Op::TransposeConv { .. } => B::TRANSPOSE_CONV,
        Op::Split { sized: false, .. } => B::SPLIT,
        Op::Split { sized: true, .. } => B::SPLIT_V,
        Op::Slice => B::SLICE,
        Op::Tile => B::TILE,
        Op::Unpack { .. } => B::UNPACK,
        Op::GatherNd => B::GATHER_ND,
        Op::ArgReduce { max: true } => B::ARG_MAX,
        Op::ArgReduce { max: false } => B::ARG_MIN,
        Op::L2Normalization { .. } => B::L2_NORMALIZATION,
        Op::LocalResponseNorm { .. } => B::LOCAL_RESPONSE_NORMALIZATION,
        Op::MirrorPad { .. } => B::MIRROR_PAD,
        Op::Cumsum { .. } => B::CUMSUM,
        Op::Custom { .. } => B::CUSTOM,
        Op::While { .. } => B::WHILE,
        Op::Logical(LogicalKind::And) => B::LOGICAL_AND,
        Op::Logical(LogicalKind::Or) => B::LOGICAL_OR,
        Op::Logical(LogicalKind::Not) => B::LOGICAL_NOT,
        Op::Reverse => B::REVERSE_V2,
    }
}

/// The operator version a use of `op` needs (TFLite's op-version rules for the features
/// ferroflow writes, as TensorFlow's converter sets them): int8 kernels are version 2 for
/// most ops, 3 for convolutions and 4 for fully-connected layers; weights-only
/// (dynamic-range) kernels with per-channel scales are 12 (FULLY_CONNECTED) and 5 (CONV_2D).
fn version(op: &Op, input: Option<ElementType>, model: &LiteModel, inputs: &[i32]) -> i32 {
    let int8 = input == Some(ElementType::I8);
    let weight_int8 = inputs
        .get(1)
        .and_then(|&i| model.tensors.get(i as usize))
        .is_some_and(|t| t.dtype == ElementType::I8);
    let hybrid = !int8 && weight_int8;
    let per_channel = inputs
        .get(1)
        .and_then(|&i| model.tensors.get(i as usize))
        .and_then(|t| t.quant.as_ref())
        .is_some_and(|q| q.scale.len() > 1);
    match op {
        Op::FullyConnected { keep_num_dims, .. } => {
            let base = if int8 {
                4
            } else if hybrid && per_channel {
                12
            } else if hybrid {
                3
            } else {
                1
            };
            if *keep_num_dims {
                base.max(5)
            } else {
                base
            }
        }
        Op::Conv2d { .. } => {
            if int8 {
                3
            } else if hybrid && per_channel {
                5
            } else if hybrid {
                2
            } else {
                1
            }
        }
        Op::DepthwiseConv2d { window, .. } => {
            let dilated = window.dilation != (1, 1);
            if int8 {
                3
            } else if hybrid {
                6
            } else if dilated {
                2
            } else {
                1
            }
        }
        Op::Dequantize => 2,
        // LiteRT registers one version of HARD_SWISH, int8 included.
        Op::Reshape { .. } | Op::Cast | Op::Unary(UnaryKind::HardSwish) => 1,
        Op::Quantize => 2,
        _ if int8 => 2,
        _ => 1,
    }
}

/// The builtin options of `op` (`out_type`: its first output's type).
fn options<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    op: &Op,
    out_type: ElementType,
) -> (fb::BuiltinOptions, Option<WIPOffset<UnionWIPOffset>>) {
    use fb::BuiltinOptions as O;
    macro_rules! table {
        ($kind:ident, $args:ident { $($field:ident: $value:expr),* $(,)? }) => {{
            // Fields left out (TRANSPOSE_CONV's quantized_bias_type) take their defaults.
            #[allow(clippy::needless_update)]
            let args = fb::$args { $($field: $value,)* ..Default::default() };
            let o = fb::$kind::create(fbb, &args);
            (O::$kind, Some(o.as_union_value()))
        }};
    }
    match op {
        Op::Resize {
            bilinear: true,
            align_corners,
            half_pixel_centers,
        } => table!(
            ResizeBilinearOptions,
            ResizeBilinearOptionsArgs {
                align_corners: *align_corners,
                half_pixel_centers: *half_pixel_centers,
            }
        ),
        Op::Resize {
            bilinear: false,
            align_corners,
            half_pixel_centers,
        } => table!(
            ResizeNearestNeighborOptions,
            ResizeNearestNeighborOptionsArgs {
                align_corners: *align_corners,
                half_pixel_centers: *half_pixel_centers,
            }
        ),
        Op::DepthToSpace { block } => table!(
            DepthToSpaceOptions,
            DepthToSpaceOptionsArgs {
                block_size: *block as i32,
            }
        ),
        Op::SpaceToDepth { block } => table!(
            SpaceToDepthOptions,
            SpaceToDepthOptionsArgs {
                block_size: *block as i32,
            }
        ),
        Op::TransposeConv { window, act } => table!(
            TransposeConvOptions,
            TransposeConvOptionsArgs {
                padding: padding(window.padding),
                stride_h: window.stride.0 as i32,
                stride_w: window.stride.1 as i32,
                fused_activation_function: activation(*act),
            }
        ),
        Op::Split { num, sized: false } => table!(
            SplitOptions,
            SplitOptionsArgs {
                num_splits: *num as i32,
            }
        ),
        Op::Split { num, sized: true } => table!(
            SplitVOptions,
            SplitVOptionsArgs {
                num_splits: *num as i32,
            }
        ),
        Op::Unpack { num, axis } => table!(
            UnpackOptions,
            UnpackOptionsArgs {
                num: *num as i32,
                axis: *axis,
            }
        ),
        Op::ArgReduce { max: true } => table!(
            ArgMaxOptions,
            ArgMaxOptionsArgs {
                output_type: tensor_type(out_type),
            }
        ),
        Op::ArgReduce { max: false } => table!(
            ArgMinOptions,
            ArgMinOptionsArgs {
                output_type: tensor_type(out_type),
            }
        ),
        Op::L2Normalization { act } => table!(
            L2NormOptions,
            L2NormOptionsArgs {
                fused_activation_function: activation(*act),
            }
        ),
        Op::LocalResponseNorm {
            radius,
            bias,
            alpha,
            beta,
        } => table!(
            LocalResponseNormalizationOptions,
            LocalResponseNormalizationOptionsArgs {
                radius: *radius as i32,
                bias: *bias,
                alpha: *alpha,
                beta: *beta,
            }
        ),
        Op::MirrorPad { symmetric } => table!(
            MirrorPadOptions,
            MirrorPadOptionsArgs {
                mode: if *symmetric {
                    fb::MirrorPadMode::SYMMETRIC
                } else {
                    fb::MirrorPadMode::REFLECT
                },
            }
        ),
        Op::While { cond, body } => table!(
            WhileOptions,
            WhileOptionsArgs {
                cond_subgraph_index: *cond as i32,
                body_subgraph_index: *body as i32,
            }
        ),
        Op::Cumsum { exclusive, reverse } => table!(
            CumsumOptions,
            CumsumOptionsArgs {
                exclusive: *exclusive,
                reverse: *reverse,
            }
        ),
        Op::FullyConnected {
            act,
            keep_num_dims,
            asymmetric_inputs,
        } => {
            let o = fb::FullyConnectedOptions::create(
                fbb,
                &fb::FullyConnectedOptionsArgs {
                    fused_activation_function: activation(*act),
                    keep_num_dims: *keep_num_dims,
                    asymmetric_quantize_inputs: *asymmetric_inputs,
                    ..Default::default()
                },
            );
            (O::FullyConnectedOptions, Some(o.as_union_value()))
        }
        Op::Conv2d { window, act } => {
            let o = fb::Conv2DOptions::create(
                fbb,
                &fb::Conv2DOptionsArgs {
                    padding: padding(window.padding),
                    stride_h: window.stride.0 as i32,
                    stride_w: window.stride.1 as i32,
                    dilation_h_factor: window.dilation.0 as i32,
                    dilation_w_factor: window.dilation.1 as i32,
                    fused_activation_function: activation(*act),
                    ..Default::default()
                },
            );
            (O::Conv2DOptions, Some(o.as_union_value()))
        }
        Op::DepthwiseConv2d {
            window,
            multiplier,
            act,
        } => {
            let o = fb::DepthwiseConv2DOptions::create(
                fbb,
                &fb::DepthwiseConv2DOptionsArgs {
                    padding: padding(window.padding),
                    stride_h: window.stride.0 as i32,
                    stride_w: window.stride.1 as i32,
                    dilation_h_factor: window.dilation.0 as i32,
                    dilation_w_factor: window.dilation.1 as i32,
                    depth_multiplier: *multiplier as i32,
                    fused_activation_function: activation(*act),
                },
            );
            (O::DepthwiseConv2DOptions, Some(o.as_union_value()))
        }
        Op::Pool2d {
            window,
            filter,
            act,
            ..
        } => {
            let o = fb::Pool2DOptions::create(
                fbb,
                &fb::Pool2DOptionsArgs {
                    padding: padding(window.padding),
                    stride_h: window.stride.0 as i32,
                    stride_w: window.stride.1 as i32,
                    filter_height: filter.0 as i32,
                    filter_width: filter.1 as i32,
                    fused_activation_function: activation(*act),
                },
            );
            (O::Pool2DOptions, Some(o.as_union_value()))
        }
        Op::Reshape { new_shape } => {
            let v = fbb.create_vector(new_shape);
            let o = fb::ReshapeOptions::create(fbb, &fb::ReshapeOptionsArgs { new_shape: Some(v) });
            (O::ReshapeOptions, Some(o.as_union_value()))
        }
        Op::Softmax { beta } => {
            let o = fb::SoftmaxOptions::create(fbb, &fb::SoftmaxOptionsArgs { beta: *beta });
            (O::SoftmaxOptions, Some(o.as_union_value()))
        }
        Op::Concatenation { axis, act } => {
            let o = fb::ConcatenationOptions::create(
                fbb,
                &fb::ConcatenationOptionsArgs {
                    axis: *axis,
                    fused_activation_function: activation(*act),
                },
            );
            (O::ConcatenationOptions, Some(o.as_union_value()))
        }
        Op::Binary { kind, act } => {
            let f = activation(*act);
            match kind {
                BinaryKind::Add => {
                    let o = fb::AddOptions::create(
                        fbb,
                        &fb::AddOptionsArgs {
                            fused_activation_function: f,
                            ..Default::default()
                        },
                    );
                    (O::AddOptions, Some(o.as_union_value()))
                }
                BinaryKind::Sub => {
                    let o = fb::SubOptions::create(
                        fbb,
                        &fb::SubOptionsArgs {
                            fused_activation_function: f,
                            ..Default::default()
                        },
                    );
                    (O::SubOptions, Some(o.as_union_value()))
                }
                BinaryKind::Mul => {
                    let o = fb::MulOptions::create(
                        fbb,
                        &fb::MulOptionsArgs {
                            fused_activation_function: f,
                        },
                    );
                    (O::MulOptions, Some(o.as_union_value()))
                }
                BinaryKind::Div => {
                    let o = fb::DivOptions::create(
                        fbb,
                        &fb::DivOptionsArgs {
                            fused_activation_function: f,
                        },
                    );
                    (O::DivOptions, Some(o.as_union_value()))
                }
                _ => (O::NONE, None),
            }
        }
        Op::Reduce { keep_dims, .. } => {
            let o = fb::ReducerOptions::create(
                fbb,
                &fb::ReducerOptionsArgs {
                    keep_dims: *keep_dims,
                },
            );
            (O::ReducerOptions, Some(o.as_union_value()))
        }
        Op::Gather { axis } => {
            let o = fb::GatherOptions::create(
                fbb,
                &fb::GatherOptionsArgs {
                    axis: *axis as i32,
                    batch_dims: 0,
                },
            );
            (O::GatherOptions, Some(o.as_union_value()))
        }
        Op::LeakyRelu { alpha } => {
            let o = fb::LeakyReluOptions::create(fbb, &fb::LeakyReluOptionsArgs { alpha: *alpha });
            (O::LeakyReluOptions, Some(o.as_union_value()))
        }
        Op::Gelu { approximate } => {
            let o = fb::GeluOptions::create(
                fbb,
                &fb::GeluOptionsArgs {
                    approximate: *approximate,
                },
            );
            (O::GeluOptions, Some(o.as_union_value()))
        }
        Op::Shape => {
            let o = fb::ShapeOptions::create(
                fbb,
                &fb::ShapeOptionsArgs {
                    out_type: fb::TensorType::INT32,
                },
            );
            (O::ShapeOptions, Some(o.as_union_value()))
        }
        Op::StridedSlice {
            begin_mask,
            end_mask,
            ellipsis_mask,
            new_axis_mask,
            shrink_axis_mask,
            offset,
        } => {
            let o = fb::StridedSliceOptions::create(
                fbb,
                &fb::StridedSliceOptionsArgs {
                    begin_mask: *begin_mask,
                    end_mask: *end_mask,
                    ellipsis_mask: *ellipsis_mask,
                    new_axis_mask: *new_axis_mask,
                    shrink_axis_mask: *shrink_axis_mask,
                    offset: *offset,
                },
            );
            (O::StridedSliceOptions, Some(o.as_union_value()))
        }
        Op::Pack { axis } => {
            let o = fb::PackOptions::create(
                fbb,
                &fb::PackOptionsArgs {
                    values_count: 0,
                    axis: *axis,
                },
            );
            (O::PackOptions, Some(o.as_union_value()))
        }
        Op::Squeeze { dims } => {
            let v = fbb.create_vector(dims);
            let o = fb::SqueezeOptions::create(
                fbb,
                &fb::SqueezeOptionsArgs {
                    squeeze_dims: Some(v),
                },
            );
            (O::SqueezeOptions, Some(o.as_union_value()))
        }
        Op::BatchMatMul { adj_x, adj_y } => {
            let o = fb::BatchMatMulOptions::create(
                fbb,
                &fb::BatchMatMulOptionsArgs {
                    adj_x: *adj_x,
                    adj_y: *adj_y,
                    asymmetric_quantize_inputs: false,
                },
            );
            (O::BatchMatMulOptions, Some(o.as_union_value()))
        }
        Op::Unary(_)
        | Op::Pad
        | Op::Transpose
        | Op::Quantize
        | Op::Dequantize
        | Op::Cast
        | Op::ExpandDims
        | Op::Compare(_)
        | Op::Prelu
        | Op::Logical(_)
        | Op::Reverse
        | Op::Densify
        | Op::SpaceToBatchNd
        | Op::BatchToSpaceNd
        | Op::Custom { .. }
        | Op::Slice
        | Op::Tile
        | Op::GatherNd
        | Op::Select => (O::NONE, None),
    }
}
