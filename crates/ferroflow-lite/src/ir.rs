//! The in-memory form of a TFLite model: what the converter builds, the writer
//! serialises, the reader produces and the interpreter runs.
//!
//! It mirrors the schema's main subgraph (tensors, operators, inputs, outputs) with
//! typed operator options instead of flatbuffer unions.

use ferroflow_core::BinaryOp;

/// Element type of a TFLite tensor (the schema's `TensorType`, for the types ferroflow
/// reads and writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementType {
    /// 32-bit float.
    F32,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// 8-bit signed integer (quantised values).
    I8,
    /// 8-bit unsigned integer.
    U8,
    /// 16-bit signed integer.
    I16,
    /// Boolean, one byte each.
    Bool,
    /// IEEE half precision (float16 weights feeding `DEQUANTIZE`).
    F16,
}

impl ElementType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElementType::F32 | ElementType::I32 => 4,
            ElementType::I64 => 8,
            ElementType::I8 | ElementType::U8 | ElementType::Bool => 1,
            ElementType::I16 | ElementType::F16 => 2,
        }
    }

    /// The name TFLite uses (`FLOAT32`, `INT8`...).
    pub fn name(self) -> &'static str {
        match self {
            ElementType::F32 => "FLOAT32",
            ElementType::I32 => "INT32",
            ElementType::I64 => "INT64",
            ElementType::I8 => "INT8",
            ElementType::U8 => "UINT8",
            ElementType::I16 => "INT16",
            ElementType::Bool => "BOOL",
            ElementType::F16 => "FLOAT16",
        }
    }
}

/// Affine quantisation of a tensor: `real = scale * (q - zero_point)`, per tensor (one
/// scale) or per channel along `axis`.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantization {
    /// One scale per tensor, or one per slice along `axis`.
    pub scale: Vec<f32>,
    /// Zero points, as many as scales.
    pub zero_point: Vec<i64>,
    /// The quantised dimension for per-channel parameters.
    pub axis: usize,
}

impl Quantization {
    /// Per-tensor parameters.
    pub fn per_tensor(scale: f32, zero_point: i64) -> Self {
        Quantization {
            scale: vec![scale],
            zero_point: vec![zero_point],
            axis: 0,
        }
    }
}

/// A tensor of the model: an activation (no data) or a constant (with little-endian data).
#[derive(Clone, Debug, PartialEq)]
pub struct LiteTensor {
    /// Name, for debugging and signatures.
    pub name: String,
    /// Static shape (a dynamic batch is stored as 1, as TFLite does).
    pub shape: Vec<i32>,
    /// Shape with unknown dimensions as -1 (the schema's `shape_signature`); empty when
    /// every dimension is static.
    pub signature: Vec<i32>,
    /// Element type.
    pub dtype: ElementType,
    /// Constant contents, little-endian; `None` for activations.
    pub data: Option<Vec<u8>>,
    /// Quantisation parameters of quantised tensors.
    pub quant: Option<Quantization>,
}

impl LiteTensor {
    /// The dimensions a caller sees: the signature (with `-1` for dynamic sizes) when the
    /// file gives one, otherwise the shape.
    pub fn declared_dims(&self) -> &[i32] {
        if self.signature.is_empty() {
            &self.shape
        } else {
            &self.signature
        }
    }

    /// The element type a caller feeds or reads: float32 for a quantised edge (quantised
    /// and dequantised with the tensor's own parameters, as `run_float` does), otherwise
    /// the tensor's own type.
    pub fn float_edge_dtype(&self) -> ferroflow_core::DType {
        if self.quant.is_some() {
            ferroflow_core::DType::F32
        } else {
            crate::interpreter::core_dtype(self.dtype)
        }
    }

    /// Number of elements of the static shape.
    pub fn numel(&self) -> usize {
        self.shape.iter().map(|&d| d.max(0) as usize).product()
    }

    /// A float32 constant with `values` (little-endian).
    pub fn constant_f32(name: &str, shape: &[i32], values: &[f32]) -> Self {
        LiteTensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            signature: Vec::new(),
            dtype: ElementType::F32,
            data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            quant: None,
        }
    }

    /// The values of a float32 constant; `None` for other tensors.
    pub fn f32_values(&self) -> Option<Vec<f32>> {
        if self.dtype != ElementType::F32 {
            return None;
        }
        self.data.as_ref().map(|d| {
            d.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }

    /// Replaces the data of a float32 constant.
    pub fn set_f32_values(&mut self, values: &[f32]) {
        self.data = Some(values.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
}

/// Activation fused into an operator (`ActivationFunctionType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// None.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `clip(x, -1, 1)`.
    ReluN1To1,
    /// `clip(x, 0, 6)`.
    Relu6,
    /// `tanh(x)`.
    Tanh,
}

/// Convolution and pooling padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Output size `ceil(in / stride)`, zero padding split with the extra after.
    Same,
    /// No padding.
    Valid,
}

/// 2-D window geometry shared by convolutions and pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Padding mode.
    pub padding: Padding,
    /// (height, width) strides.
    pub stride: (usize, usize),
    /// (height, width) dilation factors (1 for pools).
    pub dilation: (usize, usize),
}

/// A builtin operator with its options.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `FULLY_CONNECTED(x, weights[out, in], bias?)`.
    FullyConnected {
        /// Fused activation.
        act: Activation,
        /// Keep the leading dimensions of `x` instead of flattening to 2-D.
        keep_num_dims: bool,
        /// With int8 weights and float input (dynamic range): quantise each input row
        /// with its own zero point rather than symmetrically.
        asymmetric_inputs: bool,
    },
    /// `CONV_2D(x, filter[out, kh, kw, in], bias?)`.
    Conv2d {
        /// Window.
        window: Window,
        /// Fused activation.
        act: Activation,
    },
    /// `DEPTHWISE_CONV_2D(x, filter[1, kh, kw, in * multiplier], bias?)`.
    DepthwiseConv2d {
        /// Window.
        window: Window,
        /// Channel multiplier.
        multiplier: usize,
        /// Fused activation.
        act: Activation,
    },
    /// `MAX_POOL_2D` or `AVERAGE_POOL_2D`.
    Pool2d {
        /// Max (true) or average pooling.
        max: bool,
        /// Window (dilation 1).
        window: Window,
        /// (height, width) of the window.
        filter: (usize, usize),
        /// Fused activation.
        act: Activation,
    },
    /// `RESHAPE(x, shape?)` to `new_shape` (one -1 allowed).
    Reshape {
        /// Target shape.
        new_shape: Vec<i32>,
    },
    /// `SOFTMAX` over the last axis.
    Softmax {
        /// Logit scale.
        beta: f32,
    },
    /// `CONCATENATION` along `axis`.
    Concatenation {
        /// Axis (negative counts from the end).
        axis: i32,
        /// Fused activation.
        act: Activation,
    },
    /// Elementwise binary op with broadcasting and a fused activation.
    Binary {
        /// Which op.
        kind: BinaryKind,
        /// Fused activation.
        act: Activation,
    },
    /// Elementwise unary op.
    Unary(UnaryKind),
    /// `MEAN`, `SUM`, `REDUCE_MAX` over the axes in the second input.
    Reduce {
        /// Which reduction.
        kind: ReduceKind,
        /// Keep reduced axes as size 1.
        keep_dims: bool,
    },
    /// `GATHER(params, indices)` along `axis`.
    Gather {
        /// Axis of `params`.
        axis: usize,
    },
    /// `PAD(x, paddings)` with zeros.
    Pad,
    /// `TRANSPOSE(x, perm)`.
    Transpose,
    /// `QUANTIZE`: float (or int8 with other parameters) to int8.
    Quantize,
    /// `DEQUANTIZE`: int8 to float.
    Dequantize,
    /// `CAST` between element types.
    Cast,
    /// `LEAKY_RELU` with slope `alpha`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// `GELU`.
    Gelu {
        /// Tanh approximation.
        approximate: bool,
    },
    /// `SHAPE`: the input's shape as an int32 vector.
    Shape,
    /// `STRIDED_SLICE(x, begin, end, strides)` with TF's masks.
    StridedSlice {
        /// Axes whose begin is ignored (start from the edge).
        begin_mask: i32,
        /// Axes whose end is ignored (run to the edge).
        end_mask: i32,
        /// The axis standing for "all remaining axes".
        ellipsis_mask: i32,
        /// Axes where a new axis of size 1 is inserted.
        new_axis_mask: i32,
        /// Axes taken at `begin` and removed.
        shrink_axis_mask: i32,
        /// `end` is relative to `begin`.
        offset: bool,
    },
    /// `PACK`: stacks its inputs along a new axis.
    Pack {
        /// The new axis.
        axis: i32,
    },
    /// `EXPAND_DIMS(x, axis)`.
    ExpandDims,
    /// `SQUEEZE` the listed size-1 axes (all size-1 axes when empty).
    Squeeze {
        /// Axes to remove.
        dims: Vec<i32>,
    },
    /// Elementwise comparison with broadcasting, giving bools.
    Compare(CompareKind),
    /// `SELECT` / `SELECT_V2(cond, x, y)` with broadcasting.
    Select,
    /// `BATCH_MATMUL(x, y)` with optional adjoints.
    BatchMatMul {
        /// Transpose the last two axes of `x`.
        adj_x: bool,
        /// Transpose the last two axes of `y`.
        adj_y: bool,
    },
    /// `DENSIFY`: a sparse constant as a dense tensor (sparse constants are decoded when
    /// read, so this passes its input on).
    Densify,
    /// `PRELU(x, alpha)`: `x` where `x >= 0`, else `alpha * x` (alpha broadcasts).
    Prelu,
    /// `RESIZE_BILINEAR` / `RESIZE_NEAREST_NEIGHBOR(x, size)` of NHWC images.
    Resize {
        /// Bilinear (true) or nearest-neighbour interpolation.
        bilinear: bool,
        /// Corner pixels of input and output are aligned.
        align_corners: bool,
        /// Pixel centres at +0.5 (TF2's `tf.image.resize`).
        half_pixel_centers: bool,
    },
    /// `DEPTH_TO_SPACE`: channel blocks become `block x block` spatial tiles.
    DepthToSpace {
        /// Block size.
        block: usize,
    },
    /// `SPACE_TO_BATCH_ND(x, block_shape, paddings)`.
    SpaceToBatchNd,
    /// `BATCH_TO_SPACE_ND(x, block_shape, crops)`.
    BatchToSpaceNd,
    /// `SPACE_TO_DEPTH`: the inverse of [`Op::DepthToSpace`].
    SpaceToDepth {
        /// Block size.
        block: usize,
    },
    /// `TRANSPOSE_CONV(output_shape, filter[out, kh, kw, in], x, bias?)`.
    TransposeConv {
        /// Padding and strides (dilation 1).
        window: Window,
        /// Fused activation.
        act: Activation,
    },
    /// `SPLIT(axis, x)` into `num` equal parts, or `SPLIT_V(x, sizes, axis)`.
    Split {
        /// Number of outputs.
        num: usize,
        /// `SPLIT_V`: sizes given as the second input.
        sized: bool,
    },
    /// `SLICE(x, begin, size)` (a size of -1 runs to the end).
    Slice,
    /// `TILE(x, multiples)`.
    Tile,
    /// `UNPACK`: `num` outputs, one per index along `axis`, which is removed.
    Unpack {
        /// Number of outputs.
        num: usize,
        /// The axis.
        axis: i32,
    },
    /// `GATHER_ND(params, indices)`.
    GatherNd,
    /// `ARG_MAX` / `ARG_MIN(x, axis)`, as the output tensor's integer type.
    ArgReduce {
        /// Largest (true) or smallest.
        max: bool,
    },
    /// `L2_NORMALIZATION` over the last axis.
    L2Normalization {
        /// Fused activation.
        act: Activation,
    },
    /// `LOCAL_RESPONSE_NORMALIZATION` across the channels (last axis).
    LocalResponseNorm {
        /// Channels on each side in the sum.
        radius: usize,
        /// Added to the scaled sum.
        bias: f32,
        /// Scale of the sum of squares.
        alpha: f32,
        /// Exponent.
        beta: f32,
    },
    /// `MIRROR_PAD(x, paddings)`.
    MirrorPad {
        /// `SYMMETRIC` (edge repeated) rather than `REFLECT`.
        symmetric: bool,
    },
    /// A custom operator, run by the kernel registered under its name (see
    /// [`crate::custom`]).
    Custom {
        /// The operator code's `custom_code`.
        name: String,
        /// The operator's `custom_options` bytes, for its kernel to decode.
        options: Vec<u8>,
    },
    /// `WHILE`: runs subgraph `body` on its loop values while subgraph `cond` says so
    /// (what TF's converter makes of Keras's recurrent layers).
    While {
        /// Index (in the file) of the subgraph giving the loop condition.
        cond: usize,
        /// Index (in the file) of the subgraph computing the next loop values.
        body: usize,
    },
    /// `LOGICAL_AND`, `LOGICAL_OR` (with broadcasting) and `LOGICAL_NOT`.
    Logical(LogicalKind),
    /// `REVERSE_V2(x, axes)`.
    Reverse,
    /// `CUMSUM(x, axis)`.
    Cumsum {
        /// Each sum leaves out its own element.
        exclusive: bool,
        /// Sums run from the end.
        reverse: bool,
    },
}

/// Comparison builtins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareKind {
    /// `LESS`.
    Less,
    /// `LESS_EQUAL`.
    LessEqual,
    /// `GREATER`.
    Greater,
    /// `GREATER_EQUAL`.
    GreaterEqual,
    /// `EQUAL`.
    Equal,
    /// `NOT_EQUAL`.
    NotEqual,
}

/// Boolean builtins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogicalKind {
    /// `LOGICAL_AND`.
    And,
    /// `LOGICAL_OR`.
    Or,
    /// `LOGICAL_NOT`.
    Not,
}

/// Elementwise binary builtins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    /// `ADD`.
    Add,
    /// `SUB`.
    Sub,
    /// `MUL`.
    Mul,
    /// `DIV`.
    Div,
    /// `MAXIMUM`.
    Maximum,
    /// `MINIMUM`.
    Minimum,
    /// `SQUARED_DIFFERENCE`.
    SquaredDifference,
    /// `POW`.
    Pow,
    /// `FLOOR_DIV`.
    FloorDiv,
    /// `FLOOR_MOD`.
    FloorMod,
}

impl BinaryKind {
    /// Every binary builtin with its schema code and the core op it computes: the one
    /// table the reader, the writer, the interpreter and the converter use.
    pub const BUILTINS: [(BinaryKind, crate::schema::BuiltinOperator, BinaryOp); 10] = {
        use crate::schema::BuiltinOperator as B;
        use BinaryKind as K;
        [
            (K::Add, B::ADD, BinaryOp::Add),
            (K::Sub, B::SUB, BinaryOp::Sub),
            (K::Mul, B::MUL, BinaryOp::Mul),
            (K::Div, B::DIV, BinaryOp::Div),
            (K::Maximum, B::MAXIMUM, BinaryOp::Maximum),
            (K::Minimum, B::MINIMUM, BinaryOp::Minimum),
            (
                K::SquaredDifference,
                B::SQUARED_DIFFERENCE,
                BinaryOp::SquaredDifference,
            ),
            (K::Pow, B::POW, BinaryOp::Pow),
            (K::FloorDiv, B::FLOOR_DIV, BinaryOp::FloorDiv),
            (K::FloorMod, B::FLOOR_MOD, BinaryOp::FloorMod),
        ]
    };

    fn entry(self) -> (BinaryKind, crate::schema::BuiltinOperator, BinaryOp) {
        Self::BUILTINS
            .into_iter()
            .find(|e| e.0 == self)
            .unwrap_or(Self::BUILTINS[0])
    }

    /// The schema's code for this builtin.
    pub fn builtin(self) -> crate::schema::BuiltinOperator {
        self.entry().1
    }

    /// The core op this builtin computes.
    pub fn core(self) -> BinaryOp {
        self.entry().2
    }

    /// The binary builtin with schema code `code`, if it is one.
    pub fn from_builtin(code: crate::schema::BuiltinOperator) -> Option<BinaryKind> {
        Self::BUILTINS
            .into_iter()
            .find(|e| e.1 == code)
            .map(|e| e.0)
    }

    /// The builtin that computes core op `op` (every core binary op has one).
    pub fn from_core(op: BinaryOp) -> Option<BinaryKind> {
        Self::BUILTINS.into_iter().find(|e| e.2 == op).map(|e| e.0)
    }
}

/// Elementwise unary builtins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryKind {
    /// `RELU`.
    Relu,
    /// `RELU6`.
    Relu6,
    /// `LOGISTIC` (sigmoid).
    Logistic,
    /// `TANH`.
    Tanh,
    /// `EXP`.
    Exp,
    /// `LOG`.
    Log,
    /// `SQRT`.
    Sqrt,
    /// `RSQRT`.
    Rsqrt,
    /// `ABS`.
    Abs,
    /// `NEG`.
    Neg,
    /// `HARD_SWISH`.
    HardSwish,
    /// `ELU`.
    Elu,
    /// `SIN`.
    Sin,
    /// `COS`.
    Cos,
    /// `FLOOR`.
    Floor,
    /// `CEIL`.
    Ceil,
    /// `ROUND` (ties to even).
    Round,
    /// `SIGN`.
    Sign,
}

impl UnaryKind {
    /// Every unary builtin with its schema code: the one table the reader and the writer
    /// both use.
    pub const BUILTINS: [(UnaryKind, crate::schema::BuiltinOperator); 18] = {
        use crate::schema::BuiltinOperator as B;
        [
            (UnaryKind::Relu, B::RELU),
            (UnaryKind::Relu6, B::RELU6),
            (UnaryKind::Logistic, B::LOGISTIC),
            (UnaryKind::Tanh, B::TANH),
            (UnaryKind::Exp, B::EXP),
            (UnaryKind::Log, B::LOG),
            (UnaryKind::Sqrt, B::SQRT),
            (UnaryKind::Rsqrt, B::RSQRT),
            (UnaryKind::Abs, B::ABS),
            (UnaryKind::Neg, B::NEG),
            (UnaryKind::HardSwish, B::HARD_SWISH),
            (UnaryKind::Elu, B::ELU),
            (UnaryKind::Sin, B::SIN),
            (UnaryKind::Cos, B::COS),
            (UnaryKind::Floor, B::FLOOR),
            (UnaryKind::Ceil, B::CEIL),
            (UnaryKind::Round, B::ROUND),
            (UnaryKind::Sign, B::SIGN),
        ]
    };

    /// The schema's code for this builtin.
    pub fn builtin(self) -> crate::schema::BuiltinOperator {
        Self::BUILTINS
            .iter()
            .find(|(k, _)| *k == self)
            .map(|&(_, b)| b)
            .unwrap_or_default()
    }

    /// The unary builtin with schema code `code`, if it is one.
    pub fn from_builtin(code: crate::schema::BuiltinOperator) -> Option<UnaryKind> {
        Self::BUILTINS
            .iter()
            .find(|(_, b)| *b == code)
            .map(|&(k, _)| k)
    }
}

/// Reductions over axes given as a constant second input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    /// `MEAN`.
    Mean,
    /// `SUM`.
    Sum,
    /// `REDUCE_MAX`.
    Max,
    /// `REDUCE_MIN`.
    Min,
    /// `REDUCE_PROD`.
    Prod,
}

/// One operator application: inputs and outputs are tensor indices (-1 for an omitted
/// optional input).
#[derive(Clone, Debug, PartialEq)]
pub struct LiteOp {
    /// The operator and its options.
    pub op: Op,
    /// Input tensor indices.
    pub inputs: Vec<i32>,
    /// Output tensor indices.
    pub outputs: Vec<i32>,
}

/// A single-subgraph TFLite model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiteModel {
    /// All tensors.
    pub tensors: Vec<LiteTensor>,
    /// Operators in execution order.
    pub ops: Vec<LiteOp>,
    /// Indices of the input tensors, in order.
    pub inputs: Vec<usize>,
    /// Indices of the output tensors, in order.
    pub outputs: Vec<usize>,
    /// Model description.
    pub description: String,
    /// The file's other subgraphs (control-flow conditions and bodies), in order: file
    /// subgraph `i` is `subgraphs[i - 1]`; their own `subgraphs` are empty.
    pub subgraphs: Vec<LiteModel>,
}

impl LiteModel {
    /// Adds a tensor and returns its index.
    pub fn add_tensor(&mut self, t: LiteTensor) -> usize {
        self.tensors.push(t);
        self.tensors.len() - 1
    }

    /// The operator that writes each tensor (the last one, should several), `None` for
    /// constants and inputs.
    pub fn writers(&self) -> Vec<Option<usize>> {
        let mut writer = vec![None; self.tensors.len()];
        for (k, op) in self.ops.iter().enumerate() {
            for &o in &op.outputs {
                if let Some(w) = usize::try_from(o).ok().and_then(|o| writer.get_mut(o)) {
                    *w = Some(k);
                }
            }
        }
        writer
    }

    /// How many times each tensor is read by an op (a model output counts as a read).
    pub fn readers(&self) -> Vec<usize> {
        let mut n = vec![0; self.tensors.len()];
        for &i in self.ops.iter().flat_map(|op| op.inputs.iter()) {
            if i >= 0 {
                n[i as usize] += 1;
            }
        }
        for &o in &self.outputs {
            n[o] += 1;
        }
        n
    }
}

impl Op {
    /// The op's fused activation, for ops that carry one.
    pub fn fused_activation_mut(&mut self) -> Option<&mut Activation> {
        match self {
            Op::FullyConnected { act, .. }
            | Op::Conv2d { act, .. }
            | Op::DepthwiseConv2d { act, .. }
            | Op::Pool2d { act, .. }
            | Op::TransposeConv { act, .. }
            | Op::L2Normalization { act }
            | Op::Concatenation { act, .. } => Some(act),
            Op::Binary {
                kind: BinaryKind::Add | BinaryKind::Sub | BinaryKind::Mul | BinaryKind::Div,
                act,
            } => Some(act),
            _ => None,
        }
    }
}
