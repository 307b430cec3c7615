//! Small errors for locking and element access that hand the guard or value back.

use std::fmt;

/// Why [`lock`](crate::Value::lock) did not return a clean guard.
///
/// `OwnerDied` is the important one: the lock *was* acquired, but its previous holder died (or
/// panicked) while holding it, so the data may be half-updated. The guard, or the value read
/// under it, comes back inside; call [`LockGuard::mark_consistent`](crate::LockGuard::mark_consistent)
/// once the data is repaired, or every later locker is told too.
pub enum LockError<G> {
    /// The lock was acquired, but a holder died while holding it: here is the guard (or value).
    OwnerDied(G),
    /// The calling thread already holds this lock; locking again would deadlock.
    Deadlock,
}

/// Why [`try_lock`](crate::Value::try_lock) or [`try_lock_for`](crate::Value::try_lock_for)
/// did not return a clean guard.
pub enum TryLockError<G> {
    /// Someone else holds the lock (and, for `try_lock_for`, did not release it in time).
    WouldBlock,
    /// See [`LockError::OwnerDied`].
    OwnerDied(G),
    /// See [`LockError::Deadlock`].
    Deadlock,
}

/// Why an element access on an [`Array`](crate::Array) failed.
pub enum AccessError<T> {
    /// The index was not below the array's length.
    OutOfRange {
        /// The index asked for.
        index: usize,
        /// The array's length.
        len: usize,
    },
    /// The access was done, but a holder of the lock had died: see [`LockError::OwnerDied`].
    OwnerDied(T),
    /// See [`LockError::Deadlock`].
    Deadlock,
}

impl<G> LockError<G> {
    /// The guard or value inside an `OwnerDied`, if this is one.
    pub fn into_inner(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    /// Applies `f` to the guard or value inside an `OwnerDied`.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            LockError::Deadlock => LockError::Deadlock,
        }
    }
}

impl<G> TryLockError<G> {
    /// The guard inside an `OwnerDied`, if this is one.
    pub fn into_inner(self) -> Option<G> {
        match self {
            TryLockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }
}

impl<T> AccessError<T> {
    /// The value inside an `OwnerDied`, if this is one.
    pub fn into_inner(self) -> Option<T> {
        match self {
            AccessError::OwnerDied(v) => Some(v),
            _ => None,
        }
    }
}

impl<T> From<LockError<T>> for AccessError<T> {
    fn from(e: LockError<T>) -> Self {
        match e {
            LockError::OwnerDied(v) => AccessError::OwnerDied(v),
            LockError::Deadlock => AccessError::Deadlock,
        }
    }
}

// Debug and Display do not need `G: Debug`, as crossbeam's errors, so they work with guards.
impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::Deadlock => f.write_str("Deadlock"),
        }
    }
}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
            TryLockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            TryLockError::Deadlock => f.write_str("Deadlock"),
        }
    }
}

impl<T> fmt::Debug for AccessError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::OutOfRange { index, len } => f
                .debug_struct("OutOfRange")
                .field("index", index)
                .field("len", len)
                .finish(),
            AccessError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            AccessError::Deadlock => f.write_str("Deadlock"),
        }
    }
}

const OWNER_DIED: &str =
    "the previous holder of the lock died while holding it; the data may be inconsistent";
const DEADLOCK: &str = "this thread already holds the lock";

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str(OWNER_DIED),
            LockError::Deadlock => f.write_str(DEADLOCK),
        }
    }
}

impl<G> fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("the lock is held by someone else"),
            TryLockError::OwnerDied(_) => f.write_str(OWNER_DIED),
            TryLockError::Deadlock => f.write_str(DEADLOCK),
        }
    }
}

impl<T> fmt::Display for AccessError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::OutOfRange { index, len } => {
                write!(f, "index {index} is out of range for length {len}")
            }
            AccessError::OwnerDied(_) => f.write_str(OWNER_DIED),
            AccessError::Deadlock => f.write_str(DEADLOCK),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}
impl<G> std::error::Error for TryLockError<G> {}
impl<T> std::error::Error for AccessError<T> {}

impl<G> From<LockError<G>> for crate::Error {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(_) => crate::Error::OwnerDied,
            LockError::Deadlock => crate::Error::Deadlock,
        }
    }
}

impl<G> From<TryLockError<G>> for crate::Error {
    fn from(e: TryLockError<G>) -> Self {
        match e {
            TryLockError::WouldBlock => crate::Error::WouldBlock,
            TryLockError::OwnerDied(_) => crate::Error::OwnerDied,
            TryLockError::Deadlock => crate::Error::Deadlock,
        }
    }
}

impl<T> From<AccessError<T>> for crate::Error {
    fn from(e: AccessError<T>) -> Self {
        match e {
            AccessError::OutOfRange { index, len } => crate::Error::OutOfRange { index, len },
            AccessError::OwnerDied(_) => crate::Error::OwnerDied,
            AccessError::Deadlock => crate::Error::Deadlock,
        }
    }
}
