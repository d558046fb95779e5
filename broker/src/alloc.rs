//! A global allocator that survives hostile length claims in requests.
//!
//! The protocol crate sizes arrays by the count a request claims (`Vec::with_capacity(n)`)
//! before it reads the elements, so a 17-byte request claiming 2^31 topics asks for hundreds of
//! GB. Rust aborts the process when an allocation fails, which would let any client stop the
//! broker. [`GuardedAlloc`] serves allocations of [`HUGE`] bytes or more as `MAP_NORESERVE`
//! anonymous mappings: the address space is reserved but no memory is committed, the decode
//! fails a few bytes later for lack of data, and the mapping is returned untouched. Everything
//! smaller goes to the system allocator unchanged.
//!
//! The `rill` binary installs it. A program that embeds a broker should install it too:
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: rill_broker::alloc::GuardedAlloc = rill_broker::alloc::GuardedAlloc;
//! # fn main() {}
//! ```
//!
//! It relies on Linux's default overcommit policy (`vm.overcommit_memory` 0 or 1); under strict
//! accounting (2) `MAP_NORESERVE` is ignored and a huge claim still fails.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Allocations at least this large are reserved, not committed.
pub const HUGE: usize = 1 << 30;
const PAGE: usize = 4096;

/// The allocator; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedAlloc;

fn huge(size: usize, align: usize) -> bool {
    size >= HUGE && align <= PAGE
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no preconditions.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p as *mut u8
    }
}

// SAFETY: every pointer handed out is either from `System` (small layouts) or from `mmap` (huge
// layouts); `dealloc` and `realloc` route by the same size test, so each is returned to the
// allocator that made it. Mappings are page-aligned, which satisfies any alignment <= PAGE.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if huge(layout.size(), layout.align()) {
            // SAFETY: see `map`.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if huge(layout.size(), layout.align()) {
            // SAFETY: see `map`; anonymous mappings are zero-filled.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if huge(layout.size(), layout.align()) {
            // SAFETY: `p` came from `map` with this size.
            unsafe { libc::munmap(p as *mut libc::c_void, layout.size()) };
        } else {
            // SAFETY: forwarded contract.
            unsafe { System.dealloc(p, layout) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !huge(layout.size(), layout.align()) && !huge(new_size, layout.align()) {
            // SAFETY: forwarded contract.
            return unsafe { System.realloc(p, layout, new_size) };
        }
        // SAFETY: the caller guarantees `new_size` is valid for `layout.align()`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: non-zero size (`new_size` > 0 per the GlobalAlloc contract).
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not overlap.
            unsafe {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_claims_reserve_without_committing() {
        let a = GuardedAlloc;
        // 512 GiB: far beyond this machine's memory; reserving it must still succeed.
        let layout = Layout::from_size_align(512 << 30, 8).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            *p = 7; // touching one page commits one page
            let q = a.realloc(p, layout, 16);
            assert_eq!(*q, 7);
            a.dealloc(q, Layout::from_size_align(16, 8).unwrap());
        }
        let small = Layout::from_size_align(100, 8).unwrap();
        unsafe {
            let p = a.alloc_zeroed(small);
            assert_eq!(*p.add(99), 0);
            let p = a.realloc(p, small, 2 << 30);
            assert!(!p.is_null());
            a.dealloc(p, Layout::from_size_align(2 << 30, 8).unwrap());
        }
    }
}
