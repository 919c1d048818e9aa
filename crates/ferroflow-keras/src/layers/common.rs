//! Pieces several layers share: kernel/bias options, padding, conv output sizes.

use crate::activations::Activation;
use crate::config::{ConfigReader, Map};
use crate::constraints::Constraint;
use crate::initializers::Initializer;
use crate::regularizers::Regularizer;
use ferroflow_core::ops::conv::Padding;
use ferroflow_core::{Error, Result};
use serde_json::Value;

/// Initializer, regularizer and constraint of one weight (`kernel_*` or `bias_*` options).
#[derive(Clone, Debug)]
pub struct WeightOptions {
    /// How the weight starts.
    pub initializer: Initializer,
    /// Penalty added to the loss.
    pub regularizer: Option<Regularizer>,
    /// Projection after each step.
    pub constraint: Option<Constraint>,
}

impl WeightOptions {
    /// Options with an initializer and nothing else.
    pub fn new(initializer: Initializer) -> Self {
        WeightOptions {
            initializer,
            regularizer: None,
            constraint: None,
        }
    }

    /// Creates a trainable weight `name` of `shape` on `base` with these options.
    pub fn create(
        &self,
        base: &crate::layer::LayerBase,
        name: &str,
        shape: &[usize],
    ) -> Result<ferroflow_core::Variable> {
        base.add_weight(
            name,
            shape,
            &self.initializer,
            true,
            self.regularizer,
            self.constraint.clone(),
        )
    }

    /// Reads the three options for `prefix`, defaulting the initializer.
    pub fn read(r: &ConfigReader, prefix: &str, default: Initializer) -> Result<Self> {
        let initializer = match r.raw(&format!("{prefix}_initializer")) {
            Some(v) => Initializer::from_json(v)?,
            None => default,
        };
        let regularizer = r
            .raw(&format!("{prefix}_regularizer"))
            .map(Regularizer::from_json)
            .transpose()?;
        let constraint = r
            .raw(&format!("{prefix}_constraint"))
            .map(Constraint::from_json)
            .transpose()?;
        Ok(WeightOptions {
            initializer,
            regularizer,
            constraint,
        })
    }
}

/// Writes the options of several weights in Keras's key order: every `*_initializer`,
/// then `between` (keys Keras puts there), every `*_regularizer`, then `before_constraints`
/// (usually `activity_regularizer`), then every `*_constraint`.
pub fn write_weight_options(
    m: &mut Map,
    opts: &[(&str, &WeightOptions)],
    between: &[(&str, Value)],
    before_constraints: &[(&str, Value)],
) {
    for (p, o) in opts {
        m.insert(format!("{p}_initializer"), o.initializer.to_json());
    }
    for (k, v) in between {
        m.insert(k.to_string(), v.clone());
    }
    for (p, o) in opts {
        m.insert(
            format!("{p}_regularizer"),
            o.regularizer.map_or(Value::Null, |r| r.to_json()),
        );
    }
    for (k, v) in before_constraints {
        m.insert(k.to_string(), v.clone());
    }
    for (p, o) in opts {
        m.insert(
            format!("{p}_constraint"),
            o.constraint.as_ref().map_or(Value::Null, |c| c.to_json()),
        );
    }
}

/// Reads the `activation` option (a name or null).
pub fn read_activation(r: &ConfigReader) -> Result<Activation> {
    match r.raw("activation") {
        None => Ok(Activation::Linear),
        Some(Value::String(s)) => Activation::from_name(s),
        Some(Value::Object(o)) => {
            let name = o
                .get("config")
                .and_then(|c| c.as_str())
                .or_else(|| o.get("class_name").and_then(Value::as_str))
                .unwrap_or("");
            Activation::from_name(name)
        }
        Some(v) => Err(Error::invalid(
            r.class(),
            format!("option 'activation': cannot read {v}"),
        )),
    }
}

/// Reads `padding` (`"valid"` or `"same"`).
pub fn read_padding(r: &ConfigReader) -> Result<Padding> {
    parse_padding(r.class(), &r.str_or("padding", "valid")?)
}

/// Parses a Keras padding name.
pub fn parse_padding(class: &'static str, s: &str) -> Result<Padding> {
    match s.to_ascii_lowercase().as_str() {
        "valid" => Ok(Padding::Valid),
        "same" => Ok(Padding::Same),
        other => Err(Error::invalid(
            class,
            format!("option 'padding': unsupported value '{other}' (valid, same)"),
        )),
    }
}

/// The Keras name of a padding.
pub fn padding_name(p: Padding) -> &'static str {
    match p {
        Padding::Valid => "valid",
        Padding::Same => "same",
        // Keras layers only take the two names; explicit pads come from imported graphs.
        Padding::Explicit(_) => "explicit",
    }
}

/// Requires `data_format` to be channels_last (the only layout ferroflow runs).
pub fn require_channels_last(r: &ConfigReader) -> Result<()> {
    r.require("data_format", &Value::from("channels_last"))
}

/// Output length of a conv/pool window along one axis (`None` stays unknown).
pub fn window_output(
    input: Option<usize>,
    kernel: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
) -> Option<usize> {
    let n = input?;
    match padding {
        Padding::Same => Some(n.div_ceil(stride)),
        Padding::Valid => {
            let span = dilation * (kernel - 1) + 1;
            if n < span {
                Some(0)
            } else {
                Some((n - span) / stride + 1)
            }
        }
        Padding::Explicit(_) => None,
    }
}

/// The last dimension of a spec, which must be known (channels, features).
pub fn known_last(class: &'static str, name: &str, shape: &[Option<usize>]) -> Result<usize> {
    shape.last().copied().flatten().ok_or_else(|| {
        Error::invalid(
            class,
            format!(
                "layer '{name}': the last dimension of the input must be known, got {}",
                crate::layer::format_dims(shape)
            ),
        )
    })
}

/// Checks the input rank of a layer.
pub fn expect_rank(
    class: &'static str,
    name: &str,
    shape: &[Option<usize>],
    rank: usize,
) -> Result<()> {
    if shape.len() != rank {
        return Err(Error::invalid(
            class,
            format!(
                "layer '{name}' expects inputs of rank {rank}, got shape {}",
                crate::layer::format_dims(shape)
            ),
        ));
    }
    Ok(())
}
