//! The errors of `put` (which hand the item back) and `get`.

use std::fmt;

use crate::error::Error;

/// Why an item was not put. Every variant hands the item back ([`into_inner`](Self::into_inner)).
pub enum PutError<T> {
    /// `try_put`: the queue is full.
    Full(T),
    /// `put_timeout`: the queue was still full at the deadline.
    Timeout(T),
    /// The queue is closed.
    Closed(T),
    /// The item could not be serialised; the queue is unchanged.
    Serialize {
        /// The item.
        item: T,
        /// What the serialiser said.
        reason: String,
    },
    /// An OS error, or a queue found corrupt.
    Failed {
        /// The item.
        item: T,
        /// What went wrong.
        error: Error,
    },
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(t) | PutError::Timeout(t) | PutError::Closed(t) => t,
            PutError::Serialize { item, .. } | PutError::Failed { item, .. } => item,
        }
    }
}

/// Why no item was got.
#[derive(Debug)]
pub enum GetError {
    /// `try_get`: the queue is empty.
    Empty,
    /// `get_timeout`: the queue was still empty at the deadline.
    Timeout,
    /// The queue is closed and empty.
    Closed,
    /// The item's bytes could not be deserialised. The item is consumed; the queue stays usable.
    Deserialize(String),
    /// An OS error, or a queue found corrupt (written by a broken or hostile process).
    Failed(Error),
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::Serialize { reason, .. } => f
                .debug_struct("Serialize")
                .field("reason", reason)
                .finish_non_exhaustive(),
            PutError::Failed { error, .. } => f
                .debug_struct("Failed")
                .field("error", error)
                .finish_non_exhaustive(),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("the queue is full"),
            PutError::Timeout(_) => f.write_str("the queue was still full at the deadline"),
            PutError::Closed(_) => f.write_str("the queue is closed"),
            PutError::Serialize { reason, .. } => {
                write!(f, "the item could not be serialised: {reason}")
            }
            PutError::Failed { error, .. } => write!(f, "put failed: {error}"),
        }
    }
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Empty => f.write_str("the queue is empty"),
            GetError::Timeout => f.write_str("the queue was still empty at the deadline"),
            GetError::Closed => f.write_str("the queue is closed and empty"),
            GetError::Deserialize(reason) => write!(
                f,
                "an item could not be deserialised (it was dropped): {reason}"
            ),
            GetError::Failed(error) => write!(f, "get failed: {error}"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

impl std::error::Error for GetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GetError::Failed(e) => Some(e),
            _ => None,
        }
    }
}
