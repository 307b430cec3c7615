//! A `Dict::get` of a small value allocates only what decoding the value needs: nothing for a
//! `u64`, one buffer for a `String`. Counted with a global allocator that counts this thread's
//! allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a thread-local `Cell`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn a_get_allocates_only_for_the_decoded_value() {
    let d = shmkit::Dict::<u64, u64>::new().unwrap();
    let s = shmkit::Dict::<String, String>::new().unwrap();
    for i in 0..100 {
        d.insert(i, i * 2).unwrap();
        s.insert(format!("k{i}"), format!("v{i}")).unwrap();
    }
    let key = "k7".to_string();
    // Warm up: the first call maps the storage and grows the thread's key buffer.
    assert_eq!(d.get(&7).unwrap(), Some(14));
    assert_eq!(s.get(&key).unwrap().as_deref(), Some("v7"));
    let n = allocations_in(|| {
        for i in 0..100 {
            assert_eq!(d.get(&i).unwrap(), Some(i * 2));
        }
    });
    assert_eq!(n, 0, "100 gets of a u64 allocated {n} times");
    let n = allocations_in(|| {
        assert_eq!(s.get(&key).unwrap().as_deref(), Some("v7"));
    });
    assert_eq!(n, 1, "a get of a String allocated {n} times");
}
