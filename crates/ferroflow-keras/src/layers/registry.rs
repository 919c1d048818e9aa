//! Rebuilds layers from Keras configs by class name (`keras.layers.deserialize`).

use super::*;
use crate::layer::{layer_ref, LayerRef};
use ferroflow_core::{Error, Result, ResultExt};
use serde_json::Value;
use std::sync::Arc;

/// The layer classes [`from_config`] knows.
pub const CLASSES: &[&str] = &[
    "InputLayer",
    "Dense",
    "Activation",
    "Dropout",
    "Flatten",
    "Reshape",
    "Permute",
    "RepeatVector",
    "ZeroPadding2D",
    "UpSampling2D",
    "Embedding",
    "Concatenate",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Dot",
    "Conv1D",
    "Conv2D",
    "Conv2DTranspose",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "MaxPooling1D",
    "MaxPooling2D",
    "AveragePooling1D",
    "AveragePooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "BatchNormalization",
    "LayerNormalization",
    "Rescaling",
    "Normalization",
    "StringLookup",
    "IntegerLookup",
    "Hashing",
    "CategoryEncoding",
    "Discretization",
    "TextVectorization",
    "BruteForce",
    "ReLU",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "Bidirectional",
    "TimeDistributed",
    "MultiHeadAttention",
    "Sequential",
    "Functional",
];

/// Builds a layer of Keras class `class` from its `config` dict.
///
/// Unknown classes and unsupported options are errors naming the class and option.
pub fn from_config(class: &str, config: &Value) -> Result<LayerRef> {
    Ok(match class {
        "InputLayer" => layer_ref(InputLayer::from_config(config)?),
        "Dense" => layer_ref(Dense::from_config(config)?),
        "StringLookup" => layer_ref(StringLookup::from_config(config)?),
        "Discretization" => layer_ref(Discretization::from_config(config)?),
        "BruteForce" => layer_ref(crate::retrieval::BruteForce::from_config(config)?),
        "IntegerLookup" => layer_ref(IntegerLookup::from_config(config)?),
        "Hashing" => layer_ref(Hashing::from_config(config)?),
        "CategoryEncoding" => layer_ref(CategoryEncoding::from_config(config)?),
        "TextVectorization" => layer_ref(TextVectorization::from_config(config)?),
        "Activation" => layer_ref(Activation::from_config(config)?),
        "ReLU" => layer_ref(super::ReLU::from_config(config)?),
        "Dropout" => layer_ref(Dropout::from_config(config)?),
        "Flatten" => layer_ref(Flatten::from_config(config)?),
        "Reshape" => layer_ref(Reshape::from_config(config)?),
        "Permute" => layer_ref(Permute::from_config(config)?),
        "RepeatVector" => layer_ref(RepeatVector::from_config(config)?),
        "ZeroPadding2D" => layer_ref(ZeroPadding2D::from_config(config)?),
        "UpSampling2D" => layer_ref(UpSampling2D::from_config(config)?),
        "Embedding" => layer_ref(Embedding::from_config(config)?),
        "Concatenate" => layer_ref(Concatenate::from_config(config)?),
        "Add" => layer_ref(Add::from_config(config)?),
        "Subtract" => layer_ref(Subtract::from_config(config)?),
        "Multiply" => layer_ref(Multiply::from_config(config)?),
        "Average" => layer_ref(Average::from_config(config)?),
        "Maximum" => layer_ref(Maximum::from_config(config)?),
        "Minimum" => layer_ref(Minimum::from_config(config)?),
        "Dot" => layer_ref(Dot::from_config(config)?),
        "Conv1D" => layer_ref(Conv1D::from_config(config)?),
        "Conv2D" => layer_ref(Conv2D::from_config(config)?),
        "Conv2DTranspose" => layer_ref(Conv2DTranspose::from_config(config)?),
        "DepthwiseConv2D" => layer_ref(DepthwiseConv2D::from_config(config)?),
        "SeparableConv2D" => layer_ref(SeparableConv2D::from_config(config)?),
        "MaxPooling1D" => layer_ref(MaxPooling1D::from_config(config)?),
        "MaxPooling2D" => layer_ref(MaxPooling2D::from_config(config)?),
        "AveragePooling1D" => layer_ref(AveragePooling1D::from_config(config)?),
        "AveragePooling2D" => layer_ref(AveragePooling2D::from_config(config)?),
        "GlobalAveragePooling1D" => layer_ref(GlobalAveragePooling1D::from_config(config)?),
        "GlobalAveragePooling2D" => layer_ref(GlobalAveragePooling2D::from_config(config)?),
        "GlobalMaxPooling1D" => layer_ref(GlobalMaxPooling1D::from_config(config)?),
        "GlobalMaxPooling2D" => layer_ref(GlobalMaxPooling2D::from_config(config)?),
        "BatchNormalization" => layer_ref(BatchNormalization::from_config(config)?),
        "LayerNormalization" => layer_ref(LayerNormalization::from_config(config)?),
        "Rescaling" => layer_ref(Rescaling::from_config(config)?),
        "Normalization" => layer_ref(Normalization::from_config(config)?),
        "SimpleRNN" => layer_ref(Recurrent::from_config(CellKind::Simple, config)?),
        "LSTM" => layer_ref(Recurrent::from_config(CellKind::Lstm, config)?),
        "GRU" => layer_ref(Recurrent::from_config(CellKind::Gru, config)?),
        "Bidirectional" => layer_ref(Bidirectional::from_config(config)?),
        "TimeDistributed" => layer_ref(TimeDistributed::from_config(config)?),
        "MultiHeadAttention" => layer_ref(MultiHeadAttention::from_config(config)?),
        "Sequential" => {
            let s: Arc<crate::models::Sequential> =
                Arc::new(crate::models::serialize::sequential_from_config(config)?);
            s
        }
        "Functional" | "Model" => {
            let f: Arc<crate::models::Functional> =
                Arc::new(crate::models::serialize::functional_from_config(config)?);
            f
        }
        "Lambda" => {
            return Err(Error::invalid(
                "Lambda",
                "a Lambda layer holds code and cannot be rebuilt from a config",
            ))
        }
        other => {
            return Err(Error::invalid(
                "Keras config",
                format!("unknown layer class '{other}': ferroflow has no layer of that name"),
            ))
        }
    })
}

/// Builds a layer from its serialised form `{"class_name": ..., "config": ...}`.
pub fn from_json(v: &Value) -> Result<LayerRef> {
    let class = v
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("Keras config", format!("no class_name in {v}")))?;
    let config = v
        .get("config")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    from_config(class, &config).with_context(|| match config.get("name").and_then(Value::as_str) {
        Some(name) => format!("rebuilding layer '{name}' ({class})"),
        None => format!("rebuilding a {class} layer"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed class is one `from_config` knows (an empty config may be refused, but
    /// not as an unknown class), so the list that language bindings read stays true.
    #[test]
    fn every_listed_class_is_known() {
        for class in CLASSES {
            if let Err(e) = from_config(class, &serde_json::json!({})) {
                assert!(
                    !e.to_string().contains("unknown layer class"),
                    "{class}: {e}"
                );
            }
        }
    }
}
