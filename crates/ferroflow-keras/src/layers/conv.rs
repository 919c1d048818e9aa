//! Convolution layers: `Conv1D`, `Conv2D`, `Conv2DTranspose`, `DepthwiseConv2D`,
//! `SeparableConv2D` (channels_last, kernels in Keras's layouts).

use super::common::{
    known_last, padding_name, read_activation, read_padding, require_channels_last, window_output,
    WeightOptions,
};
use crate::activations::Activation;
use crate::config::{ints, ConfigReader, Map};
use crate::initializers::Initializer;
use crate::layer::{format_dims, LayerBase, TensorSpec};
use ferroflow_core::ops::conv::Padding;
use ferroflow_core::ops::remap::PadMode;
use ferroflow_core::{DType, Error, Result, Tensor, Variable};
use serde_json::Value;
use std::sync::OnceLock;

/// Which convolution a [`ConvCore`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Depthwise,
    Separable,
}

impl Kind {
    fn class(self) -> &'static str {
        match self {
            Kind::Conv1D => "Conv1D",
            Kind::Conv2D => "Conv2D",
            Kind::Conv2DTranspose => "Conv2DTranspose",
            Kind::Depthwise => "DepthwiseConv2D",
            Kind::Separable => "SeparableConv2D",
        }
    }

    fn spatial(self) -> usize {
        if self == Kind::Conv1D {
            1
        } else {
            2
        }
    }
}

/// The state all convolution layers share.
struct ConvCore {
    base: LayerBase,
    kind: Kind,
    filters: usize,
    depth_multiplier: usize,
    kernel_size: Vec<usize>,
    strides: Vec<usize>,
    dilation: Vec<usize>,
    padding: Padding,
    /// Conv1D `padding="causal"`: zeros before the sequence only, so step `t` sees inputs
    /// up to `t` (output lengths as with "same").
    causal: bool,
    groups: usize,
    activation: Activation,
    use_bias: bool,
    kernel_options: WeightOptions,
    pointwise_options: WeightOptions,
    bias_options: WeightOptions,
    kernel: OnceLock<Variable>,
    pointwise: OnceLock<Variable>,
    bias: OnceLock<Variable>,
}

impl ConvCore {
    fn new(kind: Kind, filters: usize, kernel_size: &[usize]) -> Self {
        let n = kind.spatial();
        let ks = if kernel_size.len() == 1 {
            vec![kernel_size[0]; n]
        } else {
            kernel_size.to_vec()
        };
        ConvCore {
            base: LayerBase::new(kind.class(), None),
            kind,
            filters,
            depth_multiplier: 1,
            kernel_size: ks,
            strides: vec![1; n],
            dilation: vec![1; n],
            padding: Padding::Valid,
            causal: false,
            groups: 1,
            activation: Activation::Linear,
            use_bias: true,
            kernel_options: WeightOptions::new(Initializer::glorot_uniform()),
            pointwise_options: WeightOptions::new(Initializer::glorot_uniform()),
            bias_options: WeightOptions::new(Initializer::Zeros),
            kernel: OnceLock::new(),
            pointwise: OnceLock::new(),
            bias: OnceLock::new(),
        }
    }

    fn check(&self) -> Result<()> {
        let n = self.kind.spatial();
        let bad = [&self.kernel_size, &self.strides, &self.dilation]
            .iter()
            .any(|v| v.len() != n || v.contains(&0));
        if bad || self.groups == 0 || self.depth_multiplier == 0 {
            return Err(Error::invalid(
                self.kind.class(),
                format!(
                    "layer '{}': kernel_size {:?}, strides {:?}, dilation_rate {:?} need {n} positive values",
                    self.base.name(),
                    self.kernel_size,
                    self.strides,
                    self.dilation
                ),
            ));
        }
        Ok(())
    }

    fn from_config(kind: Kind, config: &Value) -> Result<Self> {
        let class = kind.class();
        let r = ConfigReader::new(class, config)?;
        let n = kind.spatial();
        let filters = match kind {
            Kind::Depthwise => 0,
            _ => r.usize_req("filters")?,
        };
        let ks = r.tuple_or("kernel_size", n, &vec![1; n])?;
        let mut c = ConvCore::new(kind, filters, &ks);
        c.base = LayerBase::from_reader(class, &r);
        c.strides = r.tuple_or("strides", n, &vec![1; n])?;
        c.dilation = r.tuple_or("dilation_rate", n, &vec![1; n])?;
        if kind == Kind::Conv1D && r.raw("padding").and_then(Value::as_str) == Some("causal") {
            c.causal = true;
            c.padding = Padding::Same;
            r.require("padding", &Value::from("causal"))?;
        } else {
            c.padding = read_padding(&r)?;
        }
        require_channels_last(&r)?;
        if matches!(kind, Kind::Conv1D | Kind::Conv2D) {
            c.groups = r.usize_or("groups", 1)?;
        }
        if matches!(kind, Kind::Depthwise | Kind::Separable) {
            c.depth_multiplier = r.usize_or("depth_multiplier", 1)?;
        }
        if kind == Kind::Conv2DTranspose {
            r.require("output_padding", &Value::Null)?;
        }
        c.activation = read_activation(&r)?;
        c.use_bias = r.bool_or("use_bias", true)?;
        let kprefix = if matches!(kind, Kind::Depthwise | Kind::Separable) {
            "depthwise"
        } else {
            "kernel"
        };
        c.kernel_options = WeightOptions::read(&r, kprefix, Initializer::glorot_uniform())?;
        if kind == Kind::Separable {
            c.pointwise_options =
                WeightOptions::read(&r, "pointwise", Initializer::glorot_uniform())?;
        }
        c.bias_options = WeightOptions::read(&r, "bias", Initializer::Zeros)?;
        r.require("activity_regularizer", &Value::Null)?;
        r.require("lora_rank", &Value::Null)?;
        r.finish()?;
        c.check()?;
        Ok(c)
    }

    fn out_channels(&self, cin: usize) -> usize {
        match self.kind {
            Kind::Depthwise => cin * self.depth_multiplier,
            _ => self.filters,
        }
    }

    fn transpose_len(&self, input: Option<usize>, axis: usize) -> Option<usize> {
        let n = input?;
        let k = self.kernel_size[axis] + (self.kernel_size[axis] - 1) * (self.dilation[axis] - 1);
        let s = self.strides[axis];
        Some(match self.padding {
            Padding::Valid => n * s + k.saturating_sub(s),
            Padding::Same => n * s,
            Padding::Explicit(_) => return None,
        })
    }
}

impl super::Inner for ConvCore {
    fn class(&self) -> &'static str {
        self.kind.class()
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn build(&self, inputs: &[TensorSpec]) -> Result<()> {
        self.check()?;
        let class = self.kind.class();
        let shape = &inputs[0].shape;
        if shape.len() != self.kind.spatial() + 2 {
            return Err(Error::invalid(
                class,
                format!(
                    "layer '{}' expects inputs of rank {}, got {}",
                    self.base.name(),
                    self.kind.spatial() + 2,
                    format_dims(shape)
                ),
            ));
        }
        let cin = known_last(class, self.base.name(), shape)?;
        if cin % self.groups != 0 || !self.filters.is_multiple_of(self.groups) {
            return Err(Error::invalid(
                class,
                format!(
                    "layer '{}': {cin} input channels and {} filters must divide by groups={}",
                    self.base.name(),
                    self.filters,
                    self.groups
                ),
            ));
        }
        let mut kshape = self.kernel_size.clone();
        let kname = match self.kind {
            Kind::Conv1D | Kind::Conv2D => {
                kshape.extend([cin / self.groups, self.filters]);
                "kernel"
            }
            Kind::Conv2DTranspose => {
                kshape.extend([self.filters, cin]);
                "kernel"
            }
            Kind::Depthwise | Kind::Separable => {
                kshape.extend([cin, self.depth_multiplier]);
                if self.kind == Kind::Depthwise {
                    "kernel"
                } else {
                    "depthwise_kernel"
                }
            }
        };
        let o = &self.kernel_options;
        let k = o.create(&self.base, kname, &kshape)?;
        let _ = self.kernel.set(k);
        if self.kind == Kind::Separable {
            let o = &self.pointwise_options;
            let p = o.create(
                &self.base,
                "pointwise_kernel",
                &[1, 1, cin * self.depth_multiplier, self.filters],
            )?;
            let _ = self.pointwise.set(p);
        }
        if self.use_bias {
            let o = &self.bias_options;
            let b = o.create(&self.base, "bias", &[self.out_channels(cin)])?;
            let _ = self.bias.set(b);
        }
        Ok(())
    }

    fn call(&self, x: &Tensor) -> Result<Tensor> {
        let kernel = self
            .kernel
            .get()
            .ok_or_else(|| self.base.not_built())?
            .value();
        let y = match self.kind {
            Kind::Conv1D if self.causal => {
                let left = self.dilation[0] * (self.kernel_size[0] - 1);
                let padded = x.pad(&[(0, 0), (left, 0), (0, 0)], PadMode::Constant(0.0))?;
                padded.conv1d(&kernel, self.strides[0], Padding::Valid, self.dilation[0])?
            }
            Kind::Conv1D => x.conv1d(&kernel, self.strides[0], self.padding, self.dilation[0])?,
            Kind::Conv2D => x.conv2d(
                &kernel,
                (self.strides[0], self.strides[1]),
                self.padding,
                (self.dilation[0], self.dilation[1]),
            )?,
            Kind::Conv2DTranspose => {
                if x.rank() != 4 {
                    return Err(Error::invalid(
                        "Conv2DTranspose",
                        format!(
                            "layer '{}' expects NHWC input, got {:?}",
                            self.base.name(),
                            x.shape()
                        ),
                    ));
                }
                let oh = self.transpose_len(Some(x.shape()[1]), 0).unwrap_or(0);
                let ow = self.transpose_len(Some(x.shape()[2]), 1).unwrap_or(0);
                x.conv2d_transpose(
                    &kernel,
                    (oh, ow),
                    (self.strides[0], self.strides[1]),
                    self.padding,
                    (self.dilation[0], self.dilation[1]),
                )?
            }
            Kind::Depthwise | Kind::Separable => {
                let d = x.depthwise_conv2d(
                    &kernel,
                    (self.strides[0], self.strides[1]),
                    self.padding,
                    (self.dilation[0], self.dilation[1]),
                )?;
                match self.pointwise.get() {
                    Some(p) => d.conv2d(&p.value(), (1, 1), Padding::Valid, (1, 1))?,
                    None => d,
                }
            }
        };
        let y = match self.bias.get() {
            Some(b) => y.add(&b.value())?,
            None => y,
        };
        self.activation.apply(&y)
    }

    fn spec(&self, input: &TensorSpec) -> Result<Vec<TensorSpec>> {
        let class = self.kind.class();
        let s = &input.shape;
        if s.len() != self.kind.spatial() + 2 {
            return Err(Error::invalid(
                class,
                format!(
                    "layer '{}' expects inputs of rank {}, got {}",
                    self.base.name(),
                    self.kind.spatial() + 2,
                    format_dims(s)
                ),
            ));
        }
        let cin = known_last(class, self.base.name(), s)?;
        let mut out = vec![s[0]];
        for i in 0..self.kind.spatial() {
            out.push(if self.kind == Kind::Conv2DTranspose {
                self.transpose_len(s[i + 1], i)
            } else {
                window_output(
                    s[i + 1],
                    self.kernel_size[i],
                    self.strides[i],
                    self.dilation[i],
                    self.padding,
                )
            });
        }
        out.push(Some(self.out_channels(cin)));
        Ok(vec![TensorSpec::new(out, DType::F32)])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        if matches!(self.kind, Kind::Depthwise | Kind::Separable) {
            m.insert(
                "depth_multiplier".into(),
                Value::from(self.depth_multiplier),
            );
        }
        if self.kind != Kind::Depthwise {
            m.insert("filters".into(), Value::from(self.filters));
        }
        m.insert("kernel_size".into(), ints(&self.kernel_size));
        m.insert("strides".into(), ints(&self.strides));
        let padding = if self.causal {
            "causal"
        } else {
            padding_name(self.padding)
        };
        m.insert("padding".into(), Value::from(padding));
        if self.kind == Kind::Conv2DTranspose {
            m.insert("output_padding".into(), Value::Null);
        }
        m.insert("data_format".into(), Value::from("channels_last"));
        m.insert("dilation_rate".into(), ints(&self.dilation));
        if matches!(self.kind, Kind::Conv1D | Kind::Conv2D) {
            m.insert("groups".into(), Value::from(self.groups));
        }
        m.insert("activation".into(), Value::from(self.activation.name()));
        m.insert("use_bias".into(), Value::from(self.use_bias));
        let (kp, k) = match self.kind {
            Kind::Depthwise | Kind::Separable => ("depthwise", &self.kernel_options),
            _ => ("kernel", &self.kernel_options),
        };
        let mut opts: Vec<(&str, &WeightOptions)> = vec![(kp, k)];
        if self.kind == Kind::Separable {
            opts.push(("pointwise", &self.pointwise_options));
        }
        opts.push(("bias", &self.bias_options));
        super::common::write_weight_options(
            &mut m,
            &opts,
            &[],
            &[("activity_regularizer", Value::Null)],
        );
        m
    }
}

macro_rules! conv_layer {
    ($ty:ident, $kind:expr, $doc:literal) => {
        #[doc = $doc]
        pub struct $ty(ConvCore);

        impl $ty {
            /// Rebuilds the layer from its Keras config.
            pub fn from_config(config: &Value) -> Result<Self> {
                Ok($ty(ConvCore::from_config($kind, config)?))
            }

            /// Gives the layer a name.
            pub fn name(mut self, name: &str) -> Self {
                self.0.base.set_name(name);
                self
            }

            /// Sets the strides.
            pub fn strides(mut self, strides: &[usize]) -> Self {
                let n = $kind.spatial();
                self.0.strides = if strides.len() == 1 {
                    vec![strides[0]; n]
                } else {
                    strides.to_vec()
                };
                self
            }

            /// Sets the dilation rate.
            pub fn dilation_rate(mut self, d: &[usize]) -> Self {
                let n = $kind.spatial();
                self.0.dilation = if d.len() == 1 {
                    vec![d[0]; n]
                } else {
                    d.to_vec()
                };
                self
            }

            /// `"valid"` (default) or `"same"` padding.
            pub fn padding(mut self, p: Padding) -> Self {
                self.0.padding = p;
                self
            }

            /// Sets the activation by Keras name. An unknown name makes building the
            /// layer fail with an error naming it.
            pub fn activation(mut self, name: &str) -> Self {
                match Activation::from_name(name) {
                    Ok(a) => self.0.activation = a,
                    Err(e) => self.0.base.reject_option(e.to_string()),
                }
                self
            }

            /// Whether to add a bias.
            pub fn use_bias(mut self, on: bool) -> Self {
                self.0.use_bias = on;
                self
            }

            /// Sets the kernel (depthwise kernel) initializer.
            pub fn kernel_initializer(mut self, init: Initializer) -> Self {
                self.0.kernel_options.initializer = init;
                self
            }

            /// Sets the kernel regularizer.
            pub fn kernel_regularizer(mut self, r: crate::regularizers::Regularizer) -> Self {
                self.0.kernel_options.regularizer = Some(r);
                self
            }
        }

        super::newtype_layer!($ty);
    };
}

conv_layer!(
    Conv1D,
    Kind::Conv1D,
    "1-D convolution over `(batch, steps, channels)` (`keras.layers.Conv1D`)."
);
conv_layer!(
    Conv2D,
    Kind::Conv2D,
    "2-D convolution over NHWC images (`keras.layers.Conv2D`)."
);
conv_layer!(
    Conv2DTranspose,
    Kind::Conv2DTranspose,
    "Transposed 2-D convolution (`keras.layers.Conv2DTranspose`); kernel `(kh, kw, filters, in)`."
);
conv_layer!(
    DepthwiseConv2D,
    Kind::Depthwise,
    "Depthwise 2-D convolution (`keras.layers.DepthwiseConv2D`); kernel `(kh, kw, in, multiplier)`."
);
conv_layer!(
    SeparableConv2D,
    Kind::Separable,
    "Depthwise then pointwise 2-D convolution (`keras.layers.SeparableConv2D`)."
);

impl Conv1D {
    /// `Conv1D(filters, kernel_size)` with Keras's defaults.
    pub fn new(filters: usize, kernel_size: usize) -> Self {
        Conv1D(ConvCore::new(Kind::Conv1D, filters, &[kernel_size]))
    }

    /// Sets the number of groups (grouped convolution).
    pub fn groups(mut self, groups: usize) -> Self {
        self.0.groups = groups;
        self
    }
}

impl Conv2D {
    /// `Conv2D(filters, kernel_size)` with Keras's defaults; `kernel_size` is one or two ints.
    pub fn new(filters: usize, kernel_size: &[usize]) -> Self {
        Conv2D(ConvCore::new(Kind::Conv2D, filters, kernel_size))
    }

    /// Sets the number of groups (grouped convolution).
    pub fn groups(mut self, groups: usize) -> Self {
        self.0.groups = groups;
        self
    }
}

impl Conv2DTranspose {
    /// `Conv2DTranspose(filters, kernel_size)` with Keras's defaults.
    pub fn new(filters: usize, kernel_size: &[usize]) -> Self {
        Conv2DTranspose(ConvCore::new(Kind::Conv2DTranspose, filters, kernel_size))
    }
}

impl DepthwiseConv2D {
    /// `DepthwiseConv2D(kernel_size)` with Keras's defaults.
    pub fn new(kernel_size: &[usize]) -> Self {
        DepthwiseConv2D(ConvCore::new(Kind::Depthwise, 0, kernel_size))
    }

    /// Output channels per input channel.
    pub fn depth_multiplier(mut self, m: usize) -> Self {
        self.0.depth_multiplier = m;
        self
    }
}

impl SeparableConv2D {
    /// `SeparableConv2D(filters, kernel_size)` with Keras's defaults.
    pub fn new(filters: usize, kernel_size: &[usize]) -> Self {
        SeparableConv2D(ConvCore::new(Kind::Separable, filters, kernel_size))
    }

    /// Output channels per input channel of the depthwise step.
    pub fn depth_multiplier(mut self, m: usize) -> Self {
        self.0.depth_multiplier = m;
        self
    }
}
