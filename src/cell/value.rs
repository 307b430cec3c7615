//! `Value<T>`: one `Pod` value in shared memory with a process-shared robust lock.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use super::core::CellCore;
use crate::error::Result;
use crate::shm::{DEFAULT_OPEN_WAIT, Kind, SegmentName};
use crate::sync::{LockError, LockGuard, LockTimeoutError, TryLockError};

/// A guard over a [`Value`]'s data; derefs to `T`.
pub type ValueGuard<'a, T> = LockGuard<'a, T>;

/// One value of type `T` in shared memory, with a lock: Python's `multiprocessing.Value`.
///
/// Costs one page of shared memory for small `T`. Handles are cheap to clone (they share one
/// mapping), `Send + Sync`, and serialise as their segment name, so a handle can be sent to
/// another process, which opens the same segment when it deserialises it.
///
/// Every access takes the lock. If a process dies (or a thread panics) while holding it, the
/// next access still goes through but reports [`LockError::OwnerDied`], carrying the guard or
/// value, until someone calls [`LockGuard::mark_consistent`].
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// let v = shmkit::Value::new(0.0f64)?;
/// v.set(1.5)?;
/// v.update(|x| *x *= 2.0)?;
/// assert_eq!(v.get()?, 3.0);
/// # Ok(()) }
/// ```
pub struct Value<T> {
    core: Arc<CellCore<T>>,
}

impl<T: Pod> Value<T> {
    /// Creates an anonymous value (an unguessable generated name), owned by this process.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the segment cannot be created or mapped.
    pub fn new(init: T) -> Result<Self> {
        Self::create_with(SegmentName::anonymous()?, init)
    }

    /// Creates the value `name`; fails if it exists. This process owns the name: it is removed
    /// when the last handle in this process is dropped.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists),
    /// or [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str, init: T) -> Result<Self> {
        Self::create_with(SegmentName::new(name)?, init)
    }

    fn create_with(name: SegmentName, init: T) -> Result<Self> {
        let core = CellCore::create(name, Kind::Value, 1, Some(std::slice::from_ref(&init)))?;
        Ok(Value {
            core: Arc::new(core),
        })
    }

    /// Opens the existing value `name`, checking that it is a `Value` of this `T`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::KindMismatch`](crate::Error::KindMismatch),
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch), [`Error::Corrupt`](crate::Error::Corrupt),
    /// [`Error::Truncated`](crate::Error::Truncated), [`Error::Uninitialized`](crate::Error::Uninitialized), ...
    pub fn open(name: &str) -> Result<Self> {
        Self::open_timeout(name, DEFAULT_OPEN_WAIT)
    }

    /// Like [`open`](Self::open), waiting at most `wait` for the creator to publish the segment.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_timeout(name: &str, wait: Duration) -> Result<Self> {
        let core = CellCore::open(SegmentName::new(name)?, Kind::Value, Some(1), wait)?;
        Ok(Value {
            core: Arc::new(core),
        })
    }

    /// Opens `name` if it exists, or creates it with `init`. Only a creating call owns the name.
    ///
    /// # Errors
    /// As [`create`](Self::create) and [`open`](Self::open).
    pub fn open_or_create(name: &str, init: T) -> Result<Self> {
        let core = CellCore::open_or_create(
            SegmentName::new(name)?,
            Kind::Value,
            1,
            Some(std::slice::from_ref(&init)),
        )?;
        Ok(Value {
            core: Arc::new(core),
        })
    }

    /// The segment's name; [`Value::open`] with it opens this value in another process.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// Reads the value under the lock. Allocates nothing.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (with the value read) if a holder died; see the type docs.
    pub fn get(&self) -> Result<T, LockError<T>> {
        match self.core.lock_one() {
            Ok(g) => Ok(*g),
            Err(e) => Err(e.map(|g| *g)),
        }
    }

    /// Writes the value under the lock.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] if a holder died (the write was still done).
    pub fn set(&self, value: T) -> Result<(), LockError<()>> {
        self.update(|v| *v = value)
    }

    /// Runs `f` on the value under the lock and returns its result: `v.update(|x| *x += 1.0)`.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] carrying `f`'s result if a holder died (`f` still ran).
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, LockError<R>> {
        match self.core.lock_one() {
            Ok(mut g) => Ok(f(&mut g)),
            Err(LockError::OwnerDied(mut g)) => Err(LockError::OwnerDied(f(&mut g))),
            Err(LockError::Deadlock) => Err(LockError::Deadlock),
        }
    }

    /// Locks the value and returns a guard that derefs to `T`.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] with the guard if a holder died; [`LockError::Deadlock`] if this
    /// thread already holds it.
    pub fn lock(&self) -> Result<ValueGuard<'_, T>, LockError<ValueGuard<'_, T>>> {
        self.core.lock_one()
    }

    /// Locks the value if it is free.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if it is held, or as [`lock`](Self::lock).
    pub fn try_lock(&self) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        self.core.try_lock_one()
    }

    /// Locks the value, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockTimeoutError::Timeout`] if it was not free in time, or as [`lock`](Self::lock).
    #[doc(alias = "try_lock_for")]
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ValueGuard<'_, T>, LockTimeoutError<ValueGuard<'_, T>>> {
        self.core.lock_one_timeout(timeout)
    }

    /// Whether a holder died and no one has marked the value consistent since (a snapshot).
    pub fn is_poisoned(&self) -> bool {
        self.core.is_poisoned()
    }
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            core: Arc::clone(&self.core),
        }
    }
}

impl<T: Pod> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("name", &self.name())
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

super::serde_by_name!(Value);
