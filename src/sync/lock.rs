//! `Lock` and `RLock`: Python's `multiprocessing.Lock` and `RLock`, across processes, on the
//! lock that survives its holder's death.

use std::sync::Arc;
use std::time::Duration;

use super::error::{LockError, LockTimeoutError, NotLocked, NotOwner, TryLockError};
use super::guard::LockGuard;
use super::handle::handle_common;
use super::ownerless::OwnerlessLock;
use super::raw_lock::{Acquired, Deadlock, LockFailure, RawLock};
use crate::error::Result;
use crate::shm::Shared;
use crate::shm::{Kind, shm_shared};

/// A lock with no data inside it, shared by processes (and threads): Python's
/// `multiprocessing.Lock`.
///
/// As in Python, a `Lock` has no owner: any process may [`release`](Self::release) it, and
/// releasing it when it is not held is an error. If a process dies while holding it, the next
/// acquirer gets it with [`LockError::OwnerDied`] (or [`TryLockError::OwnerDied`]) instead of
/// waiting forever; that report goes to the one acquirer that took it over. A thread that
/// acquires a lock it already holds gets [`LockError::Deadlock`] rather than a hang.
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// let lock = shmkit::Lock::new()?;
/// {
///     let _held = lock.lock()?; // released at the end of the scope
/// }
/// lock.acquire()?;
/// lock.release()?;
/// assert!(lock.release().is_err()); // not held
/// # Ok(()) }
/// ```
pub struct Lock {
    shared: Arc<Shared<OwnerlessLock>>,
}

pub(super) fn clean_up(
    raw: &RawLock,
    outcome: Result<Acquired, LockFailure>,
) -> std::result::Result<(), TryLockError<()>> {
    match outcome {
        Ok(Acquired::Clean) => Ok(()),
        Ok(Acquired::Poisoned) => {
            // No data to repair: the report goes to this acquirer only.
            raw.set_poisoned(false);
            Err(TryLockError::OwnerDied(()))
        }
        Err(LockFailure::Busy) => Err(TryLockError::WouldBlock),
        Err(LockFailure::Deadlock) => Err(TryLockError::Deadlock),
    }
}

/// Locks `raw`, blocking; a dead holder is reported to this acquirer (as `OwnerDied`) and the
/// poisoned flag cleared, since a lock without data has nothing to repair.
pub(super) fn blocking(raw: &RawLock) -> std::result::Result<(), LockError<()>> {
    match clean_up(raw, raw.lock().map_err(|Deadlock| LockFailure::Deadlock)) {
        Ok(()) => Ok(()),
        Err(TryLockError::OwnerDied(())) => Err(LockError::OwnerDied(())),
        Err(_) => Err(LockError::Deadlock),
    }
}

impl Lock {
    /// Creates an anonymous lock, unlocked.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if its segment cannot be created.
    pub fn new() -> Result<Self> {
        Self::make(None)
    }

    /// Creates the lock `name`; fails if it exists. This process owns the name.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str) -> Result<Self> {
        Self::make(Some(name))
    }

    fn make(name: Option<&str>) -> Result<Self> {
        Ok(Lock {
            shared: Shared::create(name, Kind::Lock, OwnerlessLock::new())?,
        })
    }

    /// Opens the existing lock `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::KindMismatch`](crate::Error::KindMismatch), ...
    pub fn open(name: &str) -> Result<Self> {
        Ok(Lock {
            shared: Shared::open(name, Kind::Lock)?,
        })
    }

    /// The lock's name; [`Lock::open`] with it opens this lock in another process.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    fn raw(&self) -> &OwnerlessLock {
        self.shared.get()
    }

    /// Acquires the lock and returns a guard that releases it when dropped.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (acquired, with the guard: its holder had died),
    /// [`LockError::Deadlock`] (this thread holds it already).
    pub fn lock(
        &self,
    ) -> std::result::Result<
        LockGuard<'_, (), OwnerlessLock>,
        LockError<LockGuard<'_, (), OwnerlessLock>>,
    > {
        self.raw().lock()
    }

    /// Acquires the lock if it is free, returning a guard.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`], or as [`lock`](Self::lock).
    pub fn try_lock(
        &self,
    ) -> std::result::Result<
        LockGuard<'_, (), OwnerlessLock>,
        TryLockError<LockGuard<'_, (), OwnerlessLock>>,
    > {
        self.raw().try_lock()
    }

    /// Acquires the lock, waiting at most `timeout`, returning a guard.
    ///
    /// # Errors
    /// [`LockTimeoutError::Timeout`] if it was not free in time, or as [`lock`](Self::lock).
    #[doc(alias = "try_lock_for")]
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<
        LockGuard<'_, (), OwnerlessLock>,
        LockTimeoutError<LockGuard<'_, (), OwnerlessLock>>,
    > {
        self.raw().lock_timeout(timeout)
    }

    /// Acquires the lock with no guard (Python's `acquire()`): it stays held until someone
    /// calls [`release`](Self::release). Prefer [`lock`](Self::lock), whose guard releases it.
    ///
    /// # Errors
    /// As [`lock`](Self::lock).
    pub fn acquire(&self) -> std::result::Result<(), LockError<()>> {
        self.lock()
            .map(std::mem::forget)
            .map_err(|e| e.map(std::mem::forget))
    }

    /// Acquires the lock with no guard if it is free (Python's `acquire(block=False)`).
    ///
    /// # Errors
    /// As [`try_lock`](Self::try_lock).
    pub fn try_acquire(&self) -> std::result::Result<(), TryLockError<()>> {
        self.try_lock()
            .map(std::mem::forget)
            .map_err(|e| e.map(std::mem::forget))
    }

    /// Acquires the lock with no guard, waiting at most `timeout` (Python's
    /// `acquire(timeout=...)`).
    ///
    /// # Errors
    /// As [`lock_timeout`](Self::lock_timeout).
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<(), LockTimeoutError<()>> {
        self.lock_timeout(timeout)
            .map(std::mem::forget)
            .map_err(|e| e.map(std::mem::forget))
    }

    /// Releases the lock, whoever acquired it (Python allows that). A guard of the hold
    /// released this way no longer releases anything when dropped: it never releases a later
    /// holder's hold.
    ///
    /// # Errors
    /// [`NotLocked`] if it is not held.
    pub fn release(&self) -> std::result::Result<(), NotLocked> {
        if self.raw().release_any() {
            Ok(())
        } else {
            Err(NotLocked)
        }
    }

    /// Whether the lock is held (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }
}

handle_common!(Lock);

shm_shared! {
    /// The state of an [`RLock`] in shared memory.
    pub(crate) struct RLockState {
        lock: RawLock,
        /// How many times the owner holds it; touched only by the owner.
        depth: std::sync::atomic::AtomicU64,
    }
}

/// A re-entrant lock: Python's `multiprocessing.RLock`. Its owner (one thread of one process)
/// may acquire it again and must release it as many times; anyone else who releases it gets
/// an error. A dead owner is reported as for [`Lock`].
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// let r = shmkit::RLock::new()?;
/// r.acquire()?;
/// r.acquire()?; // again, by its owner
/// assert!(r.is_owned());
/// r.release()?;
/// r.release()?; // as many times
/// assert!(r.release().is_err()); // no longer owned
/// # Ok(()) }
/// ```
pub struct RLock {
    shared: Arc<Shared<RLockState>>,
}

impl RLock {
    /// Creates an anonymous re-entrant lock.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io).
    pub fn new() -> Result<Self> {
        Self::make(None)
    }

    /// Creates the re-entrant lock `name`; fails if it exists.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str) -> Result<Self> {
        Self::make(Some(name))
    }

    fn make(name: Option<&str>) -> Result<Self> {
        let state = RLockState {
            lock: RawLock::new(),
            depth: std::sync::atomic::AtomicU64::new(0),
        };
        Ok(RLock {
            shared: Shared::create(name, Kind::RLock, state)?,
        })
    }

    /// Opens the existing re-entrant lock `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::KindMismatch`](crate::Error::KindMismatch), ...
    pub fn open(name: &str) -> Result<Self> {
        Ok(RLock {
            shared: Shared::open(name, Kind::RLock)?,
        })
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    fn acquire_with(
        &self,
        attempt: impl FnOnce(&RawLock) -> Result<Acquired, LockFailure>,
    ) -> std::result::Result<(), TryLockError<()>> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = self.shared.get();
        if s.lock.held_by_me() {
            s.depth.fetch_add(1, Relaxed);
            return Ok(());
        }
        let r = clean_up(&s.lock, attempt(&s.lock));
        if matches!(r, Ok(()) | Err(TryLockError::OwnerDied(()))) {
            s.depth.store(1, Relaxed);
        }
        r
    }

    /// Acquires the lock (again, if this thread owns it already).
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (acquired: its previous owner had died).
    pub fn acquire(&self) -> std::result::Result<(), LockError<()>> {
        match self.acquire_with(|l| l.lock().map_err(|Deadlock| LockFailure::Deadlock)) {
            Ok(()) => Ok(()),
            Err(TryLockError::OwnerDied(())) => Err(LockError::OwnerDied(())),
            // A re-entrant lock's owner takes it again, so only a holder elsewhere blocks, and
            // a blocking attempt waits for it: neither `WouldBlock` nor `Deadlock` can come.
            Err(_) => Err(LockError::Deadlock),
        }
    }

    /// Acquires the lock if it is free or already this thread's.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`], [`TryLockError::OwnerDied`].
    pub fn try_acquire(&self) -> std::result::Result<(), TryLockError<()>> {
        self.acquire_with(RawLock::try_lock)
    }

    /// Acquires the lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockTimeoutError::Timeout`] if it was not free in time, [`LockTimeoutError::OwnerDied`].
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<(), LockTimeoutError<()>> {
        self.acquire_with(|l| l.try_lock_for(timeout))
            .map_err(TryLockError::into_timeout)
    }

    /// Releases one level of this thread's ownership; the last release unlocks it.
    ///
    /// # Errors
    /// [`NotOwner`] if this thread does not own it.
    pub fn release(&self) -> std::result::Result<(), NotOwner> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = self.shared.get();
        if !s.lock.held_by_me() {
            return Err(NotOwner);
        }
        if s.depth.load(Relaxed) <= 1 {
            s.depth.store(0, Relaxed);
            s.lock.release_mine();
        } else {
            s.depth.fetch_sub(1, Relaxed);
        }
        Ok(())
    }

    /// Whether this thread owns the lock.
    pub fn is_owned(&self) -> bool {
        self.shared.get().lock.held_by_me()
    }
}

handle_common!(RLock);
