//! Thread and SIMD dispatch for kernels.
//!
//! Small work runs inline on the calling thread: splitting pays only above roughly a
//! megabyte of data on this class of machine. Hot loops run inside [`with_best_isa`], which
//! compiles them once per instruction set and picks the best one at run time.

use rayon::prelude::*;
use std::sync::OnceLock;

/// Elements below which an elementwise kernel stays on the calling thread.
pub(crate) const PAR_MIN_ELEMS: usize = 1 << 17;

/// Number of worker threads rayon uses.
pub(crate) fn num_threads() -> usize {
    rayon::current_num_threads()
}

/// Splits `out` into chunks processed in parallel when it is large enough.
///
/// `f(start, chunk)` receives each chunk and its starting index in `out`. `cost` scales the
/// threshold: pass 1 for a memory-bound op, more for ops that do more work per element.
pub(crate) fn par_chunks<T: Send>(out: &mut [T], cost: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let len = out.len();
    let threads = num_threads();
    if threads <= 1 || len.saturating_mul(cost.max(1)) < PAR_MIN_ELEMS * 2 {
        f(0, out);
        return;
    }
    let tasks = (len * cost.max(1) / PAR_MIN_ELEMS).clamp(2, threads * 4);
    let chunk = len.div_ceil(tasks).next_multiple_of(64);
    out.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i * chunk, c));
}

/// Like [`par_chunks`], but every chunk holds whole rows of `row` elements.
pub(crate) fn par_rows<T: Send>(
    out: &mut [T],
    row: usize,
    cost: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let len = out.len();
    let threads = num_threads();
    if row == 0 || threads <= 1 || len.saturating_mul(cost.max(1)) < PAR_MIN_ELEMS * 2 {
        f(0, out);
        return;
    }
    let rows = len / row;
    let tasks = (len * cost.max(1) / PAR_MIN_ELEMS)
        .clamp(2, threads * 4)
        .min(rows.max(1));
    let chunk = rows.div_ceil(tasks) * row;
    out.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i * chunk, c));
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2,
    Baseline,
}

fn detect_isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512dq")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    })
}

/// Runs `f` compiled for the best instruction set this CPU has (AVX-512, AVX2+FMA or the
/// baseline). `f` and the `#[inline(always)]` code it calls are inlined into a
/// `target_feature` function, so their loops are vectorised with the wider registers.
#[inline(always)]
pub fn with_best_isa<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        match detect_isa() {
            // SAFETY: the features were detected on this CPU above.
            Isa::Avx512 => unsafe { run_avx512(f) },
            // SAFETY: as above.
            Isa::Avx2 => unsafe { run_avx2(f) },
            Isa::Baseline => f(),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = detect_isa;
        f()
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
