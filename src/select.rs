//! Waiting on several queues, pipe ends and processes at once: Python's
//! `multiprocessing.connection.wait(objects, timeout)`, in the spirit of crossbeam's `Select`.
//!
//! One waiter sleeps until any object is ready, or the timeout: it registers as a sleeper on
//! each queue's (or pipe end's) item wait list and sleeps on all their futex words at once
//! (`futex_waitv`), so a put anywhere wakes it without a polling loop. Deaths (a pipe's other
//! process, a child process) are noticed by a liveness check at most every
//! [`DEATH_CHECK`](crate::DEATH_CHECK), as `recv` notices them.

use std::time::{Duration, Instant};

use crate::queue::QueueCore;
use crate::sys;

/// How often a waiter checks for deaths, which no futex word announces.
const SLICE: Duration = crate::pipe::DEATH_CHECK;
/// The most wait lists one `futex_waitv` sleeps on; objects past it are checked each slice.
const MAX_WATCHED: usize = 128;

pub(crate) mod sealed {
    /// How [`wait`](super::wait) watches an object.
    pub trait Watch {
        /// Whether the object is ready now: a get or `recv` would not wait, or a process has
        /// ended.
        fn is_ready(&self) -> bool;
        /// The queue whose items make it ready, if any.
        fn watched(&self) -> Option<&crate::queue::QueueCore>;
    }
}

/// An object [`wait`] can watch: a [`Queue`](crate::Queue) or
/// [`JoinableQueue`](crate::JoinableQueue) (ready when a `get` would not wait: an item, or
/// closed), a [`Connection`](crate::Connection) (ready when `recv` would not wait: a message,
/// end-of-file, or a closed end) or a [`Process`](crate::Process) (ready once it has ended:
/// Python's `sentinel`).
pub trait Waitable: sealed::Watch {}

impl<T: sealed::Watch + ?Sized> Waitable for T {}

/// Waits until at least one of `objects` is ready, or `timeout` passes (`None`: no limit), and
/// returns the indices of those ready, in order (empty on a timeout): Python's
/// `multiprocessing.connection.wait`. Nothing is taken from them.
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// use std::time::Duration;
/// use shmkit::{Pipe, Queue};
///
/// let jobs = Queue::<u32>::new(0)?;
/// let (control, remote) = Pipe::<String>::duplex()?;
/// assert!(shmkit::wait(&[&jobs, &control], Some(Duration::from_millis(10))).is_empty());
/// remote.send("stop")?; // from another process, usually
/// assert_eq!(shmkit::wait(&[&jobs, &control], None), [1]);
/// # Ok(()) }
/// ```
#[doc(alias = "select")]
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Vec<usize> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let ready: Vec<usize> = (0..objects.len())
            .filter(|&i| objects[i].is_ready())
            .collect();
        let now = Instant::now();
        if !ready.is_empty() || deadline.is_some_and(|d| now >= d) {
            return ready;
        }
        let mut watching: Vec<&QueueCore> = Vec::new();
        let mut words = Vec::new();
        let mut at_once = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            let Some(queue) = object.watched() else {
                continue;
            };
            if watching.len() == MAX_WATCHED {
                break;
            }
            match queue.watch() {
                Some(word) => {
                    watching.push(queue);
                    words.push(word);
                }
                // Ready meanwhile, or broken (its own call will say how): report it.
                None => at_once.push(i),
            }
        }
        if at_once.is_empty() {
            let slice = deadline.map_or(SLICE, |d| d.saturating_duration_since(now).min(SLICE));
            sys::futex_wait_any(&words, slice);
        }
        for queue in watching {
            queue.unwatch();
        }
        if !at_once.is_empty() {
            return at_once;
        }
    }
}
