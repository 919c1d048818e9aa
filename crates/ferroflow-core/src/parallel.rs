//! Thread and SIMD dispatch for kernels.
//!
//! Small work runs inline on the calling thread: splitting pays only above roughly a
//! megabyte of data on this class of machine. Hot loops run inside [`with_best_isa`], which
//! compiles them once per instruction set and picks the best one at run time.

use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Elements below which an elementwise kernel stays on the calling thread.
pub(crate) const PAR_MIN_ELEMS: usize = 1 << 17;

/// Multiply-adds from which a product or convolution splits between threads on a worker
/// of the pool (where the other workers take their parts at the cost of a join).
pub(crate) const PAR_MACS: usize = 48 * 48 * 48;

/// The same from a thread outside the pool (a server's request thread, a model call too
/// small to hop onto the pool): the parts are handed over and waited for, two thread
/// wake-ups that cost more than a product of a few million flops gains. With 2 threads,
/// splitting the [32, 64] x [64, 128] products of a small MLP made its predict 2.5x
/// slower.
const PAR_MACS_OUTSIDE_POOL: usize = 1 << 22;

/// Whether work of `macs` multiply-adds pays for handing parts of it to the pool's
/// workers from this thread: always on a worker of the pool (the others are at hand),
/// from outside the pool from [`PAR_MACS_OUTSIDE_POOL`] on.
pub(crate) fn handoff_pays(macs: usize) -> bool {
    THREADED && (rayon::current_thread_index().is_some() || macs >= PAR_MACS_OUTSIDE_POOL)
}

/// Whether a product of `macs` multiply-adds gains from splitting between threads when
/// called from this thread: [`handoff_pays`], and at least [`PAR_MACS`].
pub(crate) fn split_pays(macs: usize) -> bool {
    handoff_pays(macs) && macs >= PAR_MACS
}

thread_local! {
    /// Set while [`on_calling_thread`] runs: kernels then take one thread.
    static ONE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether kernels may split work between threads at all. The browser build
/// (`wasm32-unknown-unknown` without the atomics feature: no threads) runs every kernel
/// on the calling thread; with this a constant, the compiler drops the parallel paths
/// (and most of rayon: a fifth of the module's code) from that module.
const THREADED: bool = !cfg!(all(target_arch = "wasm32", not(target_feature = "atomics")));

/// Number of threads a kernel may split its work across: the current rayon pool's (the
/// global pool outside any), or 1 inside [`on_calling_thread`] (and in the browser build,
/// [`THREADED`]).
pub fn num_threads() -> usize {
    if !THREADED || ONE_THREAD.with(std::cell::Cell::get) {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Runs `f` on the calling thread with every kernel it calls kept on that thread (they
/// consult [`num_threads`] before splitting). A one-thread interpreter runs its calls this
/// way instead of handing each to a pool of one worker: that handoff is two thread
/// wake-ups per call, tens of microseconds on a virtual machine, as long as a small model.
pub fn on_calling_thread<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the flag when dropped, also when `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ONE_THREAD.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(ONE_THREAD.with(|c| c.replace(true)));
    f()
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

/// Runs `f(p)` for every part `p` in `0..parts`, part `i % parts` on the calling thread
/// when it is rayon worker `i` (part 0 on any other thread) and the rest on other workers.
/// With as many parts as workers (and the pool otherwise idle), part `p` thus runs on
/// worker `p` call after call, whichever worker calls: the data a kernel leaves in one
/// core's cache is where the next kernel over the same block looks for it.
pub(crate) fn for_each_part(parts: usize, f: impl Fn(usize) + Sync) {
    fn run(lo: usize, hi: usize, parts: usize, f: &(impl Fn(usize) + Sync)) {
        if hi - lo <= 1 {
            if hi > lo {
                f(lo % parts);
            }
        } else {
            let mid = lo + (hi - lo).div_ceil(2);
            rayon::join(|| run(lo, mid, parts, f), || run(mid, hi, parts, f));
        }
    }
    if parts == 0 {
        return;
    }
    if !THREADED {
        (0..parts).for_each(f);
        return;
    }
    let me = rayon::current_thread_index().unwrap_or(0) % parts;
    run(me, me + parts, parts, &f);
}

/// Runs `f` on the calling rayon worker while the pool's other workers stay awake: each
/// polls for work (`rayon::yield_now`) until `f` returns, instead of going to sleep
/// between two kernels and being woken for the next (a futex wake per fork, tens of
/// microseconds on a virtual machine, as long as a whole small kernel). Like LiteRT's
/// thread pool (and onnxruntime's), which spin between operators, the idle workers burn
/// their cores for the duration of `f`: for one model call, not for a whole program.
/// Outside a pool, on a pool of one thread, or inside [`on_calling_thread`], `f` just runs.
///
/// The pollers are not waited for: `f`'s result returns as soon as `f` does, even when a
/// poller is busy with a job of another caller that it picked up while polling (a request
/// that another thread handed to the same pool); that poller stops after the job.
///
/// A worker may take its polling job while it waits inside one of `f`'s own jobs; that
/// job resumes only when the polling stops, so a worker also stops after
/// [`SPIN_IDLE_LIMIT`] without finding work (and falls back to rayon's sleep), which
/// bounds such a delay instead of letting `f` wait on it forever.
///
/// `claim` is held for the call: while another call on the same pool holds it, `f` runs
/// without polling workers (two calls' polling jobs, each nested inside a job of the
/// other, would each hold up the other until the idle limit).
pub fn with_workers_spinning<R>(claim: &AtomicBool, f: impl FnOnce() -> R) -> R {
    /// Sets the flag when dropped (the workers stop, the claim is released), also when
    /// `f` panics.
    struct SetOnDrop<'a>(&'a AtomicBool, bool);
    impl Drop for SetOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(self.1, Ordering::Release);
        }
    }
    let Some(me) = rayon::current_thread_index() else {
        return f();
    };
    if num_threads() < 2 || claim.swap(true, Ordering::AcqRel) {
        return f();
    }
    let _release = SetOnDrop(claim, false);
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    rayon::spawn_broadcast(move |ctx| {
        // The caller's own copy returns at once: it must never poll under `f`.
        if ctx.index() == me {
            return;
        }
        let mut last_work = std::time::Instant::now();
        while !stop.load(Ordering::Acquire) {
            if rayon::yield_now() == Some(rayon::Yield::Executed) {
                last_work = std::time::Instant::now();
            } else if last_work.elapsed() > SPIN_IDLE_LIMIT {
                return;
            } else {
                std::hint::spin_loop();
            }
        }
    });
    let _stop = SetOnDrop(&done, true);
    f()
}

/// Whether [`on_pool_spinning`]'s call holds the global pool's polling workers.
static GLOBAL_POOL_CLAIM: AtomicBool = AtomicBool::new(false);

/// Runs `f` on a worker of the global rayon pool, with the pool's other workers polling
/// for its kernels' work ([`with_workers_spinning`]), when it is called from outside any
/// pool with more than one thread to use: one model call (a compiled plan, an interpreter
/// call) hands itself over once, instead of every parallel kernel handing its work over
/// from the calling thread and waiting to be woken. Otherwise (on a worker already, or
/// with one thread) `f` runs here. The handover costs two thread wake-ups, so callers use
/// it for calls that take far longer than that.
pub fn on_pool_spinning<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() || num_threads() < 2 {
        return f();
    }
    rayon::scope(|_| with_workers_spinning(&GLOBAL_POOL_CLAIM, f))
}

/// How long a worker of [`with_workers_spinning`] polls without finding work before it
/// stops: longer than the gap between two parallel kernels of a model (a single-threaded
/// operator between them), short against a call.
const SPIN_IDLE_LIMIT: std::time::Duration = std::time::Duration::from_millis(2);

/// How kernels share out a row-major matrix `[rows, cols]` between threads so that every
/// kernel touching the same matrix gives each thread the same block: column blocks when
/// the matrix is wide enough, else row blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MatrixSplit {
    /// Blocks of columns (`true`) or of rows (`false`).
    pub(crate) by_cols: bool,
    /// Columns (or rows) per block; the last block may be shorter.
    pub(crate) step: usize,
    /// Number of blocks.
    pub(crate) parts: usize,
}

impl MatrixSplit {
    /// The split of a `[rows, cols]` matrix for `threads` threads: columns in blocks of a
    /// multiple of 16 (a 64-byte line of f32) when the matrix is wider than tall and has
    /// at least 32 columns per thread, else rows (contiguous blocks, which elementwise
    /// kernels over the same matrix can match).
    pub(crate) fn new(rows: usize, cols: usize, threads: usize) -> MatrixSplit {
        let threads = threads.max(1);
        if cols < 32 * threads || cols <= rows {
            return MatrixSplit::rows(rows, threads);
        }
        let parts = threads.min(cols.div_ceil(16)).max(1);
        let step = cols.div_ceil(parts).next_multiple_of(16).max(1);
        MatrixSplit {
            by_cols: true,
            step,
            parts: cols.div_ceil(step).max(1),
        }
    }

    /// Blocks of whole rows, one per thread (fewer when there are fewer rows).
    pub(crate) fn rows(rows: usize, threads: usize) -> MatrixSplit {
        let step = rows.div_ceil(threads.clamp(1, rows.max(1))).max(1);
        MatrixSplit {
            by_cols: false,
            step,
            parts: rows.div_ceil(step).max(1),
        }
    }

    /// The columns (or rows) of block `p`.
    pub(crate) fn range(&self, p: usize, rows: usize, cols: usize) -> std::ops::Range<usize> {
        let len = if self.by_cols { cols } else { rows };
        (p * self.step).min(len)..((p + 1) * self.step).min(len)
    }
}

/// Calls `f` on the contiguous block of whole rows of a row-major `[rows, cols]` matrix
/// that each thread owns, with the thread that a matrix product splitting its output by
/// rows gives that block ([`MatrixSplit`] of a tall matrix): an elementwise kernel over a
/// gradient and its weight matrix then reads the rows on the core that wrote them. (Column
/// blocks would interleave the threads' writes within every row, which measured three to
/// four times slower than contiguous blocks for a bandwidth-bound update.) Below
/// `min_elems` elements it all runs on the calling thread.
pub fn for_each_row_block(
    rows: usize,
    cols: usize,
    min_elems: usize,
    f: impl Fn(std::ops::Range<usize>) + Sync,
) {
    let n = rows * cols;
    let threads = num_threads();
    if threads <= 1 || n < min_elems.max(2) || rows < 2 {
        if n > 0 {
            f(0..n);
        }
        return;
    }
    let split = MatrixSplit::rows(rows, threads);
    for_each_part(split.parts, |p| {
        let r = split.range(p, rows, cols);
        if !r.is_empty() {
            f(r.start * cols..r.end * cols);
        }
    });
}

/// A raw pointer that kernels hand to the threads writing disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub struct SharedMut<T>(pub *mut T);

// SAFETY: a `SharedMut` only carries the address; whoever dereferences it guarantees that
// the threads write disjoint elements and that the buffer outlives them.
unsafe impl<T> Send for SharedMut<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The address (a method, so closures capture the whole `SharedMut`).
    pub fn ptr(&self) -> *mut T {
        self.0
    }

    /// The elements `r` of the buffer.
    ///
    /// # Safety
    /// `r` lies within the buffer, the buffer outlives the slice, and no other thread
    /// touches these elements while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, r: &std::ops::Range<usize>) -> &mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(r.start), r.len())
    }
}

/// The instruction sets that kernels are compiled for, widest first. Hand-written kernels
/// (`conv_packed`, `depthwise`) choose theirs from [`Isa::best`]; their tests run every
/// one in [`Isa::runnable`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) enum Isa {
    /// AVX-512 F, BW, DQ and VL, with FMA.
    Avx512,
    /// AVX2 and FMA.
    Avx2,
    /// What the target guarantees (SSE2 on x86-64, SIMD128 in the browser build).
    Baseline,
}

impl Isa {
    /// Every set, widest first.
    const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Baseline];

    /// Whether this CPU runs code compiled for `self`.
    fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::is_x86_feature_detected!("fma");
            match self {
                Isa::Avx512 => {
                    fma && std::is_x86_feature_detected!("avx512f")
                        && std::is_x86_feature_detected!("avx512bw")
                        && std::is_x86_feature_detected!("avx512dq")
                        && std::is_x86_feature_detected!("avx512vl")
                }
                Isa::Avx2 => fma && std::is_x86_feature_detected!("avx2"),
                Isa::Baseline => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Isa::Baseline
        }
    }

    /// The widest set this CPU runs.
    pub(crate) fn best() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            Isa::ALL
                .into_iter()
                .find(|isa| isa.runs_here())
                .unwrap_or(Isa::Baseline)
        })
    }

    /// Every set this CPU runs, widest first (an AVX-512 CPU runs the AVX2 code too).
    #[cfg(test)]
    pub(crate) fn runnable() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.runs_here()).collect()
    }
}

/// Runs `f` compiled for the best instruction set this CPU has (AVX-512, AVX2+FMA or the
/// baseline). `f` and the `#[inline(always)]` code it calls are inlined into a
/// `target_feature` function, so their loops are vectorised with the wider registers.
///
/// Mark the closure `#[inline(always)]` at the call site: `f` is called from three places
/// (one per instruction set), so LLVM keeps a large closure out of line, compiled for the
/// baseline, and the wider registers are never used (softmax ran on SSE that way).
#[inline(always)]
pub fn with_best_isa<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        match Isa::best() {
            // SAFETY: the features were detected on this CPU above.
            Isa::Avx512 => unsafe { run_avx512(f) },
            // SAFETY: as above.
            Isa::Avx2 => unsafe { run_avx2(f) },
            Isa::Baseline => f(),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = Isa::best;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_calling_thread_keeps_kernels_on_one_thread_until_it_returns() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(num_threads(), 3);
            let me = std::thread::current().id();
            on_calling_thread(|| {
                assert_eq!(num_threads(), 1);
                // A kernel large enough to split runs on this thread alone.
                let mut out = vec![0u32; PAR_MIN_ELEMS * 8];
                let seen = std::sync::Mutex::new(std::collections::HashSet::new());
                par_chunks(&mut out, 1, |_, chunk| {
                    seen.lock().unwrap().insert(std::thread::current().id());
                    chunk.fill(1);
                });
                assert_eq!(
                    seen.into_inner().unwrap().into_iter().collect::<Vec<_>>(),
                    [me]
                );
                assert!(out.iter().all(|&v| v == 1));
            });
            assert_eq!(num_threads(), 3);
            // Restored after a panic too.
            let caught = std::panic::catch_unwind(|| on_calling_thread(|| panic!("inside")));
            assert!(caught.is_err());
            assert_eq!(num_threads(), 3);
        });
    }

    #[test]
    fn matrix_splits_cover_every_row_or_column_once() {
        for (rows, cols) in [(784, 256), (32, 256), (32, 48), (3, 1000), (1, 1), (0, 5)] {
            for threads in 1..5 {
                let s = MatrixSplit::new(rows, cols, threads);
                assert!(s.parts >= 1 && s.parts <= threads);
                let len = if s.by_cols { cols } else { rows };
                let mut next = 0;
                for p in 0..s.parts {
                    let r = s.range(p, rows, cols);
                    assert_eq!(r.start, next.min(len));
                    if s.by_cols && r.end < cols {
                        assert_eq!(r.len() % 16, 0);
                    }
                    next = r.end;
                }
                assert_eq!(next, len, "{rows}x{cols} on {threads}");
            }
        }
        assert!(MatrixSplit::new(32, 256, 2).by_cols);
        assert!(!MatrixSplit::new(784, 256, 2).by_cols);
    }

    #[test]
    fn row_blocks_visit_every_element_once() {
        let seen: Vec<std::sync::atomic::AtomicU8> =
            (0..1000 * 3).map(|_| Default::default()).collect();
        for_each_row_block(1000, 3, 1, |r| {
            assert_eq!(r.start % 3, 0);
            for i in r {
                seen[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        assert!(seen
            .iter()
            .all(|c| c.load(std::sync::atomic::Ordering::Relaxed) == 1));
    }

    #[test]
    fn spinning_workers_share_the_work_and_stop_with_the_call() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let claim = AtomicBool::new(false);
        let sum = |claim: &AtomicBool| -> u64 {
            pool.install(|| with_workers_spinning(claim, || (0..10_000u64).into_par_iter().sum()))
        };
        for _ in 0..20 {
            assert_eq!(sum(&claim), 10_000 * 9_999 / 2);
        }
        assert!(!claim.load(Ordering::Acquire), "released after the call");
        // Calls from several threads at once: one polls, the others run plainly.
        std::thread::scope(|s| {
            let calls: Vec<_> = (0..4).map(|_| s.spawn(|| sum(&claim))).collect();
            for c in calls {
                assert_eq!(c.join().unwrap(), 10_000 * 9_999 / 2);
            }
        });
        // A panic inside reaches the caller, and the claim is released.
        let caught = pool.install(|| {
            std::panic::catch_unwind(|| with_workers_spinning(&claim, || panic!("inside")))
        });
        assert!(caught.is_err());
        assert!(!claim.load(Ordering::Acquire));
        // Outside a pool it is a plain call.
        assert_eq!(with_workers_spinning(&claim, || 4), 4);
    }

    #[test]
    fn a_call_does_not_wait_for_a_poller_busy_with_another_callers_job() {
        use std::time::{Duration, Instant};
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let (claim, started, returned) = (
            AtomicBool::new(false),
            AtomicBool::new(false),
            AtomicBool::new(false),
        );
        let wait_for = |flag: &AtomicBool| {
            let t = Instant::now();
            while !flag.load(Ordering::Acquire) && t.elapsed() < Duration::from_secs(5) {
                std::hint::spin_loop();
            }
            flag.load(Ordering::Acquire)
        };
        let other_saw_the_return = std::thread::scope(|s| {
            // The call: holds its worker until the other caller's job is running (on the
            // second worker, the poller), then returns.
            s.spawn(|| {
                pool.install(|| with_workers_spinning(&claim, || wait_for(&started)));
                returned.store(true, Ordering::Release);
            });
            // Another caller's job, handed to the same pool, that lasts until the call
            // has returned: a call that waited for its pollers would wait for this job.
            let other = s.spawn(|| {
                pool.install(|| {
                    started.store(true, Ordering::Release);
                    wait_for(&returned)
                })
            });
            other.join().unwrap()
        });
        assert!(other_saw_the_return, "the call waited for its poller");
        assert!(!claim.load(Ordering::Acquire));
    }

    #[test]
    fn pool_calls_keep_one_thread_inside_on_calling_thread() {
        let me = std::thread::current().id();
        let (here, threads) =
            on_calling_thread(|| on_pool_spinning(|| (std::thread::current().id(), num_threads())));
        assert_eq!((here, threads), (me, 1));
        if rayon::current_num_threads() > 1 {
            let there = on_pool_spinning(rayon::current_thread_index);
            assert!(there.is_some(), "runs on a worker of the global pool");
        }
    }
}
