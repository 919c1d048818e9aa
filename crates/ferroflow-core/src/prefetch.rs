//! Software prefetch for loops that visit the rows of a large table in a known, random
//! order (embedding gathers and sparse optimiser steps): asking for a row a few iterations
//! before it is used overlaps its cache and TLB misses with the work on earlier rows. Also
//! for streaming kernels whose next span the hardware prefetcher does not foresee.

/// How many rows ahead of its current one a random-row loop asks for.
pub const ROWS_AHEAD: usize = 8;

/// Cache lines of a row asked for (the hardware prefetcher follows a row past them).
const LINES_PER_ROW: usize = 4;

/// Hints that the `bytes` bytes from `at` will be read soon, asking for their first
/// [`LINES_PER_ROW`] cache lines. Never faults and never dereferences: any address is
/// allowed.
#[inline(always)]
pub fn prefetch_bytes(at: *const u8, bytes: usize) {
    prefetch_span(at, bytes.min(LINES_PER_ROW * 64));
}

/// [`prefetch_bytes`] on row `row` of a table of rows of `width` elements starting at
/// `base`.
#[inline(always)]
pub fn prefetch_row<T>(base: *const T, row: usize, width: usize) {
    let size = std::mem::size_of::<T>();
    prefetch_bytes(
        (base as *const u8).wrapping_add(row * width * size),
        width * size,
    );
}

/// Hints that every cache line of the `bytes` bytes from `at` will be read soon (a span
/// that a streaming kernel reaches next). Never faults: any address is allowed.
#[inline(always)]
pub fn prefetch_span(at: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    for l in (0..bytes).step_by(64) {
        #[allow(unused_unsafe)]
        // SAFETY: a prefetch is a hint that reads nothing architecturally and does not
        // fault, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                at.wrapping_add(l) as *const i8,
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, bytes);
}
