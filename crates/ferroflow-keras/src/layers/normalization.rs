//! `BatchNormalization` (moving statistics, training flag) and `LayerNormalization`.

use super::common::WeightOptions;
use crate::config::{ConfigReader, Map};
use crate::initializers::Initializer;
use crate::layer::{expect_inputs, CallContext, Layer, LayerBase, TensorSpec};
use crate::state_updates;
use ferroflow_core::autodiff::pause_recording;
use ferroflow_core::{Error, Result, Tensor, Variable};
use serde_json::Value;
use std::sync::OnceLock;

fn resolve_axis(class: &'static str, name: &str, axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a as usize >= rank {
        return Err(Error::invalid(
            class,
            format!("layer '{name}': axis {axis} out of range for inputs of rank {rank}"),
        ));
    }
    Ok(a as usize)
}

/// Shape `[1, .., c, .., 1]` that broadcasts a per-channel vector along `axis`.
fn channel_shape(rank: usize, axis: usize, c: usize) -> Vec<usize> {
    (0..rank).map(|i| if i == axis { c } else { 1 }).collect()
}

/// Batch normalisation (`keras.layers.BatchNormalization`): batch statistics in training
/// (updating the moving mean and variance with `momentum`), moving statistics otherwise.
/// A frozen layer (`trainable=false`) always runs in inference mode, as in Keras 3.
pub struct BatchNormalization {
    base: LayerBase,
    axis: i64,
    momentum: f64,
    epsilon: f64,
    center: bool,
    scale: bool,
    gamma_options: WeightOptions,
    beta_options: WeightOptions,
    moving_mean_init: Initializer,
    moving_variance_init: Initializer,
    gamma: OnceLock<Variable>,
    beta: OnceLock<Variable>,
    moving_mean: OnceLock<Variable>,
    moving_variance: OnceLock<Variable>,
}

impl BatchNormalization {
    /// Keras's defaults: axis -1, momentum 0.99, epsilon 1e-3, center and scale.
    pub fn new() -> Self {
        BatchNormalization {
            base: LayerBase::new("BatchNormalization", None),
            axis: -1,
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            gamma_options: WeightOptions::new(Initializer::Ones),
            beta_options: WeightOptions::new(Initializer::Zeros),
            moving_mean_init: Initializer::Zeros,
            moving_variance_init: Initializer::Ones,
            gamma: OnceLock::new(),
            beta: OnceLock::new(),
            moving_mean: OnceLock::new(),
            moving_variance: OnceLock::new(),
        }
    }

    /// Sets the momentum of the moving statistics.
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = m;
        self
    }

    /// Sets epsilon.
    pub fn epsilon(mut self, e: f64) -> Self {
        self.epsilon = e;
        self
    }

    /// Sets the normalised axis.
    pub fn axis(mut self, axis: i64) -> Self {
        self.axis = axis;
        self
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("BatchNormalization", config)?;
        let mut l = BatchNormalization::new();
        l.base = LayerBase::from_reader("BatchNormalization", &r);
        l.axis = match r.i64_list("axis")?.as_deref() {
            None => -1,
            Some([a]) => *a,
            Some(other) => {
                return Err(Error::invalid(
                    "BatchNormalization",
                    format!("option 'axis': one axis supported, got {other:?}"),
                ))
            }
        };
        l.momentum = r.f64_or("momentum", 0.99)?;
        l.epsilon = r.f64_or("epsilon", 1e-3)?;
        l.center = r.bool_or("center", true)?;
        l.scale = r.bool_or("scale", true)?;
        l.gamma_options = WeightOptions::read(&r, "gamma", Initializer::Ones)?;
        l.beta_options = WeightOptions::read(&r, "beta", Initializer::Zeros)?;
        if let Some(v) = r.raw("moving_mean_initializer") {
            l.moving_mean_init = Initializer::from_json(v)?;
        }
        if let Some(v) = r.raw("moving_variance_initializer") {
            l.moving_variance_init = Initializer::from_json(v)?;
        }
        r.require("synchronized", &Value::from(false))?;
        r.require("renorm", &Value::from(false))?;
        r.raw("renorm_clipping");
        r.raw("renorm_momentum");
        r.finish()?;
        Ok(l)
    }

    /// The moving mean and variance, once built.
    pub fn moving_stats(&self) -> Option<(Tensor, Tensor)> {
        Some((
            self.moving_mean.get()?.read_untracked(),
            self.moving_variance.get()?.read_untracked(),
        ))
    }
}

impl Default for BatchNormalization {
    fn default() -> Self {
        Self::new()
    }
}

super::layer_boilerplate!(BatchNormalization, "BatchNormalization");

impl Layer for BatchNormalization {
    super::layer_identity!("BatchNormalization");

    fn build(&self, inputs: &[TensorSpec]) -> Result<()> {
        let s = &inputs[0].shape;
        let axis = resolve_axis("BatchNormalization", self.base.name(), self.axis, s.len())?;
        let c = s[axis].ok_or_else(|| {
            Error::invalid(
                "BatchNormalization",
                format!(
                    "layer '{}': axis {} of the input must be known",
                    self.base.name(),
                    self.axis
                ),
            )
        })?;
        let add = |name: &str, o: &WeightOptions, trainable: bool| {
            self.base.add_weight(
                name,
                &[c],
                &o.initializer,
                trainable,
                o.regularizer,
                o.constraint.clone(),
            )
        };
        if self.scale {
            let _ = self.gamma.set(add("gamma", &self.gamma_options, true)?);
        }
        if self.center {
            let _ = self.beta.set(add("beta", &self.beta_options, true)?);
        }
        let mm = WeightOptions::new(self.moving_mean_init.clone());
        let mv = WeightOptions::new(self.moving_variance_init.clone());
        let _ = self.moving_mean.set(add("moving_mean", &mm, false)?);
        let _ = self
            .moving_variance
            .set(add("moving_variance", &mv, false)?);
        Ok(())
    }

    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        let axis = resolve_axis("BatchNormalization", self.base.name(), self.axis, x.rank())?;
        let c = x.shape()[axis];
        let bshape = channel_shape(x.rank(), axis, c);
        let (mm, mv) = (
            self.moving_mean
                .get()
                .ok_or_else(|| self.base.not_built())?,
            self.moving_variance
                .get()
                .ok_or_else(|| self.base.not_built())?,
        );
        let (mean, var) = if ctx.training && self.base.trainable() {
            let axes: Vec<isize> = (0..x.rank() as isize)
                .filter(|&i| i != axis as isize)
                .collect();
            let (mean, var) = x.moments(axes, false)?;
            {
                let _pause = pause_recording();
                let m = self.momentum;
                let mean_d = mean.clone();
                let var_d = var.clone();
                state_updates::assign(
                    mm,
                    mm.read_untracked()
                        .mul_scalar(m)?
                        .add(&mean_d.mul_scalar(1.0 - m)?)?,
                )?;
                state_updates::assign(
                    mv,
                    mv.read_untracked()
                        .mul_scalar(m)?
                        .add(&var_d.mul_scalar(1.0 - m)?)?,
                )?;
            }
            (mean, var)
        } else {
            (mm.read_untracked(), mv.read_untracked())
        };
        let g = self
            .gamma
            .get()
            .map(|v| v.value().reshape_to(&bshape))
            .transpose()?;
        let b = self
            .beta
            .get()
            .map(|v| v.value().reshape_to(&bshape))
            .transpose()?;
        let y = x.batch_norm(
            &mean.reshape_to(&bshape)?,
            &var.reshape_to(&bshape)?,
            b.as_ref(),
            g.as_ref(),
            self.epsilon,
        )?;
        Ok(vec![y])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        Ok(inputs.to_vec())
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("axis".into(), Value::from(self.axis));
        m.insert("momentum".into(), Value::from(self.momentum));
        m.insert("epsilon".into(), Value::from(self.epsilon));
        m.insert("center".into(), Value::from(self.center));
        m.insert("scale".into(), Value::from(self.scale));
        super::common::write_weight_options(
            &mut m,
            &[("beta", &self.beta_options), ("gamma", &self.gamma_options)],
            &[
                ("moving_mean_initializer", self.moving_mean_init.to_json()),
                (
                    "moving_variance_initializer",
                    self.moving_variance_init.to_json(),
                ),
            ],
            &[],
        );
        m.insert("synchronized".into(), Value::from(false));
        m.insert("renorm".into(), Value::from(false));
        m.insert("renorm_clipping".into(), Value::Null);
        m.insert("renorm_momentum".into(), Value::from(0.99));
        m
    }
}

/// Layer normalisation over the last axes (`keras.layers.LayerNormalization`).
pub struct LayerNormalization {
    base: LayerBase,
    axes: Vec<i64>,
    /// Whether the config was given `axis` as a list (Keras keeps lists as lists).
    axis_list: bool,
    epsilon: f64,
    center: bool,
    scale: bool,
    rms_scaling: bool,
    gamma_options: WeightOptions,
    beta_options: WeightOptions,
    gamma: OnceLock<Variable>,
    beta: OnceLock<Variable>,
}

impl LayerNormalization {
    /// Keras's defaults: axis -1, epsilon 1e-3, center and scale.
    pub fn new() -> Self {
        LayerNormalization {
            base: LayerBase::new("LayerNormalization", None),
            axes: vec![-1],
            axis_list: false,
            epsilon: 1e-3,
            center: true,
            scale: true,
            rms_scaling: false,
            gamma_options: WeightOptions::new(Initializer::Ones),
            beta_options: WeightOptions::new(Initializer::Zeros),
            gamma: OnceLock::new(),
            beta: OnceLock::new(),
        }
    }

    /// Sets epsilon.
    pub fn epsilon(mut self, e: f64) -> Self {
        self.epsilon = e;
        self
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("LayerNormalization", config)?;
        let mut l = LayerNormalization::new();
        l.base = LayerBase::from_reader("LayerNormalization", &r);
        l.axis_list = matches!(r.raw("axis"), Some(Value::Array(_)));
        l.axes = r.i64_list("axis")?.unwrap_or(vec![-1]);
        l.epsilon = r.f64_or("epsilon", 1e-3)?;
        l.center = r.bool_or("center", true)?;
        l.scale = r.bool_or("scale", true)?;
        l.rms_scaling = r.bool_or("rms_scaling", false)?;
        l.gamma_options = WeightOptions::read(&r, "gamma", Initializer::Ones)?;
        l.beta_options = WeightOptions::read(&r, "beta", Initializer::Zeros)?;
        r.finish()?;
        Ok(l)
    }

    /// The normalised axes for inputs of `rank`, sorted.
    fn axes(&self, rank: usize) -> Result<Vec<usize>> {
        let mut a = self
            .axes
            .iter()
            .map(|&x| resolve_axis("LayerNormalization", self.base.name(), x, rank))
            .collect::<Result<Vec<_>>>()?;
        a.sort_unstable();
        a.dedup();
        Ok(a)
    }
}

impl Default for LayerNormalization {
    fn default() -> Self {
        Self::new()
    }
}

super::layer_boilerplate!(LayerNormalization, "LayerNormalization");

impl Layer for LayerNormalization {
    super::layer_identity!("LayerNormalization");

    // Keras's `supports_masking`: the mask passes through.
    fn supports_masking(&self) -> bool {
        true
    }

    fn build(&self, inputs: &[TensorSpec]) -> Result<()> {
        let s = &inputs[0].shape;
        let axes = self.axes(s.len())?;
        let shape = axes
            .iter()
            .map(|&a| {
                s[a].ok_or_else(|| {
                    Error::invalid(
                        "LayerNormalization",
                        format!(
                            "layer '{}': normalised axes must be known",
                            self.base.name()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let add = |name: &str, o: &WeightOptions| o.create(&self.base, name, &shape);
        if self.scale || self.rms_scaling {
            let _ = self.gamma.set(add("gamma", &self.gamma_options)?);
        }
        if self.center && !self.rms_scaling {
            let _ = self.beta.set(add("beta", &self.beta_options)?);
        }
        Ok(())
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        let rank = x.rank();
        let axes = self.axes(rank)?;
        let bshape: Vec<usize> = (0..rank)
            .map(|i| if axes.contains(&i) { x.shape()[i] } else { 1 })
            .collect();
        let g = self
            .gamma
            .get()
            .map(|v| v.value().reshape_to(&bshape))
            .transpose()?;
        let b = self
            .beta
            .get()
            .map(|v| v.value().reshape_to(&bshape))
            .transpose()?;
        let trailing = axes.iter().rev().zip((0..rank).rev()).all(|(a, i)| *a == i);
        if self.rms_scaling {
            let ax: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
            let ms = x.square()?.mean(ax, true)?;
            let y = x.mul(&ms.add_scalar(self.epsilon)?.rsqrt()?)?;
            let y = match &g {
                Some(g) => y.mul(g)?,
                None => y,
            };
            return Ok(vec![y]);
        }
        let y = if trailing {
            let g = g
                .map(|t| t.reshape_to(&x.shape()[rank - axes.len()..]))
                .transpose()?;
            let b = b
                .map(|t| t.reshape_to(&x.shape()[rank - axes.len()..]))
                .transpose()?;
            x.layer_norm(g.as_ref(), b.as_ref(), axes.len(), self.epsilon)?
        } else {
            let ax: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
            let (mean, var) = x.moments(ax, true)?;
            x.batch_norm(&mean, &var, b.as_ref(), g.as_ref(), self.epsilon)?
        };
        Ok(vec![y])
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        Ok(inputs.to_vec())
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        // Keras turns `axis` into a list when the layer is built.
        if self.axes.len() == 1 && !self.axis_list && self.base.built_specs().is_none() {
            m.insert("axis".into(), Value::from(self.axes[0]));
        } else {
            m.insert("axis".into(), Value::from(self.axes.clone()));
        }
        m.insert("epsilon".into(), Value::from(self.epsilon));
        m.insert("center".into(), Value::from(self.center));
        m.insert("scale".into(), Value::from(self.scale));
        m.insert("rms_scaling".into(), Value::from(self.rms_scaling));
        super::common::write_weight_options(
            &mut m,
            &[("beta", &self.beta_options), ("gamma", &self.gamma_options)],
            &[],
            &[],
        );
        m
    }
}
