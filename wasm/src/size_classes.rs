//! The module's allocator: free lists of small blocks in front of the
//! target's own allocator (dlmalloc on `wasm32-unknown-unknown`).
//!
//! A decision makes a few hundred small allocations (the request's JSON
//! tree, its strings, the output's pieces) and frees them all before it
//! answers. Under dlmalloc compiled to wasm each malloc and free pair costs a
//! few hundred wasm instructions, about a quarter of a resident decision in
//! the module (docs/PERFORMANCE.md, "the module's allocator"); natively glibc's
//! thread cache does the same work in a fraction of that. Here a block of up
//! to [`MAX_SMALL`] bytes is taken from and given back to a per-size-class
//! list: a pop or a push.
//!
//! Memory: a freed small block stays on its class's list, never handed to
//! another class, up to [`KEEP`] bytes per class; past that it goes back to
//! the backing allocator. So blocks kept for reuse are bounded by
//! `KEEP` times the number of classes (1 MiB on wasm32), whatever the
//! pattern of sizes.
#![expect(
    unsafe_code,
    reason = "a GlobalAlloc is unsafe by contract; the argument is on each block below"
)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

/// Blocks of up to this many bytes come from the lists.
pub const MAX_SMALL: usize = 256;
/// The backing allocator's granularity and alignment (dlmalloc's: two
/// words), the step between classes, and the alignment of every small block.
pub const GRAIN: usize = 2 * std::mem::size_of::<usize>();
/// The backing allocator's overhead per block (dlmalloc's: one word). A
/// class's blocks are a multiple of [`GRAIN`] less this, so that each fills
/// its backing chunk exactly: rounding sizes up to classes costs no memory
/// dlmalloc would not have spent anyway.
const HEADER: usize = std::mem::size_of::<usize>();
const CLASSES: usize = (MAX_SMALL + HEADER).div_ceil(GRAIN);
/// Bytes of free blocks a class keeps for reuse.
pub const KEEP: usize = 32 * 1024;

struct Lists {
    /// Head of each class's list: a free block whose first word is the next.
    heads: [*mut u8; CLASSES],
    /// Blocks on each list.
    kept: [usize; CLASSES],
}

/// Size classes over the allocator `A`. Not `Sync` but on single-threaded
/// wasm, where it is the module's global allocator.
pub struct SizeClasses<A> {
    backing: A,
    lists: UnsafeCell<Lists>,
}

impl<A> SizeClasses<A> {
    pub const fn new(backing: A) -> Self {
        SizeClasses {
            backing,
            lists: UnsafeCell::new(Lists {
                heads: [ptr::null_mut(); CLASSES],
                kept: [0; CLASSES],
            }),
        }
    }

    /// Blocks the lists hold for reuse, all classes together.
    pub fn kept_blocks(&self) -> usize {
        // SAFETY: single-threaded (the type is not Sync), and no list
        // operation is in progress while this runs.
        unsafe { (*self.lists.get()).kept.iter().sum() }
    }
}

/// The class of a layout, or None when the backing allocator serves it.
#[inline(always)]
fn class(layout: Layout) -> Option<usize> {
    (layout.size() <= MAX_SMALL && layout.align() <= GRAIN)
        .then(|| (layout.size() + HEADER).saturating_sub(1) / GRAIN)
}

/// The layout a class's blocks have in the backing allocator.
#[inline(always)]
fn block(class: usize) -> Layout {
    // At least a word, at most MAX_SMALL + GRAIN, with a power-of-two
    // alignment: always valid.
    Layout::from_size_align((class + 1) * GRAIN - HEADER, GRAIN).unwrap_or(Layout::new::<usize>())
}

// SAFETY (for every method): a small block is at least a word, aligned to
// GRAIN, so its first word can hold the list's link; it is on a list only
// while freed, so the link never overwrites live data; a block leaves a list
// only to be handed out once. Blocks are given back to the backing allocator
// with exactly the layout they were taken with (`block(class)`, the class
// being a function of the caller's layout, which GlobalAlloc's contract makes
// the same at free as at allocation).
unsafe impl<A: GlobalAlloc> GlobalAlloc for SizeClasses<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            return unsafe { self.backing.alloc(layout) };
        };
        let lists = unsafe { &mut *self.lists.get() };
        let head = lists.heads[c];
        if head.is_null() {
            return unsafe { self.backing.alloc(block(c)) };
        }
        lists.heads[c] = unsafe { head.cast::<*mut u8>().read() };
        lists.kept[c] -= 1;
        head
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            return unsafe { self.backing.dealloc(p, layout) };
        };
        let lists = unsafe { &mut *self.lists.get() };
        if lists.kept[c] * block(c).size() >= KEEP {
            return unsafe { self.backing.dealloc(p, block(c)) };
        }
        unsafe { p.cast::<*mut u8>().write(lists.heads[c]) };
        lists.heads[c] = p;
        lists.kept[c] += 1;
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class(layout).is_none() {
            return unsafe { self.backing.alloc_zeroed(layout) };
        }
        let p = unsafe { self.alloc(layout) };
        if !p.is_null() {
            unsafe { p.write_bytes(0, layout.size()) };
        }
        p
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new)) {
            // The block already has room for the new size.
            (Some(a), Some(b)) if a == b => p,
            // Both large: the backing allocator may grow in place.
            (None, None) => unsafe { self.backing.realloc(p, layout, new_size) },
            _ => {
                let q = unsafe { self.alloc(new) };
                if !q.is_null() {
                    unsafe {
                        ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                        self.dealloc(p, layout);
                    }
                }
                q
            }
        }
    }
}

// SAFETY: without the atomics feature a wasm module has exactly one thread,
// so the lists are never touched by two at once.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl Sync for SizeClasses<std::alloc::System> {}

/// The module's global allocator: [`SizeClasses`] over the target's own.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: SizeClasses<std::alloc::System> = SizeClasses::new(std::alloc::System);

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use super::{block, class, SizeClasses, GRAIN, KEEP, MAX_SMALL};

    /// System, counting the blocks it holds.
    #[derive(Default)]
    struct Counting {
        live: Cell<isize>,
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.live.set(self.live.get() + 1);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
            self.live.set(self.live.get() - 1);
            unsafe { System.dealloc(p, layout) }
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("layout")
    }

    #[test]
    fn a_freed_small_block_is_the_next_one_of_its_class() {
        let a = SizeClasses::new(Counting::default());
        let first = layout(40, 8);
        let room = block(class(first).expect("small")).size();
        assert!((40..40 + GRAIN).contains(&room), "{room}");
        unsafe {
            let p = a.alloc(first);
            a.dealloc(p, first);
            // Every size up to the block's room shares its class; one more
            // does not.
            assert_eq!(a.alloc(layout(room, 4)), p);
            let q = a.alloc(layout(room + 1, 8));
            assert_ne!(q, p);
            assert_eq!(q as usize % GRAIN, 0);
            // Over-aligned and large layouts go to the backing allocator.
            let big = a.alloc(layout(MAX_SMALL + 1, 8));
            let aligned = a.alloc(layout(32, 4 * GRAIN));
            assert_eq!(aligned as usize % (4 * GRAIN), 0);
            assert_eq!(a.backing.live.get(), 4);
            for (p, l) in [
                (p, layout(room, 4)),
                (q, layout(room + 1, 8)),
                (big, layout(MAX_SMALL + 1, 8)),
                (aligned, layout(32, 4 * GRAIN)),
            ] {
                a.dealloc(p, l);
            }
            // The two small ones are kept, the others given back.
            assert_eq!(a.kept_blocks(), 2);
            assert_eq!(a.backing.live.get(), 2);
        }
    }

    #[test]
    fn each_class_keeps_at_most_its_share() {
        let a = SizeClasses::new(Counting::default());
        let l = layout(GRAIN, 1);
        let size = block(class(l).expect("small")).size();
        let share = KEEP.div_ceil(size);
        let n = 2 * share;
        unsafe {
            let blocks: Vec<*mut u8> = (0..n).map(|_| a.alloc(l)).collect();
            assert_eq!(a.backing.live.get(), n as isize);
            for p in blocks {
                a.dealloc(p, l);
            }
        }
        assert_eq!(a.kept_blocks(), share);
        assert_eq!(a.backing.live.get(), share as isize);
    }

    /// Blocks of every size, grown, shrunk, zeroed and freed in a scrambled
    /// order, keep their bytes and never overlap.
    #[test]
    fn blocks_keep_their_bytes_through_realloc_and_reuse() {
        let a = SizeClasses::new(Counting::default());
        let mut seed = 11u64;
        let mut next = move |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        for step in 0..20_000 {
            let fill = (step % 251) as u8;
            match next(4) {
                0 | 1 => {
                    let l = layout(1 + next(600), 1 << next(4));
                    let p = unsafe {
                        if next(2) == 0 {
                            a.alloc(l)
                        } else {
                            a.alloc_zeroed(l)
                        }
                    };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % l.align(), 0);
                    unsafe { p.write_bytes(fill, l.size()) };
                    live.push((p, l, fill));
                }
                2 if !live.is_empty() => {
                    let i = next(live.len());
                    let (p, l, f) = live.swap_remove(i);
                    let size = 1 + next(600);
                    let q = unsafe { a.realloc(p, l, size) };
                    let kept = l.size().min(size);
                    let bytes = unsafe { std::slice::from_raw_parts(q, kept) };
                    assert!(bytes.iter().all(|b| *b == f), "step {step}");
                    let l = layout(size, l.align());
                    unsafe { q.write_bytes(fill, size) };
                    live.push((q, l, fill));
                }
                _ if !live.is_empty() => {
                    let (p, l, f) = live.swap_remove(next(live.len()));
                    let bytes = unsafe { std::slice::from_raw_parts(p, l.size()) };
                    assert!(bytes.iter().all(|b| *b == f), "step {step}");
                    unsafe { a.dealloc(p, l) };
                }
                _ => {}
            }
        }
        for (p, l, f) in live.drain(..) {
            let bytes = unsafe { std::slice::from_raw_parts(p, l.size()) };
            assert!(bytes.iter().all(|b| *b == f));
            unsafe { a.dealloc(p, l) };
        }
        assert_eq!(a.backing.live.get(), a.kept_blocks() as isize);
    }
}
