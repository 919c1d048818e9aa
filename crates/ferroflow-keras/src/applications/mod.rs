//! `keras.applications`: image models with Keras's exact architecture, layer names and
//! arguments, so weights saved by Keras load into them and the other way round.
//!
//! Pretrained weights cannot be downloaded here: `weights` takes the path of a weights file
//! saved by Keras (`model.save_weights("x.weights.h5")`, or the legacy `.h5` files
//! `keras.applications` downloads).

mod efficientnet_v2;
mod mobilenet_v2;
mod resnet;

pub use efficientnet_v2::efficientnet_v2_b0;
pub use mobilenet_v2::mobilenet_v2;
pub use resnet::resnet50;

use crate::layer::LayerRef;
use crate::models::{KerasTensor, Model, SymbolicCall};
use ferroflow_core::{Error, Result};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Global pooling of the last feature map when `include_top` is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// `pooling="avg"`: GlobalAveragePooling2D.
    Avg,
    /// `pooling="max"`: GlobalMaxPooling2D.
    Max,
}

/// The arguments every `keras.applications` constructor takes.
#[derive(Clone, Debug)]
pub struct AppOptions {
    /// Keep the classifier (global pooling, dropout, Dense `predictions`).
    pub include_top: bool,
    /// A Keras weights file to load (`None`: fresh random weights).
    pub weights: Option<PathBuf>,
    /// Input (height, width, channels); `None` dims need `include_top = false`.
    pub input_shape: Option<[Option<usize>; 3]>,
    /// Pooling when `include_top` is off.
    pub pooling: Option<Pooling>,
    /// Classes of the top classifier.
    pub classes: usize,
    /// Activation of the top classifier (`None`: logits).
    pub classifier_activation: Option<String>,
    /// Include the model's own input scaling (`Rescaling`/`Normalization`); only the
    /// families that have it in Keras (EfficientNetV2) read it.
    pub include_preprocessing: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            include_top: true,
            weights: None,
            input_shape: None,
            pooling: None,
            classes: 1000,
            classifier_activation: Some("softmax".into()),
            include_preprocessing: true,
        }
    }
}

impl AppOptions {
    /// The input shape: the model's default size unless given; checked as Keras's
    /// `obtain_input_shape` checks it (static with the top, 3 channels, sides ≥ `min_size`).
    fn input_shape(
        &self,
        model: &'static str,
        default_size: usize,
        min_size: usize,
    ) -> Result<[Option<usize>; 3]> {
        let shape = self
            .input_shape
            .unwrap_or([Some(default_size), Some(default_size), Some(3)]);
        let bad = |msg: String| Err(Error::invalid(model, msg));
        if shape[2] != Some(3) {
            return bad(format!("input_shape must have 3 channels, got {shape:?}"));
        }
        if self.include_top && shape.iter().any(Option::is_none) {
            return bad(format!(
                "with include_top, input_shape must be static, got {shape:?}"
            ));
        }
        if shape[..2].iter().flatten().any(|&d| d < min_size) {
            return bad(format!(
                "input size must be at least {min_size}x{min_size}, got {shape:?}"
            ));
        }
        if self.include_top && self.classes == 0 {
            return bad("classes must be at least 1".into());
        }
        Ok(shape)
    }
}

/// A layer from its Keras class and config (the registry checks every option).
fn layer(class: &str, config: Value) -> Result<LayerRef> {
    crate::layers::registry::from_config(class, &config)
}

/// Calls `layer(class, config)` on `x`.
fn apply(class: &str, config: Value, x: &KerasTensor) -> Result<KerasTensor> {
    let l = layer(class, config)?;
    let mut out = (&l).call_many(std::slice::from_ref(x))?;
    Ok(out.remove(0))
}

/// Calls a merge layer (`Add`, `Multiply`) on several tensors.
fn merge(class: &str, name: &str, xs: &[KerasTensor]) -> Result<KerasTensor> {
    let l = layer(class, json!({ "name": name }))?;
    let mut out = (&l).call_many(xs)?;
    Ok(out.remove(0))
}

/// How a model family writes its top: Keras names the pooling layers in some families
/// (`avg_pool`) and not in others, and EfficientNet adds dropout and its own initializers.
struct HeadStyle {
    /// Names of the average and max pooling layers (`None`: Keras's generated names).
    pool_names: Option<(&'static str, &'static str)>,
    /// Dropout rate before the classifier.
    dropout: f64,
    /// Kernel and bias initializers of the classifier (`None`: Dense's defaults).
    initializers: Option<(Value, Value)>,
}

/// The classifier or pooling head Keras puts on its image models.
fn head(x: KerasTensor, opts: &AppOptions, style: &HeadStyle) -> Result<KerasTensor> {
    let pool = |class: &str, name: Option<&str>, x: &KerasTensor| {
        let config = match name {
            Some(n) => json!({ "name": n }),
            None => json!({}),
        };
        apply(class, config, x)
    };
    let (avg, max) = match style.pool_names {
        Some((a, m)) => (Some(a), Some(m)),
        None => (None, None),
    };
    if opts.include_top {
        let x = pool("GlobalAveragePooling2D", avg, &x)?;
        let x = if style.dropout > 0.0 {
            apply(
                "Dropout",
                json!({"name": "top_dropout", "rate": style.dropout}),
                &x,
            )?
        } else {
            x
        };
        let mut dense = json!({"name": "predictions", "units": opts.classes,
            "activation": opts.classifier_activation.clone().unwrap_or_else(|| "linear".into())});
        if let Some((k, b)) = &style.initializers {
            dense["kernel_initializer"] = k.clone();
            dense["bias_initializer"] = b.clone();
        }
        apply("Dense", dense, &x)
    } else {
        match opts.pooling {
            Some(Pooling::Avg) => pool("GlobalAveragePooling2D", avg, &x),
            Some(Pooling::Max) => pool("GlobalMaxPooling2D", max, &x),
            None => Ok(x),
        }
    }
}

/// Builds the model and loads `opts.weights` when given.
fn finish(input: KerasTensor, output: KerasTensor, name: &str, opts: &AppOptions) -> Result<Model> {
    let model = Model::named(&[input], &[output], name)?;
    if let Some(w) = &opts.weights {
        model.load_weights(w)?;
    }
    Ok(model)
}
