//! `RawLock`: the process-shared lock that survives its holder's death.
//!
//! It is a robust, error-checking, process-shared pthread mutex plus a shared *poisoned* flag.
//! When the holder dies (SIGKILL, abort, exit) the kernel marks the mutex through the dead
//! thread's robust list, and the next locker gets `EOWNERDEAD`. We then immediately mark the
//! pthread mutex consistent (so it can never become `ENOTRECOVERABLE`) and raise the poisoned
//! flag instead. The flag stays up, and every locker is told, until a holder clears it with
//! [`LockGuard::mark_consistent`](crate::LockGuard::mark_consistent): the semantics of std's
//! `Mutex` poisoning, across processes. A holder that panics raises the flag too.
//!
//! # Why a robust pthread mutex, and what it costs
//! Death detection must be exact: the kernel walks a dying thread's robust list and marks every
//! lock it held, whatever killed it, with no pid that could be reused and no timeout. glibc owns
//! each thread's (single) robust-list registration, so the robust pthread mutex is the one way to
//! get that from Rust without replacing glibc's threading. The price, measured on the 2-core
//! development machine with the C reference's loop (two processes, lock, `+= 1.0`, unlock): a
//! robust mutex does 0.55–0.6× the operations per second of a plain process-shared one under
//! contention, and about 0.75× uncontended (glibc's robust path keeps the per-thread list and a
//! pending-operation word up to date on every lock and unlock). shmkit adds about 10% on top.
//! A faster lock (our own futex word holding the owner's tid, with waiters checking the owner's
//! liveness) would trade exactness for speed: a reused pid or another pid namespace could make a
//! live owner look dead and let two processes in at once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::shm::ShmShared;
use crate::sys::{MutexError, MutexLock, RobustMutex};

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The data is as the last holder left it.
    Clean,
    /// A holder died or panicked while holding it, and no one has marked the data consistent.
    Poisoned,
}

/// The lock as it lies in shared memory.
#[repr(C)]
pub(crate) struct RawLock {
    mutex: RobustMutex,
    /// Non-zero while poisoned. Written only by a thread holding `mutex`.
    poisoned: AtomicU32,
    _reserved: u32,
}

const _: () = assert!(std::mem::size_of::<RawLock>() == 48);

// SAFETY: `RawLock` is repr(C), made of a pthread mutex (plain integers, accessed only through
// glibc) and an atomic; every bit pattern is a valid value, and all mutation is interior.
unsafe impl ShmShared for RawLock {}
// SAFETY: the mutex is process-shared and therefore thread-safe; the flag is atomic.
unsafe impl Sync for RawLock {}
// SAFETY: as for Sync; the lock has no thread affinity until it is locked, and a locked state is
// tied to the guard, which is not Send.
unsafe impl Send for RawLock {}

impl RawLock {
    /// Initialises the lock in place.
    ///
    /// # Safety
    /// `this` must be valid for writes, aligned, and not yet visible to any other thread or
    /// process (the segment has not been published).
    pub(crate) unsafe fn init(this: *mut RawLock) -> std::io::Result<()> {
        // SAFETY: forwarded from the caller; the fields are in bounds of `*this`.
        unsafe {
            (&raw mut (*this).poisoned).write(AtomicU32::new(0));
            (&raw mut (*this)._reserved).write(0);
            RobustMutex::init(&raw mut (*this).mutex)
        }
    }

    /// Whether the mutex found in a segment is one of ours (checked once when opening).
    pub(crate) fn looks_valid(&self) -> bool {
        self.mutex.looks_valid()
    }

    #[inline]
    fn finish(&self, r: Result<MutexLock, MutexError>) -> Result<Acquired, MutexError> {
        match r? {
            MutexLock::OwnerDied => {
                // Keep the pthread mutex usable and record the death in our own flag instead.
                if let Err(e) = self.mutex.make_consistent() {
                    // SAFETY: we hold the mutex (EOWNERDEAD hands it to us).
                    unsafe { self.mutex.unlock() };
                    return Err(MutexError::Broken(e));
                }
                self.poisoned.store(1, Ordering::Relaxed);
                Ok(Acquired::Poisoned)
            }
            MutexLock::Acquired if self.poisoned.load(Ordering::Relaxed) != 0 => {
                Ok(Acquired::Poisoned)
            }
            MutexLock::Acquired => Ok(Acquired::Clean),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> Result<Acquired, MutexError> {
        self.finish(self.mutex.lock())
    }

    #[inline]
    pub(crate) fn try_lock(&self) -> Result<Acquired, MutexError> {
        self.finish(self.mutex.try_lock())
    }

    pub(crate) fn try_lock_for(&self, timeout: Duration) -> Result<Acquired, MutexError> {
        self.finish(self.mutex.lock_timeout(timeout))
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

    /// Releases the lock.
    ///
    /// # Safety
    /// The calling thread holds the lock.
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: forwarded from the caller.
        unsafe { self.mutex.unlock() }
    }
}
