//! Graph optimisation passes and the pipeline that runs them.

mod algebra;
mod cse;
mod dce;
mod fold;
mod fuse;
mod pad_fold;

use crate::graph::Graph;

pub use algebra::simplify;
pub use cse::eliminate_common_subexpressions;
pub use dce::eliminate_dead_code;
pub use fold::fold_constants;
pub use fuse::fuse_elementwise;
pub use pad_fold::fold_pads_into_convs;

/// How much optimisation a function gets (`jit_compile=true` is [`OptLevel::Full`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OptLevel {
    /// Replay the trace as recorded (dead code is still dropped).
    None,
    /// Folding, algebraic simplification, CSE and DCE: every op still runs its eager kernel.
    Basic,
    /// Everything in `Basic`, plus elementwise fusion (with reductions, and matmul/conv
    /// prologues) and buffer reuse.
    #[default]
    Full,
}

/// What each pass changed (nodes removed, replaced or fused).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Ops evaluated at trace time.
    pub folded: usize,
    /// Nodes replaced by simpler ones or bypassed (pads folded into convolutions too).
    pub simplified: usize,
    /// Duplicate nodes merged.
    pub merged: usize,
    /// Nodes removed as unused.
    pub removed: usize,
    /// Ops absorbed into fused kernels.
    pub fused: usize,
    /// Fused kernels created.
    pub kernels: usize,
}

/// Runs the passes of `level` to a fixed point (at most a few rounds).
pub fn optimize(mut g: Graph, level: OptLevel) -> (Graph, PassStats) {
    let mut stats = PassStats::default();
    stats.removed += eliminate_dead_code(&mut g);
    if level == OptLevel::None {
        return (g, stats);
    }
    for _ in 0..4 {
        let before = stats.clone();
        stats.folded += fold_constants(&mut g);
        stats.simplified += simplify(&mut g);
        stats.simplified += fold_pads_into_convs(&mut g);
        stats.merged += eliminate_common_subexpressions(&mut g);
        stats.removed += eliminate_dead_code(&mut g);
        if stats == before {
            break;
        }
    }
    if level == OptLevel::Full {
        let (fused, kernels) = fuse_elementwise(&mut g);
        stats.fused += fused;
        stats.kernels += kernels;
        stats.removed += eliminate_dead_code(&mut g);
    }
    (g, stats)
}
