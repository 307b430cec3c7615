//! How long a queue operation waits, and why one failed: the vocabulary between the core and
//! the typed handles, which turn a [`Fail`] into each call's own error type.

use std::time::Instant;

use crate::error::Error;

/// When a blocking operation gives up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all: fail at once.
    No,
    /// At this instant.
    Until(Instant),
    /// Never.
    Forever,
}

/// Why a core operation failed.
#[derive(Debug)]
pub(crate) enum Fail {
    /// No room (put) or no item (get), and `Wait::No`.
    WouldBlock,
    /// Still no room or item at the deadline.
    Timeout,
    /// The queue was closed (and, for a get, is empty).
    Closed,
    /// Setup, OS or corruption error.
    Error(Error),
}

impl Fail {
    /// What happened, for a report of a failure that cannot happen.
    pub(crate) fn what(&self) -> &'static str {
        match self {
            Fail::WouldBlock => "would-block",
            Fail::Timeout => "a timeout",
            Fail::Closed => "closed",
            Fail::Error(_) => "an error",
        }
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Error(e)
    }
}
