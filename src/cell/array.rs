//! `Array<T>`: a fixed-length array of `Pod` elements in shared memory with one robust lock.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use super::core::CellCore;
use crate::error::Result;
use crate::shm::{DEFAULT_OPEN_WAIT, Kind, SegmentName};
use crate::sync::{AccessError, LockError, LockGuard, LockTimeoutError, TryLockError};

/// A guard over an [`Array`]'s data; derefs to `[T]`.
pub type ArrayGuard<'a, T> = LockGuard<'a, [T]>;

/// A fixed-length array of `T` in shared memory, with one lock: Python's
/// `multiprocessing.Array`.
///
/// Costs the header page plus `len × size_of::<T>()` rounded up to whole pages. Handles are
/// `Send + Sync + Clone` and serialise as their segment name. Lock once with
/// [`lock`](Self::lock) for bulk work; [`get`](Self::get) and [`set`](Self::set) lock per call.
/// A dead holder is reported as for [`Value`](crate::Value).
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// let a = shmkit::Array::from_slice(&[1i32, 2, 3])?;
/// a.set(0, 10)?;
/// assert_eq!(a.lock()?.iter().sum::<i32>(), 15);
/// assert!(a.get(3).is_err()); // out of range
/// # Ok(()) }
/// ```
pub struct Array<T> {
    core: Arc<CellCore<T>>,
}

impl<T: Pod> Array<T> {
    /// Creates an anonymous array of `len` zeroed elements.
    ///
    /// # Errors
    /// [`Error::TooLarge`](crate::Error::TooLarge), [`Error::NoSpace`](crate::Error::NoSpace) or [`Error::Io`](crate::Error::Io).
    pub fn new(len: usize) -> Result<Self> {
        Self::wrap(CellCore::create(
            SegmentName::anonymous()?,
            Kind::Array,
            len,
            None,
        ))
    }

    /// Creates an anonymous array holding a copy of `values`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn from_slice(values: &[T]) -> Result<Self> {
        Self::wrap(CellCore::create(
            SegmentName::anonymous()?,
            Kind::Array,
            values.len(),
            Some(values),
        ))
    }

    /// Creates the array `name` with `len` zeroed elements; fails if it exists. This process
    /// owns the name (see [`Value::create`](crate::Value::create)).
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists),
    /// [`Error::TooLarge`](crate::Error::TooLarge), [`Error::NoSpace`](crate::Error::NoSpace) or [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str, len: usize) -> Result<Self> {
        Self::wrap(CellCore::create(
            SegmentName::new(name)?,
            Kind::Array,
            len,
            None,
        ))
    }

    /// Creates the array `name` holding a copy of `values`; fails if it exists.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_from_slice(name: &str, values: &[T]) -> Result<Self> {
        Self::wrap(CellCore::create(
            SegmentName::new(name)?,
            Kind::Array,
            values.len(),
            Some(values),
        ))
    }

    /// Opens the existing array `name`, whatever its length, checking kind and element type.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::KindMismatch`](crate::Error::KindMismatch),
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch), [`Error::Corrupt`](crate::Error::Corrupt),
    /// [`Error::Truncated`](crate::Error::Truncated), [`Error::Uninitialized`](crate::Error::Uninitialized), ...
    pub fn open(name: &str) -> Result<Self> {
        Self::wrap(CellCore::open(
            SegmentName::new(name)?,
            Kind::Array,
            None,
            DEFAULT_OPEN_WAIT,
        ))
    }

    /// Opens the existing array `name`, which must have exactly `len` elements.
    ///
    /// # Errors
    /// As [`open`](Self::open), and [`Error::LengthMismatch`](crate::Error::LengthMismatch).
    pub fn open_with_len(name: &str, len: usize) -> Result<Self> {
        Self::wrap(CellCore::open(
            SegmentName::new(name)?,
            Kind::Array,
            Some(len),
            DEFAULT_OPEN_WAIT,
        ))
    }

    /// Like [`open`](Self::open), waiting at most `wait` for the creator to publish the segment.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_timeout(name: &str, wait: Duration) -> Result<Self> {
        Self::wrap(CellCore::open(
            SegmentName::new(name)?,
            Kind::Array,
            None,
            wait,
        ))
    }

    /// Opens `name` if it exists (it must have `len` elements), or creates it zeroed.
    ///
    /// # Errors
    /// As [`create`](Self::create) and [`open_with_len`](Self::open_with_len).
    pub fn open_or_create(name: &str, len: usize) -> Result<Self> {
        Self::wrap(CellCore::open_or_create(
            SegmentName::new(name)?,
            Kind::Array,
            len,
            None,
        ))
    }

    fn wrap(core: Result<CellCore<T>>) -> Result<Self> {
        Ok(Array {
            core: Arc::new(core?),
        })
    }

    /// The segment's name; [`Array::open`] with it opens this array in another process.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads element `index` under the lock.
    ///
    /// # Errors
    /// [`AccessError::OutOfRange`], or [`AccessError::OwnerDied`] with the element read.
    pub fn get(&self, index: usize) -> Result<T, AccessError<T>> {
        self.check(index)?;
        match self.core.lock_all() {
            Ok(g) => Ok(g[index]),
            Err(e) => Err(e.map(|g| g[index]).into()),
        }
    }

    /// Writes element `index` under the lock.
    ///
    /// # Errors
    /// [`AccessError::OutOfRange`] (nothing written), or [`AccessError::OwnerDied`] (written).
    pub fn set(&self, index: usize, value: T) -> Result<(), AccessError<()>> {
        self.check(index)?;
        match self.core.lock_all() {
            Ok(mut g) => {
                g[index] = value;
                Ok(())
            }
            Err(e) => Err(e
                .map(|mut g| {
                    g[index] = value;
                })
                .into()),
        }
    }

    fn check<R>(&self, index: usize) -> Result<(), AccessError<R>> {
        let len = self.len();
        if index < len {
            Ok(())
        } else {
            Err(AccessError::OutOfRange { index, len })
        }
    }

    /// Copies all elements out under the lock.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] with the copy if a holder died.
    pub fn to_vec(&self) -> Result<Vec<T>, LockError<Vec<T>>> {
        match self.core.lock_all() {
            Ok(g) => Ok(g.to_vec()),
            Err(e) => Err(e.map(|g| g.to_vec())),
        }
    }

    /// Runs `f` on all elements under the lock and returns its result.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] carrying `f`'s result if a holder died (`f` still ran).
    pub fn update<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<R, LockError<R>> {
        match self.core.lock_all() {
            Ok(mut g) => Ok(f(&mut g)),
            Err(LockError::OwnerDied(mut g)) => Err(LockError::OwnerDied(f(&mut g))),
            Err(LockError::Deadlock) => Err(LockError::Deadlock),
        }
    }

    /// Locks the array and returns a guard that derefs to `[T]`.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] with the guard if a holder died; [`LockError::Deadlock`] if this
    /// thread already holds it.
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>, LockError<ArrayGuard<'_, T>>> {
        self.core.lock_all()
    }

    /// Locks the array if it is free.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if it is held, or as [`lock`](Self::lock).
    pub fn try_lock(&self) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        self.core.try_lock_all()
    }

    /// Locks the array, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockTimeoutError::Timeout`] if it was not free in time, or as [`lock`](Self::lock).
    #[doc(alias = "try_lock_for")]
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ArrayGuard<'_, T>, LockTimeoutError<ArrayGuard<'_, T>>> {
        self.core.lock_all_timeout(timeout)
    }

    /// Whether a holder died and no one has marked the array consistent since (a snapshot).
    pub fn is_poisoned(&self) -> bool {
        self.core.is_poisoned()
    }
}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            core: Arc::clone(&self.core),
        }
    }
}

impl<T: Pod> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("name", &self.name())
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len())
            .finish()
    }
}

super::serde_by_name!(Array);
