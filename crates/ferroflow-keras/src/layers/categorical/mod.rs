//! Categorical preprocessing layers with Keras 3's semantics and configs: `StringLookup`,
//! `IntegerLookup`, `Hashing` and `CategoryEncoding`.

pub mod encoding;
pub mod hashing;
pub mod keys;
pub mod lookup;
pub mod vocabulary;

pub use encoding::OutputMode;
pub use hashing::{CategoryEncoding, Hashing, MaskValue};
pub use keys::{LookupKey, OovMethod};
pub use lookup::{IndexLookup, IntegerLookup, StringLookup};
pub use vocabulary::LookupOptions;
