//! Automatic differentiation: [`GradientTape`], [`Variable`], sparse gradients and custom
//! gradient rules. Each op's gradient rule lives next to the op, in `crate::ops`.

mod custom;
mod gradient;
pub(crate) mod record;
mod tape;
mod variable;

pub use custom::custom_gradient;
pub use gradient::{Gradient, IndexedSlices};
pub use record::{is_recording, pause_recording, RecordingPause};
pub use tape::{GradientTape, Source, UnconnectedGradients};
pub use variable::{Variable, VariableId};
