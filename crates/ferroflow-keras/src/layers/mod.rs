//! Keras layers. Each file holds one family; [`registry`] rebuilds any of them from its
//! Keras config.

/// Implements the boilerplate of [`crate::layer::Layer`] (`class_name`, `base`) and a
/// builder `.name(...)` for a layer struct with a `base: LayerBase` field.
macro_rules! layer_boilerplate {
    ($ty:ident, $class:literal) => {
        impl $ty {
            /// Gives the layer a name (unique names are generated otherwise).
            pub fn name(mut self, name: &str) -> Self {
                self.base.set_name(name);
                self
            }

            /// Sets the trainable flag (`trainable=False` freezes the layer).
            pub fn trainable(self, on: bool) -> Self {
                self.base.set_trainable(on);
                self
            }
        }
    };
}

/// The `class_name` and `base` methods of the Layer impl.
macro_rules! layer_identity {
    ($class:literal) => {
        fn class_name(&self) -> &'static str {
            $class
        }

        fn base(&self) -> &crate::layer::LayerBase {
            &self.base
        }
    };
}

pub(crate) use layer_boilerplate;
pub(crate) use layer_identity;

pub mod attention;
pub mod common;
pub mod conv;
pub mod core;
pub mod dense;
pub mod embedding;
pub mod merging;
pub mod normalization;
pub mod pooling;
pub mod preprocessing;
pub mod registry;
pub mod reshaping;
pub mod rnn;
pub mod wrappers;

pub use self::core::{Activation, Dropout, InputLayer, Lambda};
pub use attention::MultiHeadAttention;
pub use conv::{Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D};
pub use dense::Dense;
pub use embedding::Embedding;
pub use merging::{Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract};
pub use normalization::{BatchNormalization, LayerNormalization};
pub use pooling::{
    AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D, GlobalAveragePooling2D,
    GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPooling1D, MaxPooling2D,
};
pub use preprocessing::{Normalization, Rescaling};
pub use reshaping::{Flatten, Permute, RepeatVector, Reshape, UpSampling2D, ZeroPadding2D};
pub use rnn::{CellKind, Recurrent};
pub use wrappers::{Bidirectional, MergeMode, TimeDistributed};
