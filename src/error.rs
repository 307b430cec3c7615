//! The crate-wide error for setting up, opening and removing shared objects.
//!
//! Hot-path operations (locking, element access) have small errors of their own that hand the
//! value or guard back; see [`crate::LockError`] and [`crate::AccessError`]. Every one of them
//! converts into this type, so `?` works in a function returning [`Result`].

use std::io;
use std::time::Duration;

use crate::shm::Kind;

/// A specialised `Result` for shmkit's setup and OS operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong creating, opening or using a shared segment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name cannot be used for a segment.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An exclusive create found a segment of that name already there.
    #[error("segment {name:?} already exists")]
    AlreadyExists {
        /// The segment's name.
        name: String,
    },
    /// No segment of that name exists.
    #[error("segment {name:?} does not exist")]
    NotFound {
        /// The segment's name.
        name: String,
    },
    /// The segment exists but its creator has not published its header (it may still be
    /// starting, or it died while creating it).
    #[error("segment {name:?} was not initialised within {waited:?} (its creator may have died)")]
    Uninitialized {
        /// The segment's name.
        name: String,
        /// How long the opener waited.
        waited: Duration,
    },
    /// The segment is smaller than its header says it must be.
    #[error("segment {name:?} is truncated: {actual} bytes, needs {needed}")]
    Truncated {
        /// The segment's name.
        name: String,
        /// Its size in bytes.
        actual: u64,
        /// The size it needs.
        needed: u64,
    },
    /// The segment does not start with shmkit's magic number.
    #[error("segment {name:?} is not a shmkit segment (bad magic number)")]
    BadMagic {
        /// The segment's name.
        name: String,
    },
    /// The segment was written by a build of shmkit with another layout version.
    #[error("segment {name:?} has format version {found}; this build reads version {expected}")]
    VersionMismatch {
        /// The segment's name.
        name: String,
        /// The version this build reads and writes.
        expected: u32,
        /// The version found in the segment.
        found: u32,
    },
    /// The segment holds another kind of object.
    #[error("segment {name:?} holds {found}, not the {expected} asked for")]
    KindMismatch {
        /// The segment's name.
        name: String,
        /// The kind asked for.
        expected: Kind,
        /// The kind found (its name, or its number if this build does not know it).
        found: String,
    },
    /// The segment stores elements of another type.
    #[error("segment {name:?} stores {found}, not {expected}")]
    TypeMismatch {
        /// The segment's name.
        name: String,
        /// The element type asked for, with its size and alignment.
        expected: String,
        /// The element type found, with its size and alignment.
        found: String,
    },
    /// The segment has another number of elements than asked for.
    #[error("segment {name:?} has {found} elements, expected {expected}")]
    LengthMismatch {
        /// The segment's name.
        name: String,
        /// The length asked for.
        expected: u64,
        /// The length found.
        found: u64,
    },
    /// The segment's header or control block is inconsistent: written by a broken or hostile
    /// process, or not a shmkit segment at all.
    #[error("segment {name:?} is corrupt: {reason}")]
    Corrupt {
        /// The segment's name.
        name: String,
        /// What failed to check out.
        reason: String,
    },
    /// The requested object does not fit in a segment (its size overflows).
    #[error("{what} is too large for a shared segment")]
    TooLarge {
        /// What was being sized.
        what: String,
    },
    /// The segment was created in another pid namespace: thread ids there name other tasks, so
    /// a lock holder's death could not be told apart from a live holder elsewhere.
    #[error("segment {name:?} was created in another pid namespace; shmkit locks work within one")]
    ForeignPidNamespace {
        /// The segment's name.
        name: String,
    },
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A lock's previous holder died (or panicked) while holding it. See [`crate::LockError`].
    #[error("the previous holder of the lock died while holding it; the data may be inconsistent")]
    OwnerDied,
    /// The calling thread already holds the lock.
    #[error("this thread already holds the lock")]
    Deadlock,
    /// A lock could not be acquired in time.
    #[error("the lock could not be acquired in time")]
    WouldBlock,
    /// An argument is out of its range.
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// What was wrong.
        what: String,
    },
    /// The queue is closed.
    #[error("the queue is closed")]
    Closed,
    /// The queue is full.
    #[error("the queue is full")]
    Full,
    /// The queue is empty.
    #[error("the queue is empty")]
    Empty,
    /// A deadline passed.
    #[error("timed out")]
    Timeout,
    /// An item could not be serialised.
    #[error("an item could not be serialised: {0}")]
    Serialize(String),
    /// An item could not be deserialised.
    #[error("an item could not be deserialised: {0}")]
    Deserialize(String),
    /// `task_done` was called more times than items were taken.
    #[error("task_done() called more times than items were taken")]
    TaskDoneTooOften,
    /// `release` of a lock that is not held.
    #[error("release of a lock that is not held")]
    NotLocked,
    /// An operation that needs the lock held by this thread (an `RLock`'s release, a
    /// `Condition`'s wait or notify) without it.
    #[error("this thread does not hold the lock")]
    NotOwner,
    /// `release` of a bounded semaphore already at its initial value.
    #[error("a bounded semaphore was released more times than it was acquired")]
    TooManyReleases,
    /// A barrier was aborted, reset, or timed out while this party used it.
    #[error("the barrier is broken")]
    BrokenBarrier,
    /// The other end of a pipe is closed, or its process has died, and nothing is left to read.
    #[error("end of file: the other end of the pipe is closed or gone")]
    Eof,
    /// This end of a pipe is closed, or the other end is, so a message cannot be sent.
    #[error("the pipe is closed")]
    BrokenPipe,
    /// A child process never reached `shmkit::init()`, or this process is such a child and may
    /// not start children of its own: add `shmkit::init();` as the first line of `main`.
    #[error(
        "the child process did not run shmkit::init(): add `shmkit::init();` as the first line of main"
    )]
    NotInitialised,
    /// An element index was out of range.
    #[error("index {index} is out of range for length {len}")]
    OutOfRange {
        /// The index asked for.
        index: usize,
        /// The number of elements.
        len: usize,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, source: io::Error) -> Self {
        Error::Io { op, source }
    }
}
