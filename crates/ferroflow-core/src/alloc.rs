//! Output-buffer allocation for kernels.
//!
//! Large fresh buffers are backed by transparent huge pages where the kernel offers them
//! (as NumPy does): first-touch page faults otherwise cost as much as a bandwidth-bound op.

/// Bytes above which a buffer asks for huge pages.
const HUGE_PAGE_THRESHOLD: usize = 4 << 20;

/// An empty vector with room for `n` elements, backed by huge pages when large.
pub(crate) fn with_capacity<T>(n: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(n);
    let bytes = n * std::mem::size_of::<T>();
    if bytes >= HUGE_PAGE_THRESHOLD {
        advise_huge_pages(v.as_ptr() as usize, bytes);
    }
    v
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(addr: usize, bytes: usize) {
    const PAGE: usize = 4096;
    let start = addr.next_multiple_of(PAGE);
    let end = (addr + bytes) & !(PAGE - 1);
    if end > start {
        // SAFETY: the range lies inside an allocation this process owns; MADV_HUGEPAGE only
        // changes how the kernel backs it and never its contents. Failure is harmless.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_addr: usize, _bytes: usize) {}
