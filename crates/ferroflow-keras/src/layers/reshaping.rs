//! Layers that move data around without weights: `Flatten`, `Reshape`, `Permute`,
//! `RepeatVector`, `ZeroPadding2D`, `UpSampling2D`.

use super::common::{expect_rank, require_channels_last};
use crate::config::{ConfigReader, Map};
use crate::layer::{expect_inputs, format_dims, CallContext, Dims, Layer, LayerBase, TensorSpec};
use ferroflow_core::ops::remap::PadMode;
use ferroflow_core::{Error, Result, Tensor};
use serde_json::Value;

fn spec(shape: Dims, like: &TensorSpec) -> Vec<TensorSpec> {
    vec![TensorSpec::new(shape, like.dtype)]
}

/// Flattens all but the batch dimension (`keras.layers.Flatten`).
pub struct Flatten {
    base: LayerBase,
}

impl Flatten {
    /// A flatten layer.
    pub fn new() -> Self {
        Flatten {
            base: LayerBase::new("Flatten", None),
        }
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Flatten", config)?;
        require_channels_last(&r)?;
        r.finish()?;
        Ok(Flatten {
            base: LayerBase::from_reader("Flatten", &r),
        })
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Self::new()
    }
}

super::layer_boilerplate!(Flatten, "Flatten");

impl Layer for Flatten {
    super::layer_identity!("Flatten");

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        if x.rank() < 2 {
            return Ok(vec![x.reshape(&[-1, 1])?]);
        }
        Ok(vec![x.flatten_from(1)?])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let s = &inputs[0].shape;
        let rest: Option<usize> = s.iter().skip(1).try_fold(1usize, |a, d| d.map(|d| a * d));
        Ok(spec(vec![s.first().copied().flatten(), rest], &inputs[0]))
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("data_format".into(), Value::from("channels_last"));
        m
    }
}

/// Reshapes each sample to `target_shape` (one entry may be -1) (`keras.layers.Reshape`).
pub struct Reshape {
    base: LayerBase,
    target: Vec<i64>,
}

impl Reshape {
    /// A reshape to `target_shape` (excluding the batch dimension).
    pub fn new(target_shape: &[i64]) -> Result<Self> {
        if target_shape.iter().filter(|&&d| d == -1).count() > 1
            || target_shape.iter().any(|&d| d < -1)
        {
            return Err(Error::invalid(
                "Reshape",
                format!("target_shape {target_shape:?} may hold one -1 and no other negative"),
            ));
        }
        Ok(Reshape {
            base: LayerBase::new("Reshape", None),
            target: target_shape.to_vec(),
        })
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Reshape", config)?;
        let target = r
            .i64_list("target_shape")?
            .ok_or_else(|| Error::invalid("Reshape", "option 'target_shape': missing"))?;
        let mut l = Reshape::new(&target)?;
        l.base = LayerBase::from_reader("Reshape", &r);
        r.finish()?;
        Ok(l)
    }

    fn resolve(&self, per_sample: Option<usize>) -> Result<Vec<Option<usize>>> {
        let known: usize = self.target.iter().filter(|&&d| d >= 0).product::<i64>() as usize;
        self.target
            .iter()
            .map(|&d| {
                if d >= 0 {
                    Ok(Some(d as usize))
                } else {
                    match per_sample {
                        None => Ok(None),
                        Some(n) if known > 0 && n % known == 0 => Ok(Some(n / known)),
                        Some(n) => Err(Error::invalid(
                            "Reshape",
                            format!(
                                "layer '{}': cannot reshape {n} values per sample to {:?}",
                                self.base.name(),
                                self.target
                            ),
                        )),
                    }
                }
            })
            .collect()
    }
}

super::layer_boilerplate!(Reshape, "Reshape");

impl Layer for Reshape {
    super::layer_identity!("Reshape");

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        let per: usize = x.shape().iter().skip(1).product();
        let dims = self.resolve(Some(per))?;
        let mut shape = vec![x.shape().first().copied().unwrap_or(1) as isize];
        shape.extend(dims.iter().map(|d| d.unwrap_or(0) as isize));
        let want: isize = shape.iter().skip(1).product();
        if want as usize != per {
            return Err(Error::invalid(
                "Reshape",
                format!(
                    "layer '{}': input shape {:?} cannot be reshaped to {:?}",
                    self.base.name(),
                    x.shape(),
                    self.target
                ),
            ));
        }
        Ok(vec![x.reshape(&shape)?])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let s = &inputs[0].shape;
        let per: Option<usize> = s.iter().skip(1).try_fold(1usize, |a, d| d.map(|d| a * d));
        let dims = self.resolve(per)?;
        if let (Some(p), Some(t)) = (per, dims.iter().try_fold(1usize, |a, d| d.map(|d| a * d))) {
            if p != t {
                return Err(Error::invalid(
                    "Reshape",
                    format!(
                        "layer '{}': input shape {} cannot be reshaped to {:?}",
                        self.base.name(),
                        format_dims(s),
                        self.target
                    ),
                ));
            }
        }
        let mut shape = vec![s.first().copied().flatten()];
        shape.extend(dims);
        Ok(spec(shape, &inputs[0]))
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert(
            "target_shape".into(),
            Value::Array(self.target.iter().map(|&d| Value::from(d)).collect()),
        );
        m
    }
}

/// Permutes the non-batch axes; `dims` count from 1 (`keras.layers.Permute`).
pub struct Permute {
    base: LayerBase,
    dims: Vec<usize>,
}

impl Permute {
    /// A permutation of axes `1..=n`.
    pub fn new(dims: &[usize]) -> Result<Self> {
        let mut sorted = dims.to_vec();
        sorted.sort_unstable();
        if sorted != (1..=dims.len()).collect::<Vec<_>>() {
            return Err(Error::invalid(
                "Permute",
                format!("dims {dims:?} must be a permutation of 1..={}", dims.len()),
            ));
        }
        Ok(Permute {
            base: LayerBase::new("Permute", None),
            dims: dims.to_vec(),
        })
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Permute", config)?;
        let dims = r.i64_list("dims")?.unwrap_or_default();
        let mut l = Permute::new(&dims.iter().map(|&d| d.max(0) as usize).collect::<Vec<_>>())?;
        l.base = LayerBase::from_reader("Permute", &r);
        r.finish()?;
        Ok(l)
    }
}

super::layer_boilerplate!(Permute, "Permute");

impl Layer for Permute {
    super::layer_identity!("Permute");

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let mut perm = vec![0];
        perm.extend(&self.dims);
        Ok(vec![inputs[0].transpose(&perm)?])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let s = &inputs[0].shape;
        expect_rank("Permute", self.base.name(), s, self.dims.len() + 1)?;
        let mut shape = vec![s[0]];
        shape.extend(self.dims.iter().map(|&d| s[d]));
        Ok(spec(shape, &inputs[0]))
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("dims".into(), crate::config::ints(&self.dims));
        m
    }
}

/// Repeats a `(batch, features)` input `n` times: `(batch, n, features)`.
pub struct RepeatVector {
    base: LayerBase,
    n: usize,
}

impl RepeatVector {
    /// Repeats `n` times.
    pub fn new(n: usize) -> Self {
        RepeatVector {
            base: LayerBase::new("RepeatVector", None),
            n,
        }
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("RepeatVector", config)?;
        let mut l = RepeatVector::new(r.usize_req("n")?);
        l.base = LayerBase::from_reader("RepeatVector", &r);
        r.finish()?;
        Ok(l)
    }
}

super::layer_boilerplate!(RepeatVector, "RepeatVector");

impl Layer for RepeatVector {
    super::layer_identity!("RepeatVector");

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        if x.rank() != 2 {
            return Err(Error::invalid(
                "RepeatVector",
                format!(
                    "layer '{}' expects rank-2 inputs, got {:?}",
                    self.base.name(),
                    x.shape()
                ),
            ));
        }
        let (b, f) = (x.shape()[0], x.shape()[1]);
        Ok(vec![x
            .expand_dims(1)?
            .broadcast_to(&[b, self.n, f])?
            .contiguous()])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let s = &inputs[0].shape;
        expect_rank("RepeatVector", self.base.name(), s, 2)?;
        Ok(spec(vec![s[0], Some(self.n), s[1]], &inputs[0]))
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("n".into(), Value::from(self.n));
        m
    }
}

/// Pads rows and columns of NHWC images with zeros (`keras.layers.ZeroPadding2D`).
pub struct ZeroPadding2D {
    base: LayerBase,
    padding: [(usize, usize); 2],
}

impl ZeroPadding2D {
    /// Padding `((top, bottom), (left, right))`.
    pub fn new(padding: [(usize, usize); 2]) -> Self {
        ZeroPadding2D {
            base: LayerBase::new("ZeroPadding2D", None),
            padding,
        }
    }

    /// Rebuilds from a Keras config (`padding` as an int, two ints or two pairs).
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("ZeroPadding2D", config)?;
        require_channels_last(&r)?;
        let bad = || {
            Error::invalid(
                "ZeroPadding2D",
                "option 'padding': expected int, 2 ints or 2 pairs",
            )
        };
        let p = match r.raw("padding") {
            None => [(1, 1), (1, 1)],
            Some(Value::Number(n)) => {
                let v = n.as_u64().ok_or_else(bad)? as usize;
                [(v, v), (v, v)]
            }
            Some(Value::Array(a)) if a.len() == 2 => {
                let mut out = [(0, 0); 2];
                for (i, e) in a.iter().enumerate() {
                    out[i] = match e {
                        Value::Number(n) => {
                            let v = n.as_u64().ok_or_else(bad)? as usize;
                            (v, v)
                        }
                        Value::Array(pair) if pair.len() == 2 => (
                            pair[0].as_u64().ok_or_else(bad)? as usize,
                            pair[1].as_u64().ok_or_else(bad)? as usize,
                        ),
                        _ => return Err(bad()),
                    };
                }
                out
            }
            Some(_) => return Err(bad()),
        };
        let mut l = ZeroPadding2D::new(p);
        l.base = LayerBase::from_reader("ZeroPadding2D", &r);
        r.finish()?;
        Ok(l)
    }
}

super::layer_boilerplate!(ZeroPadding2D, "ZeroPadding2D");

impl Layer for ZeroPadding2D {
    super::layer_identity!("ZeroPadding2D");

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let [h, w] = self.padding;
        Ok(vec![
            inputs[0].pad(&[(0, 0), h, w, (0, 0)], PadMode::Constant(0.0))?
        ])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let s = &inputs[0].shape;
        expect_rank("ZeroPadding2D", self.base.name(), s, 4)?;
        let [h, w] = self.padding;
        Ok(spec(
            vec![
                s[0],
                s[1].map(|d| d + h.0 + h.1),
                s[2].map(|d| d + w.0 + w.1),
                s[3],
            ],
            &inputs[0],
        ))
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        let [h, w] = self.padding;
        m.insert(
            "padding".into(),
            serde_json::json!([[h.0, h.1], [w.0, w.1]]),
        );
        m.insert("data_format".into(), Value::from("channels_last"));
        m
    }
}

/// Repeats rows and columns of NHWC images (`keras.layers.UpSampling2D`, nearest).
pub struct UpSampling2D {
    base: LayerBase,
    size: (usize, usize),
}

impl UpSampling2D {
    /// Upsampling by `(rows, cols)`.
    pub fn new(size: (usize, usize)) -> Self {
        UpSampling2D {
            base: LayerBase::new("UpSampling2D", None),
            size,
        }
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("UpSampling2D", config)?;
        require_channels_last(&r)?;
        r.require("interpolation", &Value::from("nearest"))?;
        let s = r.tuple_or("size", 2, &[2, 2])?;
        let mut l = UpSampling2D::new((s[0], s[1]));
        l.base = LayerBase::from_reader("UpSampling2D", &r);
        r.finish()?;
        Ok(l)
    }
}

super::layer_boilerplate!(UpSampling2D, "UpSampling2D");

impl Layer for UpSampling2D {
    super::layer_identity!("UpSampling2D");

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        if x.rank() != 4 {
            return Err(Error::invalid(
                "UpSampling2D",
                format!(
                    "layer '{}' expects NHWC input, got {:?}",
                    self.base.name(),
                    x.shape()
                ),
            ));
        }
        let [n, h, w, c] = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
        let (sh, sw) = self.size;
        let y = x
            .reshape_to(&[n, h, 1, w, 1, c])?
            .broadcast_to(&[n, h, sh, w, sw, c])?
            .contiguous()
            .reshape_to(&[n, h * sh, w * sw, c])?;
        Ok(vec![y])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let s = &inputs[0].shape;
        expect_rank("UpSampling2D", self.base.name(), s, 4)?;
        Ok(spec(
            vec![
                s[0],
                s[1].map(|d| d * self.size.0),
                s[2].map(|d| d * self.size.1),
                s[3],
            ],
            &inputs[0],
        ))
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert(
            "size".into(),
            crate::config::ints(&[self.size.0, self.size.1]),
        );
        m.insert("data_format".into(), Value::from("channels_last"));
        m.insert("interpolation".into(), Value::from("nearest"));
        m
    }
}
