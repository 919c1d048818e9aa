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

/// The state behind a single-input newtype layer (the conv and pooling families), which
/// [`newtype_layer!`] turns into a [`crate::layer::Layer`].
pub(crate) trait Inner: Send + Sync {
    /// The Keras class name.
    fn class(&self) -> &'static str;
    /// The shared layer state.
    fn base(&self) -> &crate::layer::LayerBase;
    /// Creates the weights.
    fn build(&self, _inputs: &[crate::layer::TensorSpec]) -> ferroflow_core::Result<()> {
        Ok(())
    }
    /// Runs the layer on its one input.
    fn call(&self, x: &ferroflow_core::Tensor) -> ferroflow_core::Result<ferroflow_core::Tensor>;
    /// Runs the layer on its one input with that input's mask (`[batch, steps]` bool);
    /// layers that read masks override it.
    fn call_masked(
        &self,
        x: &ferroflow_core::Tensor,
        _mask: &ferroflow_core::Tensor,
    ) -> ferroflow_core::Result<ferroflow_core::Tensor> {
        self.call(x)
    }
    /// The output spec for one input spec.
    fn spec(
        &self,
        input: &crate::layer::TensorSpec,
    ) -> ferroflow_core::Result<Vec<crate::layer::TensorSpec>>;
    /// The layer's own config keys.
    fn config(&self) -> crate::config::Map;
}

/// Implements [`crate::layer::Layer`] for a newtype `$ty(inner)` whose inner type
/// implements [`Inner`].
macro_rules! newtype_layer {
    ($ty:ident) => {
        impl crate::layer::Layer for $ty {
            fn class_name(&self) -> &'static str {
                crate::layers::Inner::class(&self.0)
            }

            fn base(&self) -> &crate::layer::LayerBase {
                crate::layers::Inner::base(&self.0)
            }

            fn build(&self, inputs: &[crate::layer::TensorSpec]) -> ferroflow_core::Result<()> {
                crate::layers::Inner::build(&self.0, inputs)
            }

            fn call(
                &self,
                inputs: &[ferroflow_core::Tensor],
                _ctx: crate::layer::CallContext,
            ) -> ferroflow_core::Result<Vec<ferroflow_core::Tensor>> {
                crate::layer::expect_inputs(self, inputs, 1)?;
                Ok(vec![crate::layers::Inner::call(&self.0, &inputs[0])?])
            }

            fn call_masked(
                &self,
                inputs: &[ferroflow_core::Tensor],
                masks: &[Option<ferroflow_core::Tensor>],
                ctx: crate::layer::CallContext,
            ) -> ferroflow_core::Result<Vec<ferroflow_core::Tensor>> {
                match masks.first().and_then(Option::as_ref) {
                    Some(m) => {
                        crate::layer::expect_inputs(self, inputs, 1)?;
                        Ok(vec![crate::layers::Inner::call_masked(
                            &self.0, &inputs[0], m,
                        )?])
                    }
                    None => self.call(inputs, ctx),
                }
            }

            fn compute_output_spec(
                &self,
                inputs: &[crate::layer::TensorSpec],
            ) -> ferroflow_core::Result<Vec<crate::layer::TensorSpec>> {
                crate::layers::Inner::spec(&self.0, &inputs[0])
            }

            fn config(&self) -> crate::config::Map {
                crate::layers::Inner::config(&self.0)
            }
        }
    };
}

pub(crate) use layer_boilerplate;
pub(crate) use layer_identity;
pub(crate) use newtype_layer;

pub mod array_operation;
pub mod attention;
pub mod categorical;
pub mod common;
pub mod conv;
pub mod core;
pub mod dense;
pub mod embedding;
pub mod merging;
pub mod normalization;
pub mod operation;
pub mod pooling;
pub mod preprocessing;
pub mod registry;
pub mod relu;
pub mod reshaping;
pub mod rnn;
pub mod wrappers;

pub use self::core::{Activation, Dropout, InputLayer, Lambda};
pub use attention::MultiHeadAttention;
pub use categorical::{
    CategoryEncoding, Discretization, Hashing, IntegerLookup, LookupOptions, OutputMode,
    StringLookup, TextVectorization,
};
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
pub use relu::ReLU;
pub use reshaping::{Flatten, Permute, RepeatVector, Reshape, UpSampling2D, ZeroPadding2D};
pub use rnn::{CellKind, Recurrent};
pub use wrappers::{Bidirectional, MergeMode, TimeDistributed};
