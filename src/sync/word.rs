//! Waiting on a futex word that *is* the state (a semaphore's count, an event's flag), with a
//! count of sleepers so that a waker makes no system call when nobody sleeps.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::sys;

/// The deadline `timeout` from now (`None`: too far to represent, so no limit).
pub(super) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Waits on futex `word` while `blocked()`; the sleepers count lets wakers skip the system
/// call when nobody sleeps. `deadline` None: forever. Returns whether `blocked()` cleared.
pub(super) fn wait_while(
    word: &AtomicU32,
    sleepers: &AtomicU32,
    deadline: Option<Instant>,
    mut blocked: impl FnMut(u32) -> bool,
) -> bool {
    loop {
        let v = word.load(Ordering::Acquire);
        if !blocked(v) {
            return true;
        }
        let timeout = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return false,
            },
        };
        sleepers.fetch_add(1, Ordering::SeqCst);
        // The kernel sleeps only if the word still holds `v`: a change after our check wakes
        // us at once, so no wake-up is lost.
        sys::futex_wait(word, v, timeout);
        sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}
