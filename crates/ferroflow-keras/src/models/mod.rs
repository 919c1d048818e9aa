//! Models: [`Sequential`], functional [`Functional`] graphs built from [`Input`]s, and
//! [`Model`], which trains, evaluates, predicts, summarises and saves either (or any
//! subclass-style [`crate::layer::Layer`]).

mod describe;
pub mod functional;
pub mod model;
pub mod network;
pub mod sequential;
pub mod serialize;
pub mod subclass;
pub mod symbolic;

pub use functional::Functional;
pub use model::Model;
pub use network::{GraphNode, LayerGraph, Network, SummaryRow};
pub use sequential::{IntoLayerRef, Sequential};
pub use subclass::Subclassed;
pub use symbolic::{Input, KerasTensor, SymbolicCall};
