//! Collective communication between workers: one small trait ([`Collective`]) with two
//! implementations, threads in one process ([`LocalCollective`]) and MPI ranks (`MpiCollective`,
//! behind the `mpi` feature), and the tensor-level operations built on it (bucketed
//! gradient all-reduce, sparse gradient all-gather, row all-gather, variable sync).

mod local;
#[cfg(feature = "mpi")]
mod mpi;
mod tensors;

pub use local::LocalCollective;
#[cfg(feature = "mpi")]
pub use mpi::MpiCollective;
pub use tensors::{
    all_gather_rows, all_reduce_gradients, all_reduce_tensor, sync_variables, DEFAULT_BUCKET_BYTES,
};

use ferroflow_core::Result;

/// The collective operations workers use to stay in sync. Every worker of a group must
/// call the same operations in the same order with buffers of the same length (except
/// for [`Collective::all_gather`] and [`Collective::broadcast`], which carry any length).
pub trait Collective: Send + Sync {
    /// This worker's index in the group (0 is the chief).
    fn rank(&self) -> usize;
    /// The number of workers.
    fn size(&self) -> usize;
    /// Sums `buf` element by element over the workers, in place.
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()>;
    /// Sums `buf` element by element over the workers, in place.
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Gives every worker `root`'s bytes (`buf` is replaced on the others).
    fn broadcast(&self, buf: &mut Vec<u8>, root: usize) -> Result<()>;
    /// Every worker's bytes, in rank order.
    fn all_gather(&self, local: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Returns when every worker has reached it.
    fn barrier(&self) -> Result<()>;
}

/// Averages `buf` over the workers, in place (all-reduce mean).
pub fn all_reduce_mean_f32(c: &dyn Collective, buf: &mut [f32]) -> Result<()> {
    c.all_reduce_sum_f32(buf)?;
    let n = c.size() as f32;
    buf.iter_mut().for_each(|v| *v /= n);
    Ok(())
}
