//! The errors of a queue's operations, one per call (crossbeam's model): `put`, `try_put` and
//! `put_timeout` hand the item back in every variant; `get`, `try_get` and `get_timeout` say
//! why no item came. Each has only the variants its call can return.

use std::fmt;

use super::core::Fail;
use crate::error::Error;

/// What an operation of the wrong kind of wait would have meant: it cannot happen, and is
/// reported as a failure rather than a panic if it ever does.
fn unexpected(what: &'static str) -> Error {
    Error::Op(format!("internal error: a queue operation reported {what}").into())
}

macro_rules! put_errors {
    ($(
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $fail:ident => $variant:ident: $msg:literal )? }
    )*) => {$(
        $(#[$meta])*
        ///
        /// Every variant hands the item back ([`into_inner`](Self::into_inner)).
        pub enum $name<T> {
            $( $(#[$vmeta])* $variant(T), )?
            /// The queue is closed.
            Closed(T),
            /// The item could not be serialised; the queue is unchanged.
            Serialize {
                /// The item.
                item: T,
                /// What the serialiser said.
                reason: String,
            },
            /// An OS error, or a queue found corrupt (written by a broken or hostile process).
            Failed {
                /// The item.
                item: T,
                /// What went wrong.
                error: Error,
            },
        }

        impl<T> $name<T> {
            /// The item that was not put.
            pub fn into_inner(self) -> T {
                match self {
                    $( $name::$variant(t) => t, )?
                    $name::Closed(t) => t,
                    $name::Serialize { item, .. } | $name::Failed { item, .. } => item,
                }
            }

            /// Whether the queue is closed.
            pub fn is_closed(&self) -> bool {
                matches!(self, $name::Closed(_))
            }

            /// The same error without the item (to keep or send on when the item is not
            /// wanted, or is not `Send`).
            pub fn without_item(self) -> $name<()> {
                match self {
                    $( $name::$variant(_) => $name::$variant(()), )?
                    $name::Closed(_) => $name::Closed(()),
                    $name::Serialize { reason, .. } => $name::Serialize { item: (), reason },
                    $name::Failed { error, .. } => $name::Failed { item: (), error },
                }
            }

            pub(crate) fn from_fail(fail: Fail, item: T) -> Self {
                match fail {
                    $( Fail::$fail => $name::$variant(item), )?
                    Fail::Closed => $name::Closed(item),
                    Fail::Error(error) => $name::Failed { item, error },
                    #[allow(unreachable_patterns)]
                    other => $name::Failed { item, error: unexpected(other.what()) },
                }
            }

            pub(crate) fn serialize(item: T, reason: String) -> Self {
                $name::Serialize { item, reason }
            }
        }

        // Debug does not need `T: Debug` (crossbeam's rule), so it works for any item.
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant(_) => f.write_str(concat!(stringify!($variant), "(..)")), )?
                    $name::Closed(_) => f.write_str("Closed(..)"),
                    $name::Serialize { reason, .. } => f
                        .debug_struct("Serialize")
                        .field("reason", reason)
                        .finish_non_exhaustive(),
                    $name::Failed { error, .. } => f
                        .debug_struct("Failed")
                        .field("error", error)
                        .finish_non_exhaustive(),
                }
            }
        }

        impl<T> fmt::Display for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant(_) => f.write_str($msg), )?
                    $name::Closed(_) => {
                        f.write_str("the queue is closed: no more items can be put")
                    }
                    $name::Serialize { reason, .. } => write!(
                        f,
                        "the item could not be serialised (the queue is unchanged): {reason}"
                    ),
                    $name::Failed { error, .. } => write!(f, "put failed: {error}"),
                }
            }
        }

        impl<T> std::error::Error for $name<T> {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $name::Failed { error, .. } => Some(error),
                    _ => None,
                }
            }
        }

        impl<T> From<$name<T>> for Error {
            fn from(e: $name<T>) -> Error {
                match e {
                    $name::Failed { error, .. } => error,
                    other => Error::Op(Box::new(other.without_item())),
                }
            }
        }
    )*};
}

put_errors! {
    /// Why [`Queue::put`](crate::Queue::put) did not put the item.
    PutError {}
    /// Why [`Queue::try_put`](crate::Queue::try_put) did not put the item.
    TryPutError {
        /// The queue is full.
        WouldBlock => Full: "the queue is full"
    }
    /// Why [`Queue::put_timeout`](crate::Queue::put_timeout) did not put the item.
    PutTimeoutError {
        /// The queue was still full at the deadline.
        Timeout => Timeout: "the queue was still full at the deadline"
    }
}

macro_rules! get_errors {
    ($(
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $fail:ident => $variant:ident: $msg:literal )? }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )?
            /// The queue is closed and empty.
            Closed,
            /// The item's bytes could not be deserialised as the queue's type. That item is
            /// consumed; the queue stays usable.
            Deserialize(String),
            /// An OS error, or a queue found corrupt (written by a broken or hostile process).
            Failed(Error),
        }

        impl $name {
            /// Whether the queue is closed (and empty).
            pub fn is_closed(&self) -> bool {
                matches!(self, $name::Closed)
            }

            pub(crate) fn from_fail(fail: Fail) -> Self {
                match fail {
                    $( Fail::$fail => $name::$variant, )?
                    Fail::Closed => $name::Closed,
                    Fail::Error(error) => $name::Failed(error),
                    #[allow(unreachable_patterns)]
                    other => $name::Failed(unexpected(other.what())),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant => f.write_str($msg), )?
                    $name::Closed => f.write_str("the queue is closed and empty"),
                    $name::Deserialize(reason) => write!(
                        f,
                        "an item could not be deserialised as the queue's type (it was dropped; \
                         check that every process uses the same item type): {reason}"
                    ),
                    $name::Failed(error) => write!(f, "get failed: {error}"),
                }
            }
        }

        crate::error::failed_op_error!($name);
    )*};
}

get_errors! {
    /// Why [`Queue::get`](crate::Queue::get) returned no item.
    GetError {}
    /// Why [`Queue::try_get`](crate::Queue::try_get) returned no item.
    TryGetError {
        /// The queue is empty.
        WouldBlock => Empty: "the queue is empty"
    }
    /// Why [`Queue::get_timeout`](crate::Queue::get_timeout) returned no item.
    GetTimeoutError {
        /// The queue was still empty at the deadline.
        Timeout => Timeout: "the queue was still empty at the deadline"
    }
}

/// Why [`JoinableQueue::join_timeout`](crate::JoinableQueue::join_timeout) returned before
/// every item was done.
#[derive(Debug, thiserror::Error)]
pub enum JoinTimeoutError {
    /// Items were still not done at the deadline.
    #[error("items were still not done at the deadline")]
    Timeout,
    /// An OS error, or a queue found corrupt.
    #[error("join failed: {0}")]
    Failed(#[source] Error),
}

/// Why [`JoinableQueue::task_done`](crate::JoinableQueue::task_done) failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskDoneError {
    /// `task_done` was called more times than items were taken (Python's `ValueError`).
    #[error("task_done() called more times than items were taken")]
    TooOften,
    /// An OS error, or a queue found corrupt.
    #[error("task_done failed: {0}")]
    Failed(#[source] Error),
}

crate::error::failed_into_error!(JoinTimeoutError);
crate::error::failed_into_error!(TaskDoneError);

/// Why [`Lease::ack`](crate::Lease::ack) or [`Lease::release`](crate::Lease::release) did
/// nothing.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// The queue no longer counts this lease as held: it was handed back because its holder
    /// was found dead (another process with the same pid, or a lease carried into a forked
    /// child), or the queue's lease slots were repaired or overwritten. The item is, or was,
    /// delivered again.
    #[error("the lease is no longer held: its item was handed back to the queue")]
    Lost,
    /// An OS error, or a queue found corrupt.
    #[error("ack failed: {0}")]
    Failed(#[source] Error),
}

crate::error::failed_into_error!(AckError);

/// Why [`Queue::put_many`](crate::Queue::put_many) did not put every item.
#[derive(Debug, thiserror::Error)]
#[error("{put} items were put, then: {error}")]
pub struct PutManyError {
    /// How many items, from the first, are in the queue.
    pub put: usize,
    /// Why the next one is not.
    #[source]
    pub error: PutError<()>,
}

impl From<PutManyError> for Error {
    fn from(e: PutManyError) -> Error {
        Error::Op(Box::new(e))
    }
}
