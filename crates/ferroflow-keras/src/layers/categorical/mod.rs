//! Categorical preprocessing layers with Keras 3's semantics and configs: `StringLookup`,
//! `IntegerLookup`, `Hashing`, `CategoryEncoding`, `Discretization` and `TextVectorization`.

pub mod discretization;
pub mod encoding;
pub mod hashing;
pub mod keys;
pub mod lookup;
pub mod text_vectorization;
pub mod vocabulary;

pub use discretization::Discretization;
pub use encoding::OutputMode;
pub use hashing::{CategoryEncoding, Hashing, MaskValue};
pub use keys::{LookupKey, OovMethod};
pub use lookup::{IndexLookup, IntegerLookup, StringLookup};
pub use text_vectorization::{Split, Standardize, TextVectorization};
pub use vocabulary::LookupOptions;
