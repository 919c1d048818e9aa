//! Distribution strategies (`tf.distribute`): train one model on several replicas.
//!
//! - [`MirroredStrategy`]: replicas as threads of this process, one copy of each variable.
//! - [`MultiWorkerMirroredStrategy`]: one replica per worker process, over MPI (feature
//!   `mpi`, launched with `mpirun`) or any other [`Collective`].
//! - [`OneDeviceStrategy`]: the default, one replica.
//!
//! ```no_run
//! use ferroflow_distribute::{MirroredStrategy, Strategy};
//! # fn build() -> ferroflow_core::Result<ferroflow_keras::Model> { unimplemented!() }
//! let strategy = MirroredStrategy::with_replicas(2)?;
//! let mut model = strategy.scope(|| -> ferroflow_core::Result<_> {
//!     let mut model = build()?;
//!     model.compile("adam", "sparse_categorical_crossentropy", &["accuracy"])?;
//!     Ok(model)
//! })?;
//! # Ok::<(), ferroflow_core::Error>(())
//! ```

#![warn(missing_docs)]

mod background;
pub mod collective;
mod context;
mod strategy;

pub use collective::{Collective, LocalCollective};
pub use context::{AutoShardPolicy, ClusterResolver, InputContext, ReduceOp, ReplicaContext};
pub use strategy::{MirroredStrategy, MultiWorkerMirroredStrategy, OneDeviceStrategy, Strategy};
