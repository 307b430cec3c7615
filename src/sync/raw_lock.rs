//! `RawLock`: the process-shared lock that survives its holder's death.
//!
//! # Design
//! Three words in shared memory, in the cache line of the data they protect:
//!
//! - `owner` (64 bits): 0 when free, else the holder's *identity* (its tid and start time, see
//!   `sys::thread_identity`) with bit 63 set when threads may be sleeping on it. A lock is taken
//!   with one compare-and-swap 0 → identity, released with one swap to 0: the cost of a plain
//!   futex mutex.
//! - `wake` (32 bits): the futex word. Unlock bumps it and wakes one sleeper, but only when
//!   bit 63 says someone may sleep; an uncontended unlock makes no system call.
//! - `poisoned` (32 bits): raised when a holder dies or panics, cleared by
//!   [`LockGuard::mark_consistent`](crate::LockGuard::mark_consistent): std's `Mutex` poisoning,
//!   across processes.
//!
//! # A dead holder
//! A waiter that has slept a while (1 ms, doubling to 64 ms), or a `try_lock` that finds the lock
//! held, asks `/proc` about the holder's tid. If that task is gone, is a zombie, or has another
//! start time (its tid was reused), the holder died: the waiter takes the lock over with a
//! compare-and-swap from the dead holder's identity (so exactly one waiter wins), raises the
//! poisoned flag and returns [`Acquired::Poisoned`]. The identity pair (tid, start time) never
//! names another task, so a live holder is never judged dead. Where that cannot be known, the
//! lock errs on the side of waiting: a thread that cannot read its own start time records
//! `START_UNVERIFIABLE` and is never taken over, and an unreadable `/proc` counts as alive.
//! Segments are refused across pid namespaces, where tids mean other things (`shm::segment`).
//!
//! # Why not a robust pthread mutex
//! The kernel's robust list would report a death instantly, but glibc owns each thread's
//! single robust-list registration, so from Rust it is reachable only through
//! `PTHREAD_MUTEX_ROBUST`, whose bookkeeping on every lock and unlock costs: measured with the C
//! reference's loop (`benches/c/robust_mutex.c`), 0.6× a plain mutex's throughput with two
//! processes and 0.7× uncontended. This lock costs what a plain one does, and finds a dead
//! holder within tens of milliseconds instead of at once. It also reads no glibc internals,
//! so a garbage lock in a hostile segment is just a lock whose holder is dead.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::shm::shm_shared;
use crate::sys::{self, Liveness};

use super::Yielding;

/// Set in `owner` when a thread may be sleeping on `wake`.
const WAITERS: u64 = 1 << 63;
const TID_MASK: u64 = (1 << sys::TID_BITS) - 1;
/// How long a waiter first sleeps before it checks on the holder; doubled up to `MAX_CHECK`.
const FIRST_CHECK: Duration = Duration::from_millis(1);
const MAX_CHECK: Duration = Duration::from_millis(64);

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The data is as the last holder left it.
    Clean,
    /// A holder died or panicked while holding it, and no one has marked the data consistent.
    Poisoned,
}

/// Why a blocking lock failed: the calling thread holds it already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadlock;

/// Why a lock attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockFailure {
    /// Held by a live holder (for `try_lock`), or still held at the deadline.
    Busy,
    /// The calling thread holds it already.
    Deadlock,
}

shm_shared! {
    /// The robust lock every [`Value`](crate::Value) and [`Array`](crate::Array) carries, as it
    /// lies in shared memory. Opaque: it appears in guard types ([`LockGuard`](crate::LockGuard)'s
    /// default lock), and is used only through them.
    pub struct RawLock {
        owner: AtomicU64,
        wake: AtomicU32,
        poisoned: AtomicU32,
    }
}

const _: () = assert!(std::mem::size_of::<RawLock>() == 16);
const _: () = assert!(std::mem::align_of::<RawLock>() == 8);

thread_local! {
    /// How long this thread yields for a busy lock before sleeping, learned across locks.
    static LOCK_YIELDING: Yielding = const { Yielding::new() };
}

/// Whether the holder named by `owner` (a `sys::thread_identity`) is known to have died.
pub(crate) fn holder_dead(owner: u64) -> bool {
    let start = (owner & !WAITERS) >> sys::TID_BITS;
    if start == sys::START_UNVERIFIABLE {
        return false;
    }
    match sys::task_liveness((owner & TID_MASK) as u32) {
        Liveness::Gone => true,
        Liveness::Alive { start: now } => now != start,
        Liveness::Unknown => false,
    }
}

impl RawLock {
    /// A free, unpoisoned lock, to be written into a segment before it is published.
    pub(crate) const fn new() -> RawLock {
        RawLock {
            owner: AtomicU64::new(0),
            wake: AtomicU32::new(0),
            poisoned: AtomicU32::new(0),
        }
    }

    /// Initialises a free, unpoisoned lock in place.
    ///
    /// # Safety
    /// `this` must be valid for writes, aligned, and not yet visible to another thread or process.
    pub(crate) unsafe fn init(this: *mut RawLock) {
        // SAFETY: forwarded from the caller.
        unsafe {
            this.write(RawLock {
                owner: AtomicU64::new(0),
                wake: AtomicU32::new(0),
                poisoned: AtomicU32::new(0),
            })
        };
    }

    #[inline]
    fn acquired(&self) -> Acquired {
        if self.poisoned.load(Ordering::Relaxed) != 0 {
            Acquired::Poisoned
        } else {
            Acquired::Clean
        }
    }

    /// Blocks until the lock is held.
    #[inline]
    pub(crate) fn lock(&self) -> Result<Acquired, Deadlock> {
        let me = sys::thread_identity();
        // SYNC: lock-acquire. Pairs with the Release swap in `unlock`.
        match self
            .owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(self.acquired()),
            // Without a deadline the slow path fails only with Deadlock.
            Err(_) => self.lock_slow(me, None).map_err(|_| Deadlock),
        }
    }

    /// Takes the lock if it is free, or if its holder is dead.
    pub(crate) fn try_lock(&self) -> Result<Acquired, LockFailure> {
        let me = sys::thread_identity();
        loop {
            let cur = self.owner.load(Ordering::Relaxed);
            if cur == 0 {
                // SYNC: lock-acquire.
                if self
                    .owner
                    .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(self.acquired());
                }
                continue;
            }
            if cur & !WAITERS == me {
                return Err(LockFailure::Deadlock);
            }
            return match self.take_over_if_dead(cur, me) {
                Some(r) => Ok(r),
                None if self.owner.load(Ordering::Relaxed) == 0 => continue,
                None => Err(LockFailure::Busy),
            };
        }
    }

    /// Blocks until the lock is held or `timeout` has passed.
    pub(crate) fn try_lock_for(&self, timeout: Duration) -> Result<Acquired, LockFailure> {
        let me = sys::thread_identity();
        // SYNC: lock-acquire.
        match self
            .owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(self.acquired()),
            Err(_) => self.lock_slow(me, Some(Instant::now() + timeout)),
        }
    }

    /// If the holder `cur` is dead, takes the lock over from it and poisons it.
    fn take_over_if_dead(&self, cur: u64, me: u64) -> Option<Acquired> {
        if !holder_dead(cur) {
            return None;
        }
        // Keep the waiters bit: others may sleep on the dead holder's lock.
        // SYNC: lock-acquire. Only one taker can swap from this exact identity.
        self.owner
            .compare_exchange(
                cur,
                me | (cur & WAITERS),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        self.poisoned.store(1, Ordering::Relaxed);
        log::warn!(
            "took over a lock from thread {}, which died holding it (the data may be half-updated)",
            cur & TID_MASK
        );
        Some(Acquired::Poisoned)
    }

    #[cold]
    fn lock_slow(&self, me: u64, deadline: Option<Instant>) -> Result<Acquired, LockFailure> {
        // No spinning before sleeping: measured on value_incr (two processes, two cores), 20 spins
        // cost half the throughput and 400 cost 40%, because a spinning waiter pulls the lock's
        // cache line away from the running holder. Yielding first (see `sync::Yielding`) reads
        // the line about once a microsecond instead, and spares the holder the wake-up: on the
        // quiet development machine value_incr gained 1.4x and queue_large 1.5x.
        if LOCK_YIELDING.with(|y| y.wait(deadline, || self.owner.load(Ordering::Relaxed) == 0)) {
            // SYNC: lock-acquire.
            if self
                .owner
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(self.acquired());
            }
        }
        let mut slept = false;
        let mut check_every = FIRST_CHECK;
        let mut next_check = Instant::now() + check_every;
        loop {
            let cur = self.owner.load(Ordering::Relaxed);
            if cur == 0 {
                // A thread that slept takes the lock with the waiters bit set, so its unlock wakes
                // the next sleeper (it cannot know whether it was the last).
                let new = if slept { me | WAITERS } else { me };
                // SYNC: lock-acquire.
                if self
                    .owner
                    .compare_exchange(0, new, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(self.acquired());
                }
                continue;
            }
            if cur & !WAITERS == me {
                return Err(LockFailure::Deadlock);
            }
            let now = Instant::now();
            if now >= next_check || deadline.is_some_and(|d| now >= d) {
                if let Some(r) = self.take_over_if_dead(cur, me) {
                    return Ok(r);
                }
                if deadline.is_some_and(|d| now >= d) {
                    if slept {
                        // We may have consumed a wake-up meant to hand the lock on: pass it on.
                        self.wake_one();
                    }
                    return Err(LockFailure::Busy);
                }
                check_every = (check_every * 2).min(MAX_CHECK);
                next_check = now + check_every;
            }
            // Announce a sleeper, then sleep unless the lock changed since `seq` was read.
            let seq = self.wake.load(Ordering::Acquire);
            if cur & WAITERS == 0
                && self
                    .owner
                    .compare_exchange(cur, cur | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            if self.owner.load(Ordering::Relaxed) != cur | WAITERS {
                continue;
            }
            let until = deadline.map_or(next_check, |d| d.min(next_check));
            sys::futex_wait(&self.wake, seq, Some(until.saturating_duration_since(now)));
            slept = true;
        }
    }

    fn wake_one(&self) {
        self.wake.fetch_add(1, Ordering::Release);
        sys::futex_wake(&self.wake, 1);
    }

    /// Whether the calling thread holds the lock.
    pub(crate) fn held_by_me(&self) -> bool {
        self.owner.load(Ordering::Relaxed) & !WAITERS == sys::thread_identity()
    }

    /// Whether anyone holds the lock (a snapshot).
    pub(crate) fn is_locked(&self) -> bool {
        self.owner.load(Ordering::Relaxed) != 0
    }

    /// Releases the lock whoever holds it, as a Python `Lock` allows. `false` if it was not held.
    pub(crate) fn release_any(&self) -> bool {
        self.release_if(|holder| holder != 0)
    }

    /// Releases the lock while its holder (its owner word without the waiters bit) satisfies
    /// `holds`, by compare-and-swap from the value seen; `false`, and nothing changes, if not.
    fn release_if(&self, holds: impl Fn(u64) -> bool) -> bool {
        let mut cur = self.owner.load(Ordering::Relaxed);
        loop {
            if !holds(cur & !WAITERS) {
                return false;
            }
            // SYNC: lock-acquire (the release half).
            match self
                .owner
                .compare_exchange_weak(cur, 0, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if cur & WAITERS != 0 {
            self.wake_one();
        }
        true
    }

    /// Whether the lock is poisoned (a racy snapshot when the caller does not hold it).
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed) != 0
    }

    /// Raises or clears the poisoned flag. The caller holds the lock.
    #[inline]
    pub(crate) fn set_poisoned(&self, poisoned: bool) {
        self.poisoned.store(u32::from(poisoned), Ordering::Relaxed);
    }

    /// Releases the lock if the calling thread holds it; `false` (and nothing changes) if it
    /// does not. Safe: it never releases another thread's hold.
    pub(crate) fn release_mine(&self) -> bool {
        let me = sys::thread_identity();
        self.release_if(|holder| holder == me)
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The calling thread holds the lock.
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        // SYNC: lock-acquire. Release: the protected writes happen before the next acquire.
        if self.owner.swap(0, Ordering::Release) & WAITERS != 0 {
            self.wake_one();
        }
    }
}

/// For inspection from outside (`shmkit inspect`): the holder's tid and whether it is alive
/// (`None` if the lock is free), and whether the lock is poisoned, read from a copy of the
/// lock's bytes (untrusted: any bytes give an answer).
pub(crate) fn describe(bytes: &[u8]) -> Option<(Option<(u32, bool)>, bool)> {
    let owner = u64::from_ne_bytes(bytes.get(0..8)?.try_into().ok()?);
    let poisoned = u32::from_ne_bytes(bytes.get(12..16)?.try_into().ok()?) != 0;
    let holder = (owner & !WAITERS != 0).then(|| ((owner & TID_MASK) as u32, !holder_dead(owner)));
    Some((holder, poisoned))
}

impl super::guard::Sealed for RawLock {}

// SAFETY: `owner` is taken by compare-and-swap from 0 (or from a dead holder's identity, by one
// taker only), so at most one live thread holds it. A cell's lock has no owner-less release:
// the thread's hold lasts until it unlocks, so `()` names it exactly.
unsafe impl super::guard::RawMutex for RawLock {
    type Hold = ();

    #[inline]
    fn set_poisoned(&self, poisoned: bool) {
        RawLock::set_poisoned(self, poisoned);
    }

    #[inline]
    unsafe fn unlock(&self, (): (), poison: bool) {
        if poison {
            RawLock::set_poisoned(self, true);
        }
        // SAFETY: forwarded: the calling thread holds the lock.
        unsafe { RawLock::unlock(self) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> Box<RawLock> {
        Box::new(RawLock {
            owner: AtomicU64::new(0),
            wake: AtomicU32::new(0),
            poisoned: AtomicU32::new(0),
        })
    }

    #[test]
    fn lock_unlock_relock_and_deadlock() {
        let l = lock();
        assert_eq!(l.lock(), Ok(Acquired::Clean));
        assert_eq!(l.try_lock(), Err(LockFailure::Deadlock));
        assert_eq!(l.lock(), Err(Deadlock));
        // SAFETY: held by this thread.
        unsafe { l.unlock() };
        assert_eq!(l.try_lock(), Ok(Acquired::Clean));
        // SAFETY: held by this thread.
        unsafe { l.unlock() };
    }

    #[test]
    fn a_holder_thread_that_exits_without_unlocking_is_taken_over() {
        let l: &'static RawLock = Box::leak(lock());
        std::thread::spawn(move || assert_eq!(l.lock(), Ok(Acquired::Clean)))
            .join()
            .unwrap();
        let t0 = Instant::now();
        assert_eq!(
            l.try_lock_for(Duration::from_secs(5)),
            Ok(Acquired::Poisoned)
        );
        assert!(t0.elapsed() < Duration::from_secs(1));
        l.set_poisoned(false);
        // SAFETY: held by this thread.
        unsafe { l.unlock() };
        assert_eq!(l.lock(), Ok(Acquired::Clean));
        // SAFETY: held by this thread.
        unsafe { l.unlock() };
    }

    #[test]
    fn garbage_owners_are_dead_but_unverifiable_ones_are_not() {
        let l = lock();
        l.owner
            .store(12345 | 777 << sys::TID_BITS | WAITERS, Ordering::Relaxed);
        assert_eq!(l.try_lock(), Ok(Acquired::Poisoned));
        assert_ne!(
            l.owner.load(Ordering::Relaxed) & WAITERS,
            0,
            "the waiters bit is kept"
        );
        let l = lock();
        l.owner.store(
            12345 | sys::START_UNVERIFIABLE << sys::TID_BITS,
            Ordering::Relaxed,
        );
        assert_eq!(l.try_lock(), Err(LockFailure::Busy));
        assert_eq!(
            l.try_lock_for(Duration::from_millis(20)),
            Err(LockFailure::Busy)
        );
    }

    #[test]
    fn threads_exclude_each_other_and_sleepers_are_woken() {
        let l: &'static RawLock = Box::leak(lock());
        let counter: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        assert_eq!(l.lock(), Ok(Acquired::Clean));
                        // A non-atomic read-modify-write: only mutual exclusion keeps it exact.
                        let v = counter.load(Ordering::Relaxed);
                        if i % 5000 == 0 {
                            std::thread::sleep(Duration::from_millis(2)); // force others to sleep
                        }
                        counter.store(v + 1, Ordering::Relaxed);
                        // SAFETY: held by this thread.
                        unsafe { l.unlock() };
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 80_000);
        assert_eq!(l.owner.load(Ordering::Relaxed), 0);
    }
}
