//! `LockGuard`: holds a [`RawLock`] and gives access to the data it protects.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use super::error::{LockError, TryLockError};
use super::raw_lock::{Acquired, RawLock};
use crate::sys::MutexError;

/// Proof that a shared lock is held: derefs to the protected data (`T` for a
/// [`Value`](crate::Value), `[T]` for an [`Array`](crate::Array)) and releases the lock on drop.
///
/// Not `Send`: a pthread mutex must be unlocked by the thread that locked it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a, T: ?Sized> {
    lock: &'a RawLock,
    data: NonNull<T>,
    _marker: PhantomData<(&'a mut T, *const ())>,
}

// SAFETY: sharing `&LockGuard` across threads only gives `&T`, which is fine for `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for LockGuard<'_, T> {}

impl<'a, T: ?Sized> LockGuard<'a, T> {
    /// Turns the outcome of a lock attempt into a guard or an error carrying the guard.
    ///
    /// # Safety
    /// If `outcome` is `Ok`, the calling thread holds `lock`. `data` must be valid for reads
    /// and writes for `'a` and, within this and every other process, be accessed only while
    /// holding `lock`.
    #[inline]
    pub(crate) unsafe fn from_outcome(
        lock: &'a RawLock,
        data: NonNull<T>,
        outcome: Result<Acquired, MutexError>,
    ) -> Result<Self, TryLockError<Self>> {
        let guard = |_| LockGuard {
            lock,
            data,
            _marker: PhantomData,
        };
        match outcome {
            Ok(Acquired::Clean) => Ok(guard(())),
            Ok(Acquired::Poisoned) => Err(TryLockError::OwnerDied(guard(()))),
            Err(MutexError::Busy) => Err(TryLockError::WouldBlock),
            Err(MutexError::Deadlock) => Err(TryLockError::Deadlock),
            Err(MutexError::Broken(e)) => Err(TryLockError::Broken(e)),
        }
    }

    /// Declares the protected data consistent again after an owner died, clearing the
    /// poisoned state for every process. Later lockers get a clean guard.
    pub fn mark_consistent(&self) {
        self.lock.set_poisoned(false);
    }
}

/// A blocking lock never reports `WouldBlock`; should the OS say so anyway, it is reported as a
/// broken lock rather than a panic.
pub(crate) fn blocking<G>(r: Result<G, TryLockError<G>>) -> Result<G, LockError<G>> {
    r.map_err(|e| match e {
        TryLockError::OwnerDied(g) => LockError::OwnerDied(g),
        TryLockError::Deadlock => LockError::Deadlock,
        TryLockError::Broken(e) => LockError::Broken(e),
        TryLockError::WouldBlock => {
            LockError::Broken(std::io::Error::from(std::io::ErrorKind::WouldBlock))
        }
    })
}

impl<T: ?Sized> Deref for LockGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock, and by the constructor's contract everyone accesses `data`
        // only under it, so nobody writes it while this shared borrow of the guard lives.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for LockGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only access from this thread.
        unsafe { self.data.as_mut() }
    }
}

impl<T: ?Sized> Drop for LockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A holder that panics may have left the data half-updated: tell the next one.
            self.lock.set_poisoned(true);
        }
        // SAFETY: a guard exists only while its thread holds the lock.
        unsafe { self.lock.unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for LockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
