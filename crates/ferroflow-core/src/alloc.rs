//! Output-buffer allocation for kernels: a bounded cache of large buffers.
//!
//! A bandwidth-bound op on a fresh multi-megabyte output pays first-touch page faults that
//! cost as much as the op itself. Like PyTorch's caching allocator, large buffers released
//! by dropped tensors are kept in size-keyed bins and handed to the next kernel asking for
//! that size or a little less, already mapped. Of the buffers that fit, the one released
//! last is handed out: its lines are the likeliest to be still in cache, and a chain of
//! layers of different sizes then cycles through a few buffers (as an interpreter's arena
//! does) instead of one per size, which keeps the weights in the last-level cache. The
//! cache is bounded (`FERROFLOW_POOL_MB`, default 1024 MiB; 0 disables it) so a training
//! loop's resident memory stays flat. Fresh large buffers ask for transparent huge pages
//! where the kernel offers them (as NumPy does).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Bytes from which a buffer is cached when released (smaller ones go straight to malloc).
const POOL_MIN_BYTES: usize = 256 << 10;
/// Pooled capacities are rounded up to this many bytes so nearby sizes share a bin.
const POOL_GRANULE: usize = 4096;
/// Most buffers kept per size bin.
const MAX_PER_BIN: usize = 8;
/// A request takes a cached buffer of up to this many times its size (rounded).
const MAX_SLACK: usize = 2;
/// Bytes above which a fresh buffer asks for huge pages.
const HUGE_PAGE_THRESHOLD: usize = 4 << 20;

/// A released allocation: start address (as an integer so the pool is `Send`), how many
/// of its bytes its last owner had initialised, and when it was released (a count of
/// releases: larger is more recent).
struct RawBuf(usize, usize, u64);

/// (alignment, capacity in bytes) of a bin: bins of one alignment are adjacent, in size
/// order.
type BinKey = (usize, usize);

/// The bins, and the count of releases so far.
#[derive(Default)]
struct Bins {
    by_size: BTreeMap<BinKey, Vec<RawBuf>>,
    released: u64,
}

impl Bins {
    /// Takes the most recently released buffer of alignment `align` whose capacity is
    /// from `bytes` to [`MAX_SLACK`] times that, preferring one whose last owner wrote
    /// `bytes` or more (the rest of a buffer is zeroed before use); (capacity, buffer).
    fn take(&mut self, bytes: usize, align: usize) -> Option<(usize, RawBuf)> {
        let newest = self
            .by_size
            .range((align, bytes)..=(align, bytes.saturating_mul(MAX_SLACK)))
            .filter_map(|(key, bin)| {
                let b = bin.last()?;
                Some((*key, (b.1 >= bytes, b.2)))
            })
            .max_by_key(|&(_, rank)| rank)?
            .0;
        let buf = self.by_size.get_mut(&newest)?.pop()?;
        Some((newest.1, buf))
    }
}

struct Pool {
    bins: Mutex<Bins>,
    cached_bytes: AtomicUsize,
    limit_bytes: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mb = std::env::var("FERROFLOW_POOL_MB")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(1024);
        Pool {
            bins: Mutex::new(Bins::default()),
            cached_bytes: AtomicUsize::new(0),
            limit_bytes: mb << 20,
        }
    })
}

/// Bytes currently held by the buffer cache (for tests and memory reports).
pub fn cached_bytes() -> usize {
    pool().cached_bytes.load(Ordering::Relaxed)
}

/// Frees every cached buffer.
pub fn clear_cache() {
    let p = pool();
    let drained = match p.bins.lock() {
        Ok(mut bins) => std::mem::take(&mut bins.by_size),
        Err(_) => return,
    };
    for ((align, bytes), bufs) in drained {
        for b in bufs {
            p.cached_bytes.fetch_sub(bytes, Ordering::Relaxed);
            // SAFETY: every pooled buffer came from the global allocator with this exact
            // size and alignment (see `recycle`), and is owned by nobody else.
            unsafe {
                std::alloc::dealloc(
                    b.0 as *mut u8,
                    std::alloc::Layout::from_size_align_unchecked(bytes, align),
                )
            };
        }
    }
}

/// An empty vector with room for at least `n` elements, reusing a cached buffer when one
/// of the right size is free, else a fresh allocation (backed by huge pages when large).
pub(crate) fn with_capacity<T>(n: usize) -> Vec<T> {
    with_capacity_init(n).0
}

/// [`with_capacity`], and how many leading elements of the buffer hold bytes its previous
/// owner wrote (0 for a fresh allocation).
fn with_capacity_init<T>(n: usize) -> (Vec<T>, usize) {
    let size = std::mem::size_of::<T>();
    let bytes = n * size;
    if bytes < POOL_MIN_BYTES || size == 0 || !POOL_GRANULE.is_multiple_of(size) {
        return (Vec::with_capacity(n), 0);
    }
    let rounded = bytes.next_multiple_of(POOL_GRANULE);
    let p = pool();
    let hit = p
        .bins
        .lock()
        .ok()
        .and_then(|mut bins| bins.take(rounded, std::mem::align_of::<T>()));
    if let Some((capacity, b)) = hit {
        p.cached_bytes.fetch_sub(capacity, Ordering::Relaxed);
        // SAFETY: the buffer was allocated by the global allocator as a `[T]` of
        // `capacity / size` elements with `T`'s alignment (its bin's key; every pooled
        // capacity is a multiple of the granule, itself a multiple of `size`), and its
        // ownership moved to the pool when released; length 0 means no element is
        // assumed live.
        let v = unsafe { Vec::from_raw_parts(b.0 as *mut T, 0, capacity / size) };
        return (v, (b.1 / size).min(capacity / size));
    }
    let v: Vec<T> = Vec::with_capacity(rounded / size);
    advise_huge_pages_if_large(&v);
    (v, 0)
}

/// `n` elements of unspecified value (a reused buffer's old contents, zeros elsewhere) for
/// a kernel that overwrites every one: saves the zeroing pass of [`zeroed`].
pub fn overwritable<T: crate::Numeric>(n: usize) -> Vec<T> {
    let (mut v, init) = with_capacity_init::<T>(n);
    // SAFETY: the capacity is at least `n`, and the first `init` elements were written by
    // the buffer's previous owner; numeric element types accept any bit pattern (bins are
    // keyed by size and alignment only, so the bytes may come from another such type).
    unsafe { v.set_len(init.min(n)) };
    v.resize(n, T::ZERO);
    v
}

/// A vector of `n` copies of `T::default()`, on a cached buffer when one is free. Pass it
/// to `Tensor::from_vec` and the buffer returns to the cache when the tensor is dropped
/// (kernels outside the core, such as optimiser updates, use this).
pub fn zeroed<T: Copy + Default>(n: usize) -> Vec<T> {
    let mut v = with_capacity(n);
    v.resize(n, T::default());
    v
}

/// An empty vector with room for `n` elements that costs no memory until written: fresh
/// address space (never a cached, already-mapped buffer), so a buffer filled bit by bit
/// (optimiser slots of the rows reached so far) grows in place. Small pages on purpose:
/// a huge page would zero 2 MiB at the fault that first reaches it, a stall inside a
/// training step. `None` when the address space cannot be had.
pub fn reserve_unmapped<T>(n: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    Some(v)
}

/// An empty vector with room for `n` elements, on transparent huge pages when large, for
/// a table read at random rows (small pages cost a TLB miss per row there). `None` when
/// the memory cannot be had.
pub fn reserve_huge<T>(n: usize) -> Option<Vec<T>> {
    let v = reserve_unmapped(n)?;
    advise_huge_pages_if_large(&v);
    Some(v)
}

/// Maps the pages behind elements `range` of `v`'s capacity now, in one call, instead of
/// a page fault at each first write (Linux's `MADV_POPULATE_WRITE`; a no-op on kernels
/// without it and elsewhere). No element's value changes, written or not.
pub fn map_capacity<T>(v: &mut Vec<T>, range: std::ops::Range<usize>) {
    if let Some((addr, bytes)) = capacity_bytes(v, range) {
        map_range(addr, bytes);
    }
}

/// (address, bytes) of elements `range` of `v`'s capacity, cut at the capacity; `None`
/// when that is empty.
fn capacity_bytes<T>(v: &Vec<T>, range: std::ops::Range<usize>) -> Option<(usize, usize)> {
    let end = range.end.min(v.capacity());
    let size = std::mem::size_of::<T>();
    (range.start < end).then(|| {
        (
            v.as_ptr() as usize + range.start * size,
            (end - range.start) * size,
        )
    })
}

/// [`map_capacity`] on a thread of its own, so that the kernel zeroes the pages while the
/// caller computes: joining the handle means the range is mapped. Safe whatever happens
/// to `v` meanwhile, as mapping never changes memory's contents (a freed range makes the
/// call fail harmlessly). `None` when the range is empty or no thread could be started.
pub fn map_capacity_in_background<T>(
    v: &Vec<T>,
    range: std::ops::Range<usize>,
) -> Option<std::thread::JoinHandle<()>> {
    let (addr, bytes) = capacity_bytes(v, range)?;
    std::thread::Builder::new()
        .name("ferroflow-map".into())
        .spawn(move || map_range(addr, bytes))
        .ok()
}

fn map_range(addr: usize, bytes: usize) {
    #[cfg(target_os = "linux")]
    advise_pages(addr, bytes, libc::MADV_POPULATE_WRITE);
    #[cfg(not(target_os = "linux"))]
    let _ = (addr, bytes);
}

/// A temporary buffer (a kernel's, or a message packed for a collective) that returns to
/// the cache when dropped, so the next one of its size is already mapped.
pub struct Scratch<T: Copy>(pub Vec<T>);

impl<T: Copy + Default> Scratch<T> {
    /// `n` default-valued elements.
    pub fn zeroed(n: usize) -> Self {
        Scratch(zeroed(n))
    }
}

impl<T: Copy> Drop for Scratch<T> {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.0));
    }
}

/// Takes ownership of a released buffer: caches it when large and the cache has room,
/// frees it otherwise. Only plain-data buffers are cached; elements with destructors (the
/// reference counts of strings) are dropped as usual.
pub(crate) fn recycle<T>(v: Vec<T>) {
    if std::mem::needs_drop::<T>() {
        return;
    }
    let size = std::mem::size_of::<T>();
    let bytes = v.capacity() * size;
    if bytes < POOL_MIN_BYTES || !bytes.is_multiple_of(POOL_GRANULE) {
        return;
    }
    let p = pool();
    if p.cached_bytes.load(Ordering::Relaxed) + bytes > p.limit_bytes {
        return;
    }
    let key = (std::mem::align_of::<T>(), bytes);
    let Ok(mut bins) = p.bins.lock() else { return };
    bins.released += 1;
    let stamp = bins.released;
    let bin = bins.by_size.entry(key).or_default();
    if bin.len() >= MAX_PER_BIN {
        return;
    }
    let init = v.len() * size;
    let mut v = std::mem::ManuallyDrop::new(v);
    bin.push(RawBuf(v.as_mut_ptr() as usize, init, stamp));
    p.cached_bytes.fetch_add(bytes, Ordering::Relaxed);
}

/// Asks for huge pages behind `v`'s capacity when it is at least [`HUGE_PAGE_THRESHOLD`].
fn advise_huge_pages_if_large<T>(v: &Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes >= HUGE_PAGE_THRESHOLD {
        advise_huge_pages(v.as_ptr() as usize, bytes);
    }
}

fn advise_huge_pages(addr: usize, bytes: usize) {
    #[cfg(target_os = "linux")]
    advise_pages(addr, bytes, libc::MADV_HUGEPAGE);
    #[cfg(not(target_os = "linux"))]
    let _ = (addr, bytes);
}

/// `madvise(advice)` on the whole pages inside `bytes` bytes from `addr`, an allocation
/// this process owns. Only for advice that changes how the kernel backs the pages and
/// never their contents; failure (an old kernel) is harmless.
#[cfg(target_os = "linux")]
fn advise_pages(addr: usize, bytes: usize, advice: libc::c_int) {
    const PAGE: usize = 4096;
    let start = addr.next_multiple_of(PAGE);
    let end = (addr + bytes) & !(PAGE - 1);
    if end > start {
        // SAFETY: the range lies inside an allocation this process owns, and the advice
        // (see above) leaves its contents as they are.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, advice);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_buffer_that_fits_is_taken() {
        let mut bins = Bins::default();
        let put = |bins: &mut Bins, bytes: usize, addr: usize| {
            bins.released += 1;
            let stamp = bins.released;
            bins.by_size
                .entry((4, bytes))
                .or_default()
                .push(RawBuf(addr, 0, stamp));
        };
        put(&mut bins, 8192, 1);
        put(&mut bins, 16384, 2);
        put(&mut bins, 12288, 3);
        put(&mut bins, 32768, 4);
        let mut take = |bytes| bins.take(bytes, 4).map(|(capacity, b)| (capacity, b.0));
        // Up to twice the size asked for, newest first; never more than twice.
        assert_eq!(take(8192), Some((12288, 3)));
        assert_eq!(take(8192), Some((16384, 2)));
        assert_eq!(take(8192), Some((8192, 1)));
        assert_eq!(take(8192), None);
        assert_eq!(take(20480), Some((32768, 4)));
        put(&mut bins, 8192, 5);
        assert!(bins.take(8192, 8).is_none(), "another alignment's bins");
        // A buffer whose last owner wrote the bytes asked for goes first.
        bins.released += 1;
        let stamp = bins.released;
        bins.by_size
            .entry((4, 12288))
            .or_default()
            .push(RawBuf(6, 8192, stamp));
        bins.by_size.get_mut(&(4, 8192)).unwrap()[0].2 = stamp + 1;
        let take = |bins: &mut Bins| bins.take(8192, 4).map(|(capacity, b)| (capacity, b.0));
        assert_eq!(take(&mut bins), Some((12288, 6)));
        assert_eq!(take(&mut bins), Some((8192, 5)));
    }

    #[test]
    fn released_buffers_are_reused_and_bounded() {
        let n = 1 << 20; // 4 MiB of f32
        let mut a: Vec<f32> = with_capacity(n);
        a.resize(n, 1.0);
        let ptr = a.as_ptr() as usize;
        recycle(a);
        let b: Vec<f32> = with_capacity(n - 3);
        assert!(b.capacity() >= n - 3);
        // Another test may have taken it in between; when not, it is the same buffer.
        if b.as_ptr() as usize != ptr {
            eprintln!("pooled buffer taken by a concurrent test");
        }
        recycle(b);
        let small: Vec<f32> = with_capacity(10);
        assert!(small.capacity() >= 10);
    }
}
