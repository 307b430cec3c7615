//! `JoinableQueue<T>`: a [`Queue`] that also counts finished tasks, across processes.

use std::ops::Deref;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::core::{Fail, Wait};
use super::error::{JoinTimeoutError, TaskDoneError};
use super::typed::{DEFAULT_CAPACITY, Queue, fail_error};
use crate::error::Result;
use crate::shm::{Kind, SegmentName};

/// Python's `multiprocessing.JoinableQueue`: a [`Queue`] (every queue method is available
/// through `Deref`) plus [`task_done`](Self::task_done) and [`join`](Self::join), which work
/// across processes.
///
/// Every item put counts as an unfinished task until a consumer that took it calls
/// `task_done`; `join` waits until no task is unfinished. As in Python, a consumer that dies
/// after taking an item and before calling `task_done` leaves that task unfinished: use
/// [`join_timeout`](Self::join_timeout) where consumers may die, or take items with
/// [`get_leased`](Queue::get_leased): a lease's [`ack`](crate::Lease::ack) is its item's
/// `task_done`, and a dead consumer's lease hands its item to another consumer, so `join`
/// still returns once every item is acked. (`task_done` counts only items taken by a plain
/// get.)
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// use std::time::Duration;
///
/// let q = shmkit::JoinableQueue::<String>::new(0)?;
/// q.put("job".to_string())?;
/// let consumer = q.clone(); // in another process, usually
/// let worker = std::thread::spawn(move || {
///     let job = consumer.get().unwrap();
///     assert_eq!(job, "job");
///     consumer.task_done().unwrap();
/// });
/// q.join_timeout(Duration::from_secs(10))?; // every item put has been marked done
/// worker.join().unwrap();
/// # Ok(()) }
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T: Serialize + DeserializeOwned + 'static> JoinableQueue<T> {
    /// Creates an anonymous joinable queue of at most `maxsize` items (0: no limit).
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new(maxsize: usize) -> Result<Self> {
        Self::with_capacity(maxsize, DEFAULT_CAPACITY)
    }

    /// Creates an anonymous joinable queue with a ring of `capacity` bytes.
    ///
    /// # Errors
    /// As [`Queue::with_capacity`].
    pub fn with_capacity(maxsize: usize, capacity: usize) -> Result<Self> {
        let queue = Queue::make(
            SegmentName::anonymous()?,
            Kind::JoinableQueue,
            maxsize,
            capacity,
        )?;
        Ok(JoinableQueue { queue })
    }

    /// Creates the joinable queue `name`; fails if it exists. This process owns the name.
    ///
    /// # Errors
    /// As [`Queue::create`].
    pub fn create(name: &str, maxsize: usize, capacity: usize) -> Result<Self> {
        Ok(JoinableQueue {
            queue: Queue::make(
                SegmentName::new(name)?,
                Kind::JoinableQueue,
                maxsize,
                capacity,
            )?,
        })
    }

    /// Opens the existing joinable queue `name`.
    ///
    /// # Errors
    /// As [`Queue::open`]; a plain `Queue` of that name is a [`Error::KindMismatch`](crate::Error::KindMismatch).
    pub fn open(name: &str) -> Result<Self> {
        Ok(JoinableQueue {
            queue: Queue::open_kind(name, Kind::JoinableQueue)?,
        })
    }
}

impl<T> JoinableQueue<T> {
    /// Marks one item taken from the queue (by any process) as finished.
    ///
    /// # Errors
    /// [`TaskDoneError::TooOften`] if every item taken so far is already marked finished;
    /// [`TaskDoneError::Failed`] if the queue's state is corrupt.
    pub fn task_done(&self) -> std::result::Result<(), TaskDoneError> {
        match self.queue.core().task_done() {
            Ok(true) => Ok(()),
            Ok(false) => Err(TaskDoneError::TooOften),
            Err(f) => Err(TaskDoneError::Failed(fail_error(f))),
        }
    }

    /// Waits until every item ever put has been marked finished.
    ///
    /// # Errors
    /// [`Error::Corrupt`](crate::Error::Corrupt) if the queue's state is corrupt.
    pub fn join(&self) -> Result<()> {
        self.queue.core().join(Wait::Forever).map_err(fail_error)
    }

    /// Like [`join`](Self::join), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`JoinTimeoutError::Timeout`] if items are still unfinished at the deadline;
    /// [`JoinTimeoutError::Failed`] if the queue's state is corrupt.
    pub fn join_timeout(&self, timeout: Duration) -> std::result::Result<(), JoinTimeoutError> {
        let wait = std::time::Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until);
        self.queue.core().join(wait).map_err(|f| match f {
            Fail::Timeout => JoinTimeoutError::Timeout,
            other => JoinTimeoutError::Failed(fail_error(other)),
        })
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> std::fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JoinableQueue").field(&self.queue).finish()
    }
}

impl<T> crate::select::sealed::Watch for JoinableQueue<T> {
    fn is_ready(&self) -> bool {
        crate::select::sealed::Watch::is_ready(&self.queue)
    }
    fn watched(&self) -> Option<&crate::queue::QueueCore> {
        crate::select::sealed::Watch::watched(&self.queue)
    }
}

impl<T> crate::shm::by_name::Handle for JoinableQueue<T> {
    fn hand_over(&self) -> std::sync::Arc<dyn crate::shm::by_name::HandOver> {
        crate::shm::by_name::Handle::hand_over(&self.queue)
    }
}

crate::shm::serde_by_name!(impl[T: Serialize + DeserializeOwned + 'static] JoinableQueue<T>);
