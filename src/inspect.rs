//! What a segment holds, read from outside: for the `shmkit` command and for tools that watch a
//! machine's shared objects. Everything here is a snapshot of memory other processes write, and
//! is reported as found, never trusted.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::shm::{Kind, SegmentInfo, segments};

/// A segment, and the state of what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// What the registry knows: name, kind, size, type, creator, hand-overs.
    #[serde(flatten)]
    pub segment: SegmentInfo,
    /// The object's lock, for the kinds that have one.
    pub lock: Option<LockReport>,
    /// A queue's counters.
    pub queue: Option<QueueReport>,
}

/// A lock's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LockReport {
    /// The thread holding it, if held.
    pub holder_tid: Option<u32>,
    /// Whether that thread is alive (a dead holder's lock is taken over by the next locker).
    pub holder_alive: Option<bool>,
    /// Whether a holder died or panicked holding it and nobody marked the data consistent.
    pub poisoned: bool,
}

/// A queue's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueReport {
    /// Items waiting in it (handed-back leased items included).
    pub items: u64,
    /// Items taken under a lease and not yet acked.
    pub leased: u64,
    /// Items put and not yet marked done (a `JoinableQueue`'s unfinished tasks).
    pub unfinished: u64,
    /// Ring bytes in use, and the ring's size.
    pub used_bytes: u64,
    /// The ring's size in bytes.
    pub capacity: u64,
    /// The most items it holds at once (0: no limit).
    pub maxsize: u64,
    /// Whether it is closed.
    pub closed: bool,
}

fn has_lock(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Value
            | Kind::Array
            | Kind::Queue
            | Kind::JoinableQueue
            | Kind::Lock
            | Kind::RLock
            | Kind::Condition
            | Kind::Barrier
            | Kind::Dict
            | Kind::List
    )
}

/// One report for a queue's two locks: the one that is held (the put lock if both are),
/// poisoned if either is.
fn held_of(put_lock: LockReport, get_lock: LockReport) -> LockReport {
    let held = if put_lock.holder_tid.is_some() {
        put_lock
    } else {
        get_lock
    };
    LockReport {
        poisoned: put_lock.poisoned || get_lock.poisoned,
        ..held
    }
}

fn report(segment: SegmentInfo) -> Report {
    let kind = segment.kind;
    let control = &segment.control;
    let describe = |bytes: &[u8]| {
        crate::sync::describe_lock(bytes).map(|(holder, poisoned)| LockReport {
            holder_tid: holder.map(|(tid, _)| tid),
            holder_alive: holder.map(|(_, alive)| alive),
            poisoned,
        })
    };
    let is_queue = kind.is_some_and(|k| matches!(k, Kind::Queue | Kind::JoinableQueue));
    // A queue has a second lock, its get lock.
    let get_lock = if is_queue {
        control.get(crate::queue::GET_LOCK_AT..).and_then(describe)
    } else {
        None
    };
    let lock = kind
        .filter(|k| has_lock(*k))
        .and_then(|_| describe(control))
        .map(|first| get_lock.map_or(first, |g| held_of(first, g)));
    let counters = if is_queue {
        crate::queue::counters(control)
    } else {
        None
    };
    let queue = counters.map(|c| QueueReport {
        items: c
            .puts
            .saturating_sub(c.gets)
            .saturating_add(u64::from(c.returned)),
        leased: u64::from(c.leased),
        unfinished: c.puts.saturating_sub(c.done),
        used_bytes: c.tail.saturating_sub(c.head),
        capacity: c.capacity,
        maxsize: c.maxsize,
        closed: c.closed,
    });
    Report {
        segment,
        lock,
        queue,
    }
}

/// Every shmkit segment on the machine, with its state.
///
/// # Errors
/// [`Error::Io`] if `/dev/shm` cannot be read.
pub fn inspect_all() -> Result<Vec<Report>> {
    Ok(segments()?.into_iter().map(report).collect())
}

/// The segment `name`, with its state.
///
/// # Errors
/// [`Error::NotFound`] if there is no such shmkit segment; [`Error::Io`].
pub fn inspect(name: &str) -> Result<Report> {
    segments()?
        .into_iter()
        .find(|s| s.name == name)
        .map(report)
        .ok_or_else(|| Error::NotFound {
            name: name.to_owned(),
        })
}
