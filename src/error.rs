//! The crate-wide error for setting up, opening and removing shared objects.
//!
//! Operations have small errors of their own, with only the cases each call can produce, that
//! hand the value, item or guard back ([`crate::LockError`], [`crate::PutError`],
//! [`crate::RecvError`], ...). Every one of them converts into this type (as [`Error::Op`](crate::Error::Op)),
//! so `?` works in a function returning [`Result`].

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
    /// The segment belongs to another user, or other users may write it: shmkit creates its
    /// segments with mode 0600, so this one was planted (or its permissions changed). It is
    /// refused: its owner could rewrite or truncate it under this process.
    #[error(
        "segment {name:?} is not this user's own (owner uid {owner_uid}, mode {mode:o}): refused; remove it if it is stale"
    )]
    ForeignOwner {
        /// The segment's name.
        name: String,
        /// The uid that owns it.
        owner_uid: u32,
        /// Its permission bits.
        mode: u32,
    },
    /// Shared memory (`/dev/shm`) has no room for a new segment of `size` bytes. Every page of
    /// a segment is reserved when it is made, so a full `/dev/shm` is this error and never a
    /// SIGBUS at a later write (Python's `shared_memory` crashes that way in a container whose
    /// `/dev/shm` is small).
    #[error("no room in shared memory for segment {name:?} ({size} bytes)")]
    NoSpace {
        /// The segment's name.
        name: String,
        /// The bytes it needed.
        size: u64,
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
    /// An argument is out of its range.
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// What was wrong.
        what: String,
    },
    /// A value (a process's argument, a handle's name) could not be serialised.
    #[error("a value could not be serialised: {0}")]
    Serialize(String),
    /// A child process never reached `shmkit::init()`, or this process is such a child and may
    /// not start children of its own: add `shmkit::init();` as the first line of `main`.
    #[error(
        "the child process did not run shmkit::init(): add `shmkit::init();` as the first line of main"
    )]
    InitNotCalled,
    /// An operation failed with its own error (a full queue, a closed pipe, a broken barrier,
    /// a lock whose owner died...), converted with `?` into this type. The operation's error
    /// is the [`source`](std::error::Error::source), and can be recovered with `downcast_ref`
    /// (for errors that carry an item, the item-less form: `PutError<()>`).
    #[error("{0}")]
    Op(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// `From<$ty> for Error` for operation errors: the error becomes the source of
/// [`Error::Op`].
macro_rules! into_op_error {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for crate::Error {
            fn from(e: $ty) -> Self {
                crate::Error::Op(Box::new(e))
            }
        }
    )*};
}
pub(crate) use into_op_error;

/// `source()` and `From<$ty> for Error` for an operation error with a `Failed(Error)` variant:
/// a failure is the crate error it holds, anything else becomes the source of [`Error::Op`].
macro_rules! failed_op_error {
    ($ty:ident) => {
        impl std::error::Error for $ty {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $ty::Failed(e) => Some(e),
                    _ => None,
                }
            }
        }

        crate::error::failed_into_error!($ty);
    };
}
pub(crate) use failed_op_error;

/// `From<$ty> for Error` for an operation error with a `Failed(Error)` variant (one that
/// implements `std::error::Error` itself).
macro_rules! failed_into_error {
    ($ty:ident) => {
        impl From<$ty> for crate::Error {
            fn from(e: $ty) -> crate::Error {
                match e {
                    $ty::Failed(error) => error,
                    other => crate::Error::Op(Box::new(other)),
                }
            }
        }
    };
}
pub(crate) use failed_into_error;

impl Error {
    pub(crate) fn io(op: &'static str, source: io::Error) -> Self {
        Error::Io { op, source }
    }
}
