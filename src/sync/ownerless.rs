//! `OwnerlessLock`: the raw lock of a [`Lock`](crate::Lock), which Python lets anyone release.
//!
//! Python's `Lock.release()` may be called by a thread that did not acquire the lock. Beside a
//! scoped guard that is a hazard: if another thread (or process) releases the lock while a
//! guard is alive, and a third party acquires it, the guard's drop must not release the third
//! party's hold. So every acquisition bumps a *hold generation*, the guard remembers the
//! generation of its own hold, and its drop releases the lock only if the lock is still held by
//! its thread under that generation (a compare-and-swap from the thread's own identity, which no
//! other thread can write).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::error::{LockError, LockTimeoutError, TryLockError};
use super::guard::{LockGuard, RawMutex, Sealed};
use super::raw_lock::{Acquired, Deadlock, LockFailure, RawLock};
use crate::shm::shm_shared;

shm_shared! {
    /// The lock of a [`Lock`](crate::Lock) as it lies in shared memory: a [`RawLock`] and the
    /// generation of its current hold. Opaque: it appears in the guard type of
    /// [`Lock::lock`](crate::Lock::lock).
    pub struct OwnerlessLock {
        lock: RawLock,
        /// Bumped by every acquirer while it holds the lock.
        holds: AtomicU64,
    }
}

/// The guard of a [`Lock`](crate::Lock).
pub(crate) type OwnerlessGuard<'a> = LockGuard<'a, (), OwnerlessLock>;

impl OwnerlessLock {
    /// A free lock, to be written into a segment before it is published.
    pub(crate) const fn new() -> Self {
        OwnerlessLock {
            lock: RawLock::new(),
            holds: AtomicU64::new(0),
        }
    }

    /// Turns a successful acquisition into a guard. A lock without data has nothing to repair,
    /// so a dead holder is reported to this acquirer only and the poisoned state cleared.
    fn guard(&self, acquired: Acquired) -> (OwnerlessGuard<'_>, bool) {
        // Under the lock; only the holder's own re-acquisition must be seen by its guard's
        // drop, and that is program order.
        let hold = self.holds.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let died = acquired == Acquired::Poisoned;
        if died {
            self.lock.set_poisoned(false);
        }
        // SAFETY: the calling thread has just acquired the lock, and `hold` is the generation it
        // recorded; the guard protects `()`, which needs no memory (a dangling, aligned pointer
        // is a valid `&()`).
        let guard = unsafe { LockGuard::new(self, hold, NonNull::dangling()) };
        (guard, died)
    }

    /// Locks, blocking.
    pub(crate) fn lock(&self) -> Result<OwnerlessGuard<'_>, LockError<OwnerlessGuard<'_>>> {
        match self.lock.lock() {
            Ok(a) => match self.guard(a) {
                (g, false) => Ok(g),
                (g, true) => Err(LockError::OwnerDied(g)),
            },
            Err(Deadlock) => Err(LockError::Deadlock),
        }
    }

    fn attempt(
        &self,
        outcome: Result<Acquired, LockFailure>,
    ) -> Result<OwnerlessGuard<'_>, TryLockError<OwnerlessGuard<'_>>> {
        match outcome {
            Ok(a) => match self.guard(a) {
                (g, false) => Ok(g),
                (g, true) => Err(TryLockError::OwnerDied(g)),
            },
            Err(LockFailure::Busy) => Err(TryLockError::WouldBlock),
            Err(LockFailure::Deadlock) => Err(TryLockError::Deadlock),
        }
    }

    /// Locks if free (or if its holder is dead).
    pub(crate) fn try_lock(&self) -> Result<OwnerlessGuard<'_>, TryLockError<OwnerlessGuard<'_>>> {
        self.attempt(self.lock.try_lock())
    }

    /// Locks, waiting at most `timeout`.
    pub(crate) fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<OwnerlessGuard<'_>, LockTimeoutError<OwnerlessGuard<'_>>> {
        self.attempt(self.lock.try_lock_for(timeout))
            .map_err(TryLockError::into_timeout)
    }

    /// Releases whoever holds the lock (Python's `release`). `false` if it was not held.
    pub(crate) fn release_any(&self) -> bool {
        self.lock.release_any()
    }

    /// Whether anyone holds the lock (a snapshot).
    pub(crate) fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }
}

impl Sealed for OwnerlessLock {}

// SAFETY: mutual exclusion is `RawLock`'s. `unlock` releases only by compare-and-swap from the
// calling thread's own identity (`release_mine`), and only if no acquisition happened since the
// guard's own (`holds` unchanged): after an owner-less release, a stale guard finds either
// another owner (the CAS fails), a free lock (nothing to do), or a newer generation of its own
// thread's hold (left alone).
unsafe impl RawMutex for OwnerlessLock {
    type Hold = u64;

    fn set_poisoned(&self, poisoned: bool) {
        self.lock.set_poisoned(poisoned);
    }

    unsafe fn unlock(&self, hold: u64, _poison: bool) {
        // A `Lock` protects no data, so a panicking holder has nothing to poison.
        if self.holds.load(Ordering::Relaxed) == hold {
            self.lock.release_mine();
        }
    }
}
