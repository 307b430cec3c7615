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

/// Why [`try_lock`](crate::Value::try_lock) did not return a clean guard.
pub enum TryLockError<G> {
    /// Someone else holds the lock.
    WouldBlock,
    /// See [`LockError::OwnerDied`].
    OwnerDied(G),
    /// See [`LockError::Deadlock`].
    Deadlock,
}

/// Why [`lock_timeout`](crate::Value::lock_timeout) did not return a clean guard.
pub enum LockTimeoutError<G> {
    /// Someone else held the lock until the deadline.
    Timeout,
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
    /// Applies `f` to the guard or value inside an `OwnerDied`.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> TryLockError<H> {
        match self {
            TryLockError::WouldBlock => TryLockError::WouldBlock,
            TryLockError::OwnerDied(g) => TryLockError::OwnerDied(f(g)),
            TryLockError::Deadlock => TryLockError::Deadlock,
        }
    }

    /// The same outcome of a timed attempt: a busy lock at the deadline is a timeout.
    pub(crate) fn into_timeout(self) -> LockTimeoutError<G> {
        match self {
            TryLockError::WouldBlock => LockTimeoutError::Timeout,
            TryLockError::OwnerDied(g) => LockTimeoutError::OwnerDied(g),
            TryLockError::Deadlock => LockTimeoutError::Deadlock,
        }
    }

    /// The guard inside an `OwnerDied`, if this is one.
    pub fn into_inner(self) -> Option<G> {
        match self {
            TryLockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }
}

impl<G> LockTimeoutError<G> {
    /// Applies `f` to the guard or value inside an `OwnerDied`.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockTimeoutError<H> {
        match self {
            LockTimeoutError::Timeout => LockTimeoutError::Timeout,
            LockTimeoutError::OwnerDied(g) => LockTimeoutError::OwnerDied(f(g)),
            LockTimeoutError::Deadlock => LockTimeoutError::Deadlock,
        }
    }

    /// The guard inside an `OwnerDied`, if this is one.
    pub fn into_inner(self) -> Option<G> {
        match self {
            LockTimeoutError::OwnerDied(g) => Some(g),
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

impl<G> fmt::Debug for LockTimeoutError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockTimeoutError::Timeout => f.write_str("Timeout"),
            LockTimeoutError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockTimeoutError::Deadlock => f.write_str("Deadlock"),
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

impl<G> fmt::Display for LockTimeoutError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockTimeoutError::Timeout => {
                f.write_str("the lock was still held by someone else at the deadline")
            }
            LockTimeoutError::OwnerDied(_) => f.write_str(OWNER_DIED),
            LockTimeoutError::Deadlock => f.write_str(DEADLOCK),
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
impl<G> std::error::Error for LockTimeoutError<G> {}
impl<T> std::error::Error for AccessError<T> {}

impl<G> LockError<G> {
    fn without_guard(&self) -> LockError<()> {
        match self {
            LockError::OwnerDied(_) => LockError::OwnerDied(()),
            LockError::Deadlock => LockError::Deadlock,
        }
    }
}

impl<G> TryLockError<G> {
    fn without_guard(&self) -> TryLockError<()> {
        match self {
            TryLockError::WouldBlock => TryLockError::WouldBlock,
            TryLockError::OwnerDied(_) => TryLockError::OwnerDied(()),
            TryLockError::Deadlock => TryLockError::Deadlock,
        }
    }
}

impl<G> LockTimeoutError<G> {
    fn without_guard(&self) -> LockTimeoutError<()> {
        match self {
            LockTimeoutError::Timeout => LockTimeoutError::Timeout,
            LockTimeoutError::OwnerDied(_) => LockTimeoutError::OwnerDied(()),
            LockTimeoutError::Deadlock => LockTimeoutError::Deadlock,
        }
    }
}

impl<T> AccessError<T> {
    fn without_value(&self) -> AccessError<()> {
        match self {
            AccessError::OutOfRange { index, len } => AccessError::OutOfRange {
                index: *index,
                len: *len,
            },
            AccessError::OwnerDied(_) => AccessError::OwnerDied(()),
            AccessError::Deadlock => AccessError::Deadlock,
        }
    }
}

// Into the crate error: the guard (or value) is dropped, which releases the lock; what remains
// is the error without it, as the source.
impl<G> From<LockError<G>> for crate::Error {
    fn from(e: LockError<G>) -> Self {
        crate::Error::Op(Box::new(e.without_guard()))
    }
}

impl<G> From<TryLockError<G>> for crate::Error {
    fn from(e: TryLockError<G>) -> Self {
        crate::Error::Op(Box::new(e.without_guard()))
    }
}

impl<G> From<LockTimeoutError<G>> for crate::Error {
    fn from(e: LockTimeoutError<G>) -> Self {
        crate::Error::Op(Box::new(e.without_guard()))
    }
}

impl<T> From<AccessError<T>> for crate::Error {
    fn from(e: AccessError<T>) -> Self {
        crate::Error::Op(Box::new(e.without_value()))
    }
}

/// An element index was not below the length (a [`RawArray`](crate::RawArray) access).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("index {index} is out of range for length {len}")]
pub struct OutOfRange {
    /// The index asked for.
    pub index: usize,
    /// The number of elements.
    pub len: usize,
}

/// A `try_` call found the resource busy: no unit of a [`Semaphore`](crate::Semaphore) free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operation would block: nothing is available now")]
pub struct WouldBlock;

/// A `_timeout` call waited its whole timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct Timeout;

/// [`Lock::release`](crate::Lock::release) of a lock nobody holds (Python's `ValueError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("release of a lock that is not held")]
pub struct NotLocked;

/// An operation that needs the lock held by the calling thread (an [`RLock`](crate::RLock)'s
/// release, a [`Condition`](crate::Condition)'s wait or notify) without it (Python's
/// `RuntimeError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this thread does not hold the lock: acquire it first")]
pub struct NotOwner;

/// [`Semaphore::release`](crate::Semaphore::release) of a bounded semaphore already at its
/// initial value (Python's `ValueError`); nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a bounded semaphore was released more times than it was acquired")]
pub struct TooManyReleases;

/// A [`Barrier`](crate::Barrier) was aborted, reset, or timed out while this party used it
/// (Python's `BrokenBarrierError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the barrier is broken (aborted, reset, or a party timed out)")]
pub struct BrokenBarrier;

/// Why [`Barrier::wait_timeout`](crate::Barrier::wait_timeout) did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BarrierTimeoutError {
    /// This party's timeout passed: the barrier is now broken for every party, as in Python.
    #[error("timed out waiting at the barrier, which is now broken")]
    Timeout,
    /// The barrier was broken by someone else.
    #[error("the barrier is broken (aborted, reset, or a party timed out)")]
    Broken,
}

/// Why [`Barrier::try_wait`](crate::Barrier::try_wait) did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BarrierTryError {
    /// Other parties have yet to arrive; this party did not arrive either.
    #[error("other parties have yet to arrive at the barrier")]
    WouldBlock,
    /// The barrier is broken (aborted, reset, or a party timed out).
    #[error("the barrier is broken (aborted, reset, or a party timed out)")]
    Broken,
}

/// Why [`Condition::wait`](crate::Condition::wait) returned with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The calling thread does not hold the condition's lock (nothing happened).
    #[error("this thread does not hold the condition's lock: acquire it first")]
    NotOwner,
    /// The lock was taken back after a holder died holding it; the lock is held again all
    /// the same, so the caller still owns it.
    #[error("the condition's lock was taken over from a holder that died; it is held again")]
    OwnerDied,
}

/// Why [`Condition::wait_timeout`](crate::Condition::wait_timeout) returned with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitTimeoutError {
    /// Not notified before the deadline; the lock is held again.
    #[error("not notified before the deadline")]
    Timeout,
    /// See [`WaitError::NotOwner`].
    #[error("this thread does not hold the condition's lock: acquire it first")]
    NotOwner,
    /// See [`WaitError::OwnerDied`].
    #[error("the condition's lock was taken over from a holder that died; it is held again")]
    OwnerDied,
}

crate::error::into_op_error!(
    OutOfRange,
    WouldBlock,
    Timeout,
    NotLocked,
    NotOwner,
    TooManyReleases,
    BrokenBarrier,
    BarrierTimeoutError,
    BarrierTryError,
    WaitError,
    WaitTimeoutError
);
