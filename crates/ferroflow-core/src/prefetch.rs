//! Software prefetch for loops that visit the rows of a large table in a known, random
//! order (embedding gathers and sparse optimiser steps): asking for a row a few iterations
//! before it is used overlaps its cache and TLB misses with the work on earlier rows.

/// How many rows ahead of its current one a random-row loop asks for.
pub const ROWS_AHEAD: usize = 8;

/// Cache lines of a row asked for (the hardware prefetcher follows a row past them).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const LINES_PER_ROW: usize = 4;

/// Hints that the `bytes` bytes from `at` will be read soon. Never faults and never
/// dereferences: any address is allowed.
#[inline(always)]
pub fn prefetch_bytes(at: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let lines = bytes.div_ceil(64).min(LINES_PER_ROW);
        for l in 0..lines {
            #[allow(unused_unsafe)]
            // SAFETY: a prefetch is a hint that reads nothing architecturally and does not
            // fault, whatever the address.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    at.wrapping_add(l * 64) as *const i8,
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, bytes);
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
        // SAFETY: as in `prefetch_bytes`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                at.wrapping_add(l) as *const i8,
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, bytes);
}
