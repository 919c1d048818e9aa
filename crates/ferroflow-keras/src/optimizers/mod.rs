//! Optimisers (`keras.optimizers`): one update rule per file, shared clipping, weight
//! decay, schedules and slot bookkeeping in [`Optimizer`].

mod adagrad;
mod adam;
mod clipping;
mod ftrl;
mod named;
mod optimizer;
mod rmsprop;
mod row_slots;
pub mod schedules;
mod sgd;
mod sparse;

pub use adagrad::Adagrad;
pub use adam::Adam;
pub use ftrl::Ftrl;
pub use optimizer::{LearningRate, Optimizer, OptimizerOptions, RowUpdate, UpdateRule};
pub use rmsprop::RMSprop;
pub use sgd::Sgd;
