//! A global allocator that remembers the largest single allocation.
//!
//! The property under test is "a decoder never allocates more than its input limit because
//! the input *claims* a large length". Peak heap size would blur that (it grows with
//! legitimate work); the largest single request is exactly what a forged length drives.
//! Allocations are counted only while a target runs ([`arm`] .. [`disarm`]) so the driver's
//! own buffers do not count.
//!
//! This is the one place in the workspace with `unsafe`: `GlobalAlloc` is an unsafe trait.
//! Every method forwards to the system allocator unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub struct CountingAllocator;

static ARMED: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// Above this, an allocation is refused outright (null, which aborts the process with
/// "memory allocation failed") instead of being attempted: a claim of a terabyte would
/// otherwise take the machine's memory with it. The driver writes the input to disk before
/// each run that could hit it, so an abort still leaves the reproducer behind.
static REFUSE_ABOVE: AtomicUsize = AtomicUsize::new(usize::MAX);

impl CountingAllocator {
    fn note(size: usize) -> bool {
        if ARMED.load(Ordering::Relaxed) {
            LARGEST.fetch_max(size, Ordering::Relaxed);
            return size <= REFUSE_ABOVE.load(Ordering::Relaxed);
        }
        true
    }
}

// SAFETY: every call is forwarded to `System` with the caller's own arguments; the only
// addition is bookkeeping on atomics, which never allocates. Refusing (returning null) is
// permitted by the `GlobalAlloc` contract.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::note(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::note(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !Self::note(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Starts counting from zero; allocations above `refuse_above` bytes fail.
pub fn arm(refuse_above: usize) {
    LARGEST.store(0, Ordering::Relaxed);
    REFUSE_ABOVE.store(refuse_above, Ordering::Relaxed);
    ARMED.store(true, Ordering::Relaxed);
}

/// Stops counting and returns the largest single allocation since [`arm`].
pub fn disarm() -> usize {
    ARMED.store(false, Ordering::Relaxed);
    REFUSE_ABOVE.store(usize::MAX, Ordering::Relaxed);
    LARGEST.load(Ordering::Relaxed)
}
