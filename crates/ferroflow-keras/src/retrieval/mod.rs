//! Two-tower retrieval, as TensorFlow Recommenders builds it: the in-batch softmax loss
//! ([`Retrieval`]), the top-k metric over all candidates ([`FactorizedTopK`]) and an exact
//! top-k index that is a layer ([`BruteForce`]), so a query model ending in it is saved,
//! loaded and served like any model.

mod brute_force;
mod loss;
mod metric;
mod scores;

pub use brute_force::BruteForce;
pub use loss::{Retrieval, RetrievalReduction};
pub use metric::FactorizedTopK;
