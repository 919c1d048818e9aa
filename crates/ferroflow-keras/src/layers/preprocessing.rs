//! Preprocessing layers that belong in the saved model: `Rescaling` and `Normalization`
//! (with `adapt`), so a deployed model takes raw inputs.

use crate::config::{ConfigReader, Map};
use crate::initializers::Initializer;
use crate::layer::{expect_inputs, CallContext, Layer, LayerBase, TensorSpec};
use ferroflow_core::{DType, Error, Result, Tensor, Variable};
use serde_json::Value;
use std::sync::OnceLock;

/// `x * scale + offset` (`keras.layers.Rescaling`).
pub struct Rescaling {
    base: LayerBase,
    scale: f64,
    offset: f64,
}

impl Rescaling {
    /// Rescaling by `scale`, then adding `offset`.
    pub fn new(scale: f64, offset: f64) -> Self {
        Rescaling {
            base: LayerBase::new("Rescaling", None),
            scale,
            offset,
        }
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Rescaling", config)?;
        let mut l = Rescaling::new(r.f64_or("scale", 1.0)?, r.f64_or("offset", 0.0)?);
        l.base = LayerBase::from_reader("Rescaling", &r);
        r.finish()?;
        Ok(l)
    }
}

super::layer_boilerplate!(Rescaling, "Rescaling");

impl Layer for Rescaling {
    super::layer_identity!("Rescaling");

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = if inputs[0].dtype() == DType::F32 {
            inputs[0].clone()
        } else {
            inputs[0].cast(DType::F32)?
        };
        let y = x.mul_scalar(self.scale)?;
        let y = if self.offset != 0.0 {
            y.add_scalar(self.offset)?
        } else {
            y
        };
        Ok(vec![y])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        Ok(vec![TensorSpec::new(inputs[0].shape.clone(), DType::F32)])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("scale".into(), Value::from(self.scale));
        m.insert("offset".into(), Value::from(self.offset));
        m
    }
}

/// Feature-wise standardisation `(x - mean) / max(sqrt(var), 1e-7)`
/// (`keras.layers.Normalization`), with statistics given or learned by [`Normalization::adapt`].
pub struct Normalization {
    base: LayerBase,
    axes: Vec<i64>,
    invert: bool,
    fixed: Option<(Vec<f64>, Vec<f64>)>,
    mean: OnceLock<Variable>,
    variance: OnceLock<Variable>,
    count: OnceLock<Variable>,
}

const EPSILON: f64 = 1e-7;

impl Normalization {
    /// Normalisation over the last axis, statistics to be adapted.
    pub fn new() -> Self {
        Normalization {
            base: LayerBase::new("Normalization", None),
            axes: vec![-1],
            invert: false,
            fixed: None,
            mean: OnceLock::new(),
            variance: OnceLock::new(),
            count: OnceLock::new(),
        }
    }

    /// Normalisation with known per-feature mean and variance.
    pub fn with_stats(mean: Vec<f64>, variance: Vec<f64>) -> Result<Self> {
        if mean.len() != variance.len() {
            return Err(Error::invalid(
                "Normalization",
                format!(
                    "mean has {} values, variance {}",
                    mean.len(),
                    variance.len()
                ),
            ));
        }
        let mut n = Normalization::new();
        n.fixed = Some((mean, variance));
        Ok(n)
    }

    /// Inverts the normalisation (`invert=True`).
    pub fn invert(mut self, on: bool) -> Self {
        self.invert = on;
        self
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Normalization", config)?;
        let mut l = Normalization::new();
        l.base = LayerBase::from_reader("Normalization", &r);
        l.axes = r.i64_list("axis")?.unwrap_or(vec![-1]);
        l.invert = r.bool_or("invert", false)?;
        let vec_of = |k: &str| -> Result<Option<Vec<f64>>> {
            match r.raw(k) {
                None => Ok(None),
                Some(Value::Number(n)) => Ok(Some(vec![n.as_f64().unwrap_or(0.0)])),
                Some(Value::Array(a)) => Ok(Some(
                    a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect(),
                )),
                Some(v) => Err(Error::invalid(
                    "Normalization",
                    format!("option '{k}': cannot read {v}"),
                )),
            }
        };
        if let (Some(m), Some(v)) = (vec_of("mean")?, vec_of("variance")?) {
            l.fixed = Some((m, v));
        }
        r.finish()?;
        Ok(l)
    }

    fn axis(&self, rank: usize) -> Result<usize> {
        if self.axes.len() != 1 {
            return Err(Error::invalid(
                "Normalization",
                format!(
                    "layer '{}': only one feature axis is supported, got {:?}",
                    self.base.name(),
                    self.axes
                ),
            ));
        }
        let a = self.axes[0];
        let a = if a < 0 { a + rank as i64 } else { a };
        if a <= 0 || a as usize >= rank {
            return Err(Error::invalid(
                "Normalization",
                format!(
                    "layer '{}': axis {} invalid for inputs of rank {rank}",
                    self.base.name(),
                    self.axes[0]
                ),
            ));
        }
        Ok(a as usize)
    }

    /// Computes the mean and variance of `data` (samples along the first axis) and stores
    /// them (`layer.adapt(data)`).
    pub fn adapt(&self, data: &Tensor) -> Result<()> {
        let spec = TensorSpec::of_batch(data);
        crate::layer::LayerExt::ensure_built(self, &[spec])?;
        let axis = self.axis(data.rank())?;
        let x = data.cast(DType::F64)?;
        let reduce: Vec<isize> = (0..data.rank() as isize)
            .filter(|&i| i != axis as isize)
            .collect();
        let (mean, var) = x.moments(reduce.clone(), false)?;
        let n: usize = reduce.iter().map(|&i| data.shape()[i as usize]).product();
        let (Some(mv), Some(vv)) = (self.mean.get(), self.variance.get()) else {
            return Err(Error::invalid(
                "Normalization",
                format!(
                    "layer '{}' was created with fixed statistics; adapt is not available",
                    self.base.name()
                ),
            ));
        };
        mv.assign(&mean.cast(DType::F32)?)?;
        vv.assign(&var.cast(DType::F32)?)?;
        if let Some(c) = self.count.get() {
            c.assign(&Tensor::scalar(n as i64))?;
        }
        Ok(())
    }
}

impl Default for Normalization {
    fn default() -> Self {
        Self::new()
    }
}

super::layer_boilerplate!(Normalization, "Normalization");

impl Layer for Normalization {
    super::layer_identity!("Normalization");

    fn build(&self, inputs: &[TensorSpec]) -> Result<()> {
        let s = &inputs[0].shape;
        let axis = self.axis(s.len())?;
        let c = s[axis].ok_or_else(|| {
            Error::invalid(
                "Normalization",
                format!(
                    "layer '{}': the feature axis must be known",
                    self.base.name()
                ),
            )
        })?;
        if let Some((m, v)) = &self.fixed {
            if (m.len() != c && m.len() != 1) || (v.len() != c && v.len() != 1) {
                return Err(Error::invalid(
                    "Normalization",
                    format!(
                        "layer '{}': {} features but mean/variance of {}/{}",
                        self.base.name(),
                        c,
                        m.len(),
                        v.len()
                    ),
                ));
            }
            return Ok(());
        }
        let _ = self.mean.set(self.base.add_weight(
            "mean",
            &[c],
            &Initializer::Zeros,
            false,
            None,
            None,
        )?);
        let _ = self.variance.set(self.base.add_weight(
            "variance",
            &[c],
            &Initializer::Ones,
            false,
            None,
            None,
        )?);
        let _ = self.count.set(self.base.add_weight_of(
            "count",
            &[],
            DType::I64,
            &Initializer::Zeros,
            false,
            None,
            None,
        )?);
        Ok(())
    }

    fn adapt(&self, data: &Tensor) -> Result<()> {
        Normalization::adapt(self, data)
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = if inputs[0].dtype() == DType::F32 {
            inputs[0].clone()
        } else {
            inputs[0].cast(DType::F32)?
        };
        let axis = self.axis(x.rank())?;
        let c = x.shape()[axis];
        let bshape: Vec<usize> = (0..x.rank())
            .map(|i| if i == axis { c } else { 1 })
            .collect();
        let (mean, var) = match &self.fixed {
            Some((m, v)) => {
                let expand = |s: &Vec<f64>| -> Result<Tensor> {
                    let full: Vec<f32> = if s.len() == 1 {
                        vec![s[0] as f32; c]
                    } else {
                        s.iter().map(|&z| z as f32).collect()
                    };
                    Tensor::from_vec(full, &[c])
                };
                (expand(m)?, expand(v)?)
            }
            None => (
                self.mean
                    .get()
                    .ok_or_else(|| self.base.not_built())?
                    .read_untracked(),
                self.variance
                    .get()
                    .ok_or_else(|| self.base.not_built())?
                    .read_untracked(),
            ),
        };
        let mean = mean.reshape_to(&bshape)?;
        let std = var
            .reshape_to(&bshape)?
            .sqrt()?
            .maximum(&Tensor::scalar(EPSILON as f32))?;
        let y = if self.invert {
            x.mul(&std)?.add(&mean)?
        } else {
            x.sub(&mean)?.div(&std)?
        };
        Ok(vec![y])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        Ok(vec![TensorSpec::new(inputs[0].shape.clone(), DType::F32)])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("axis".into(), Value::from(self.axes.clone()));
        m.insert("invert".into(), Value::from(self.invert));
        let (mean, var) = match &self.fixed {
            Some((a, b)) => (Value::from(a.clone()), Value::from(b.clone())),
            None => (Value::Null, Value::Null),
        };
        m.insert("mean".into(), mean);
        m.insert("variance".into(), var);
        m
    }
}
