//! `Waitlist`: sleepers on one condition in shared memory, counted so that a waker wakes only
//! sleepers no wake-up is already on its way to. The queue's not-empty / not-full / joined
//! lists and a [`Condition`](crate::Condition)'s waiters are all one of these.
//!
//! Three words: the futex word sleepers sleep on, changed by every wake-up; how many sleepers
//! are registered; and how many wake-ups (*signals*) were sent to them and not yet taken back.
//! Everything but the futex wait itself happens under the lock of the object the list belongs
//! to, so the counts need no read-modify-write atomics. (A queue has two locks: its sleepers
//! register and leave holding both, and each list's wakers hold the one lock of their side,
//! so every change of a list's counts is still made under one lock, see `queue/core.rs`.) A burst of notifications wakes a
//! sleeper once, not once each, and `claim(n)` hands out at most `n` signals: a Condition's
//! `notify(n)` lets at most `n` waiters return. A sleeper killed in its sleep stays counted;
//! that costs a spare wake-up now and then, never a lost one.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::shm::shm_shared;
use crate::sys;

shm_shared! {
    /// See the [module docs](self).
    pub(crate) struct Waitlist {
        /// The futex word: changed by every wake-up.
        word: AtomicU32,
        /// Registered sleepers.
        waiters: AtomicU32,
        /// Wake-ups sent and not yet taken back by a sleeper (`signals <= waiters`).
        signals: AtomicU32,
    }
}

impl Waitlist {
    /// An empty list, to be written into a segment before it is published.
    pub(crate) const fn new() -> Waitlist {
        Waitlist {
            word: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            signals: AtomicU32::new(0),
        }
    }

    /// Under the lock: registers a sleeper.
    pub(crate) fn enter(&self) {
        let w = self.waiters.load(Ordering::Relaxed);
        self.waiters.store(w.wrapping_add(1), Ordering::Relaxed);
    }

    /// Under the lock: the value to sleep on (read before the lock is released).
    pub(crate) fn seq(&self) -> u32 {
        // SYNC: futex-seq. Read under the lock; a waker changes it after its claim.
        self.word.load(Ordering::Acquire)
    }

    /// The futex word, for a waiter that sleeps on several lists at once.
    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.word
    }

    /// With the lock released: sleeps until woken, unless the word has changed since `seq`.
    pub(crate) fn sleep(&self, seq: u32, timeout: Option<Duration>) {
        sys::futex_wait(&self.word, seq, timeout);
    }

    /// Under the lock: takes back one signal, if any was sent; whether one was.
    pub(crate) fn take_signal(&self) -> bool {
        let s = self.signals.load(Ordering::Relaxed);
        if s == 0 {
            return false;
        }
        self.signals.store(s - 1, Ordering::Relaxed);
        true
    }

    /// Under the lock: unregisters a sleeper.
    pub(crate) fn leave(&self) {
        let w = self.waiters.load(Ordering::Relaxed);
        self.waiters.store(w.saturating_sub(1), Ordering::Relaxed);
    }

    /// Under the lock: how many of up to `n` sleepers to wake, counted as signalled.
    pub(crate) fn claim(&self, n: u32) -> u32 {
        let (w, s) = (
            self.waiters.load(Ordering::Relaxed),
            self.signals.load(Ordering::Relaxed),
        );
        let k = n.min(w.saturating_sub(s));
        if k > 0 {
            self.signals.store(s + k, Ordering::Relaxed);
        }
        k
    }

    /// Under the lock or after it: wakes `k` sleepers claimed by `claim`.
    pub(crate) fn wake(&self, k: u32) {
        if k > 0 {
            self.word.fetch_add(1, Ordering::Release); // SYNC: futex-seq
            sys::futex_wake(&self.word, k.min(i32::MAX as u32) as i32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_hand_out_at_most_one_signal_per_sleeper() {
        let l = Waitlist::new();
        for _ in 0..3 {
            l.enter();
        }
        assert_eq!(l.claim(2), 2);
        assert_eq!(l.claim(5), 1, "only one sleeper is left without a signal");
        assert_eq!(l.claim(5), 0);
        assert!(l.take_signal());
        l.leave();
        assert_eq!(l.claim(1), 0, "two sleepers, two signals on their way");
        assert!(l.take_signal() && l.take_signal() && !l.take_signal());
        l.leave();
        l.leave();
        assert_eq!(l.claim(1), 0, "nobody sleeps");
    }
}
