//! `LockGuard`: one guard, generic over the raw lock it releases (lock_api's model).
//!
//! A [`RawMutex`] is a process-shared lock that can say which *hold* a guard stands for, and
//! release exactly that hold. [`LockGuard`] borrows one, derefs to the data it protects, and
//! releases its hold on drop. The constructors that assume the lock is held are `unsafe fn`:
//! the safe ways to get a guard are the `lock` methods of [`Value`](crate::Value),
//! [`Array`](crate::Array) and [`Lock`](crate::Lock).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use super::error::{LockError, TryLockError};
use super::raw_lock::{Acquired, Deadlock, LockFailure, RawLock};

mod sealed {
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// A process-shared lock that a [`LockGuard`] releases. Implemented by shmkit's raw locks
/// only (the trait is sealed); it appears in guard types so that one guard serves them all.
/// Code outside shmkit can neither implement it nor build a guard:
///
/// ```compile_fail,E0277
/// struct Fake;
/// // error: the trait `Sealed` is not implemented for `Fake`
/// unsafe impl shmkit::RawMutex for Fake {
///     type Hold = ();
///     fn set_poisoned(&self, _: bool) {}
///     unsafe fn unlock(&self, _: (), _: bool) {}
/// }
/// ```
///
/// # Safety
/// Implementors guarantee mutual exclusion across threads and processes: from an acquisition
/// that produced a [`Hold`](Self::Hold) until `unlock` of that hold, no other thread acquires
/// the lock (a holder that dies is the one exception, reported to the next acquirer as
/// owner-died). `unlock(hold)` must release the lock only while it is still held under `hold`,
/// so a stale guard can never release someone else's hold.
pub unsafe trait RawMutex: Sealed {
    /// What a guard remembers of its hold, to release exactly that hold.
    type Hold: Copy;

    /// Raises or clears the poisoned state that every later acquirer is told about. The
    /// caller holds the lock.
    #[doc(hidden)]
    fn set_poisoned(&self, poisoned: bool);

    /// Releases `hold`, raising the poisoned state first if `poison`. Does nothing if the
    /// lock is no longer held under `hold` (an owner-less [`Lock`](crate::Lock) may have been
    /// released, and taken again, by someone else).
    ///
    /// # Safety
    /// The calling thread acquired the lock under `hold` and has not released that hold.
    #[doc(hidden)]
    unsafe fn unlock(&self, hold: Self::Hold, poison: bool);
}

/// Proof that a shared lock is held: derefs to the protected data (`T` for a
/// [`Value`](crate::Value), `[T]` for an [`Array`](crate::Array), `()` for a
/// [`Lock`](crate::Lock)) and releases the lock on drop.
///
/// Not `Send`: the lock names its holder by thread, so it must be released by the thread that
/// took it.
///
/// ```compile_fail,E0277
/// let v = shmkit::Value::new(1u8).unwrap();
/// let guard = v.lock().unwrap();
/// // error: `LockGuard` cannot be sent between threads safely
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard));
/// });
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a, T: ?Sized, L: RawMutex = RawLock> {
    lock: &'a L,
    hold: L::Hold,
    data: NonNull<T>,
    _marker: PhantomData<(&'a mut T, *const ())>,
}

// SAFETY: sharing `&LockGuard` across threads only gives `&T` (and `&L`, whose methods reachable
// through a shared guard are `Sync`-safe atomics), which is fine for `T: Sync`.
unsafe impl<T: ?Sized + Sync, L: RawMutex + Sync> Sync for LockGuard<'_, T, L> {}

impl<'a, T: ?Sized, L: RawMutex> LockGuard<'a, T, L> {
    /// A guard for a hold the calling thread already has.
    ///
    /// # Safety
    /// The calling thread holds `lock` under `hold`, and hands that hold to the guard (nobody
    /// else will release it). `data` is valid for reads and writes for `'a` and, in this and
    /// every other process, is accessed only while holding `lock`.
    #[inline]
    pub(crate) unsafe fn new(lock: &'a L, hold: L::Hold, data: NonNull<T>) -> Self {
        LockGuard {
            lock,
            hold,
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

impl<'a, T: ?Sized> LockGuard<'a, T, RawLock> {
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
        let acquired = match lock.lock() {
            Ok(a) => a,
            Err(Deadlock) => return Err(LockError::Deadlock),
        };
        // SAFETY: the lock was just acquired by this thread; `data` is as the caller promised.
        let guard = unsafe { Self::new(lock, (), data) };
        match acquired {
            Acquired::Clean => Ok(guard),
            Acquired::Poisoned => Err(LockError::OwnerDied(guard)),
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
        let acquired = match outcome {
            Ok(a) => a,
            Err(LockFailure::Busy) => return Err(TryLockError::WouldBlock),
            Err(LockFailure::Deadlock) => return Err(TryLockError::Deadlock),
        };
        // SAFETY: `outcome` says this thread acquired the lock; `data` is as the caller promised.
        let guard = unsafe { Self::new(lock, (), data) };
        match acquired {
            Acquired::Clean => Ok(guard),
            Acquired::Poisoned => Err(TryLockError::OwnerDied(guard)),
        }
    }
}

impl<T: ?Sized, L: RawMutex> Deref for LockGuard<'_, T, L> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock, and by the constructor's contract everyone accesses `data`
        // only under it, so nobody writes it while this shared borrow of the guard lives.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized, L: RawMutex> DerefMut for LockGuard<'_, T, L> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only access from this thread.
        unsafe { self.data.as_mut() }
    }
}

impl<T: ?Sized, L: RawMutex> Drop for LockGuard<'_, T, L> {
    #[inline]
    fn drop(&mut self) {
        // A holder that panics may have left the data half-updated: tell the next one.
        let poison = std::thread::panicking();
        // SAFETY: a guard is built only for a hold its thread has (the constructors' contract),
        // it is not `Send`, and only this drop releases that hold.
        unsafe { self.lock.unlock(self.hold, poison) }
    }
}

impl<T: ?Sized + fmt::Debug, L: RawMutex> fmt::Debug for LockGuard<'_, T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
