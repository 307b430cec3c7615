//! `LockGuard`: holds a [`RawLock`] and gives access to the data it protects.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use super::error::{LockError, TryLockError};
use super::raw_lock::{Acquired, Deadlock, LockFailure, RawLock};

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
    /// Locks `lock`, blocking, and returns the guard over `data`.
    ///
    /// # Safety
    /// `data` must be valid for reads and writes for `'a` and, within this and every other
    /// process, be accessed only while holding `lock`.
    #[inline]
    pub(crate) unsafe fn lock(
        lock: &'a RawLock,
        data: NonNull<T>,
    ) -> Result<Self, LockError<Self>> {
        match lock.lock() {
            Ok(Acquired::Clean) => Ok(Self::held(lock, data)),
            Ok(Acquired::Poisoned) => Err(LockError::OwnerDied(Self::held(lock, data))),
            Err(Deadlock) => Err(LockError::Deadlock),
        }
    }

    /// Turns the outcome of a non-blocking or timed lock attempt into a guard or an error.
    ///
    /// # Safety
    /// As for [`lock`](Self::lock); `outcome` comes from trying to lock `lock` on this thread.
    #[inline]
    pub(crate) unsafe fn from_attempt(
        lock: &'a RawLock,
        data: NonNull<T>,
        outcome: Result<Acquired, LockFailure>,
    ) -> Result<Self, TryLockError<Self>> {
        match outcome {
            Ok(Acquired::Clean) => Ok(Self::held(lock, data)),
            Ok(Acquired::Poisoned) => Err(TryLockError::OwnerDied(Self::held(lock, data))),
            Err(LockFailure::Busy) => Err(TryLockError::WouldBlock),
            Err(LockFailure::Deadlock) => Err(TryLockError::Deadlock),
        }
    }

    #[inline]
    pub(crate) fn held(lock: &'a RawLock, data: NonNull<T>) -> Self {
        LockGuard {
            lock,
            data,
            _marker: PhantomData,
        }
    }

    /// Declares the protected data consistent again after an owner died, clearing the
    /// poisoned state for every process. Later lockers get a clean guard.
    pub fn mark_consistent(&self) {
        self.lock.set_poisoned(false);
    }
}

impl<'a> LockGuard<'a, ()> {
    /// A guard for a lock that protects no data (a [`Lock`](crate::Lock)'s), taken with the
    /// outcome of locking `lock` on this thread.
    pub(crate) fn unit(lock: &'a RawLock) -> Self {
        // A zero-sized `()` needs no memory: a dangling, aligned pointer is a valid `&()`.
        LockGuard::held(lock, NonNull::dangling())
    }
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
