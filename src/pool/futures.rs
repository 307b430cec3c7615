//! An executor in the style of Python's `concurrent.futures.ProcessPoolExecutor`: `submit`
//! returns a [`Future`]; [`wait`] and [`as_completed`] watch several.
//!
//! As in Python, the abrupt death of a worker *breaks* the executor: every unfinished future
//! fails with [`TaskError::Broken`], and so does every later `submit`. (A [`Pool`] instead fails
//! only the dead worker's task and replaces the worker.)
//!
//! ```no_run
//! use shmkit::futures::{Executor, ReturnWhen, as_completed, wait};
//!
//! fn slow_square(x: u64) -> u64 {
//!     std::thread::sleep(std::time::Duration::from_millis(10 * x));
//!     x * x
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     shmkit::init();
//!     let executor = Executor::new(2)?;
//!     let futures: Vec<_> = (1..=4).map(|x| executor.submit(slow_square, x)).collect();
//!     for f in as_completed(&futures, None) {
//!         println!("{}", f?.result()?);
//!     }
//!     let w = wait(&futures, None, ReturnWhen::AllCompleted);
//!     assert_eq!(w.done.len(), 4);
//!     Ok(())
//! }
//! ```

use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::core::{Config, Core};
use super::error::{ResultTimeoutError, TaskError, TryResultError};
use super::imap::Imap;
use super::pool::{Pool, default_processes};
use super::slot::{self, AsyncResult, Phase};
use crate::error::Result;

/// A pool of worker processes behind `submit` and futures: Python's `ProcessPoolExecutor`.
///
/// Dropping it is `shutdown(Shutdown::Wait { cancel_pending: false })`, as leaving Python's
/// `with` block: it waits for the submitted tasks.
///
/// ```
/// use std::time::Duration;
/// use shmkit::futures::{Executor, Shutdown};
///
/// fn cube(x: i64) -> i64 {
///     x * x * x
/// }
///
/// fn main() -> shmkit::Result<()> {
///     shmkit::init(); // first in main: in a worker, this runs the worker and exits
///     let executor = Executor::new(2)?;
///     let future = executor.submit(cube, 3);
///     assert_eq!(future.result_timeout(Duration::from_secs(30))?, 27);
///     assert!(future.is_done());
///     executor.shutdown(Shutdown::Wait { cancel_pending: false });
///     Ok(())
/// }
/// ```
pub struct Executor {
    pool: Pool,
}

/// Options for an [`Executor`]: Python's `ProcessPoolExecutor(max_workers,
/// max_tasks_per_child=...)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecutorBuilder {
    max_workers: Option<usize>,
    max_tasks_per_child: Option<u64>,
}

impl ExecutorBuilder {
    /// The number of worker processes (default: [`cpu_count`](crate::cpu_count)).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// Replaces each worker by a fresh process after it has run `n` tasks.
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// Starts the executor.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for 0 workers or
    /// `max_tasks_per_child(0)`, or as [`PoolBuilder::build`](crate::PoolBuilder::build).
    pub fn build(self) -> Result<Executor> {
        if self.max_tasks_per_child == Some(0) {
            return Err(crate::Error::InvalidArgument {
                what: "max_tasks_per_child must be at least 1".into(),
            });
        }
        let config = Config {
            processes: self.max_workers.unwrap_or_else(default_processes),
            initializer: None,
            maxtasks: self.max_tasks_per_child,
            break_on_death: true,
            test: crate::process::handle::current_test(),
            worker_name: "ExecutorWorker",
        };
        Ok(Executor {
            pool: Pool::with_config(config)?,
        })
    }
}

/// How [`Executor::map_with`] runs: Python's `map(..., timeout=, chunksize=)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MapOptions {
    /// How long, from the call, every result may take; past it the iterator yields
    /// [`ResultTimeoutError::Timeout`] once and ends. `None`: no limit.
    pub timeout: Option<Duration>,
    /// Items per task (default 1).
    pub chunksize: Option<usize>,
}

impl Executor {
    /// Starts an executor with `max_workers` worker processes.
    ///
    /// # Errors
    /// As [`PoolBuilder::build`](crate::PoolBuilder::build).
    pub fn new(max_workers: usize) -> Result<Executor> {
        Executor::builder().max_workers(max_workers).build()
    }

    /// Options for an executor: `Executor::builder().max_tasks_per_child(10).build()`.
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder::default()
    }

    /// Starts an executor with a worker per available core.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_default_workers() -> Result<Executor> {
        Executor::new(default_processes())
    }

    /// Schedules `f(arg)`.
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> Future<R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        let (slot, id) = self.pool.submit_one(f, &arg);
        Future {
            result: AsyncResult::new(slot, slot::decode_one::<R>),
            core: Arc::downgrade(self.pool.core()),
            id,
        }
    }

    /// Schedules a fallible `f(arg)`: the future's value is the `R` inside an `Ok`, and an
    /// `Err` is [`TaskError::Failed`] (no nested `Result`; see
    /// [`Pool::try_apply`](crate::Pool::try_apply)).
    pub fn try_submit<F, A, R, E>(&self, f: F, arg: A) -> Future<R>
    where
        F: Fn(A) -> std::result::Result<R, E> + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        E: Serialize + DeserializeOwned + 'static,
    {
        let (slot, id) = self.pool.submit_one(f, &arg);
        Future {
            result: AsyncResult::new(slot, slot::decode_one_ok::<R>),
            core: Arc::downgrade(self.pool.core()),
            id,
        }
    }

    /// Submits `f` for every item at once, and returns their results in order, each as it is
    /// needed (Python's `Executor.map`).
    pub fn map<F, A, R, I>(
        &self,
        f: F,
        items: I,
    ) -> impl Iterator<Item = std::result::Result<R, TaskError>> + use<F, A, R, I>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        let futures: Vec<Future<R>> = items.into_iter().map(|a| self.submit(f, a)).collect();
        futures.into_iter().map(|f| f.result())
    }

    /// `f` for every item, in order, with a time limit and a chunk size (Python's
    /// `Executor.map(f, items, timeout=..., chunksize=...)`). The input is read as workers
    /// take it, and results come as they are needed.
    pub fn map_with<'e, F, A, R, I>(&'e self, f: F, items: I, options: MapOptions) -> MapWith<'e, R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned + 'e,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'e,
    {
        MapWith {
            imap: self
                .pool
                .chunksize(options.chunksize.unwrap_or(1))
                .imap(f, items),
            deadline: options.timeout.and_then(|t| Instant::now().checked_add(t)),
            ended: false,
        }
    }

    /// Accepts no more tasks (Python's `shutdown(wait, cancel_futures)`): see [`Shutdown`].
    pub fn shutdown(&self, how: Shutdown) {
        let core = self.pool.core();
        core.close(true);
        let (wait, cancel_pending) = match how {
            Shutdown::Wait { cancel_pending } => (true, cancel_pending),
            Shutdown::NoWait { cancel_pending } => (false, cancel_pending),
        };
        if cancel_pending {
            core.cancel_pending();
        }
        if wait {
            let _ = self.pool.join();
        }
    }

    /// The pids of the workers running now.
    pub fn pids(&self) -> Vec<u32> {
        self.pool.pids()
    }
}

/// How [`Executor::shutdown`] stops: Python's `shutdown(wait=..., cancel_futures=...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Wait for the tasks still to run, then stop the workers (Python's `wait=True`).
    Wait {
        /// Cancel the tasks no worker has started (Python's `cancel_futures=True`).
        cancel_pending: bool,
    },
    /// Return at once; the workers stop once the remaining tasks are done.
    NoWait {
        /// As for [`Shutdown::Wait`].
        cancel_pending: bool,
    },
}

/// The iterator of [`Executor::map_with`].
#[derive(Debug)]
pub struct MapWith<'e, R> {
    imap: Imap<'e, R>,
    deadline: Option<Instant>,
    ended: bool,
}

impl<R: DeserializeOwned> Iterator for MapWith<'_, R> {
    type Item = std::result::Result<R, ResultTimeoutError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let next = match self.deadline {
            None => self
                .imap
                .next()
                .map(|r| r.map_err(ResultTimeoutError::Task)),
            Some(d) => self
                .imap
                .next_timeout(d.saturating_duration_since(Instant::now())),
        };
        self.ended = matches!(next, None | Some(Err(ResultTimeoutError::Timeout)));
        next
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shutdown(Shutdown::Wait {
            cancel_pending: false,
        });
    }
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("pool", &self.pool)
            .finish()
    }
}

/// The eventual result of [`Executor::submit`]: Python's `concurrent.futures.Future`.
/// Clones are handles on the same future.
///
/// It is an [`AsyncResult`] (which waits, decodes and holds the outcome) plus what cancelling
/// needs: the task's id in its pool.
pub struct Future<R> {
    result: AsyncResult<R>,
    core: Weak<Core>,
    id: Option<u64>,
}

impl<R> Clone for Future<R> {
    fn clone(&self) -> Self {
        Future {
            result: self.result.clone(),
            core: self.core.clone(),
            id: self.id,
        }
    }
}

impl<R: DeserializeOwned + 'static> Future<R> {
    /// Whether it finished or was cancelled (Python's `done()`).
    #[doc(alias = "done")]
    pub fn is_done(&self) -> bool {
        self.result.is_ready()
    }

    fn phase(&self) -> Phase {
        self.result.slot().phase()
    }

    /// Whether a worker has it (it may be waiting in that worker's inbox, as in Python, where
    /// a future is running once it is in the call queue): Python's `running()`.
    #[doc(alias = "running")]
    pub fn is_running(&self) -> bool {
        matches!(self.phase(), Phase::Running | Phase::Completing)
    }

    /// Whether it was cancelled (Python's `cancelled()`).
    #[doc(alias = "cancelled")]
    pub fn is_cancelled(&self) -> bool {
        self.phase() == Phase::Cancelled
    }

    /// Cancels it if no worker has it yet; whether it is cancelled. Done callbacks run.
    pub fn cancel(&self) -> bool {
        match self.phase() {
            Phase::Cancelled => return true,
            Phase::Pending => {}
            _ => return false,
        }
        let withdrawn = match (self.core.upgrade(), self.id) {
            (Some(core), Some(id)) => core.withdraw(id),
            _ => false,
        };
        withdrawn && self.result.slot().cancel()
    }

    /// Waits for it and returns its value.
    ///
    /// # Errors
    /// The task's [`TaskError`]; [`TaskError::Cancelled`] if it was cancelled.
    pub fn result(&self) -> std::result::Result<R, TaskError> {
        self.result.get()
    }

    /// Its value, if it has finished.
    ///
    /// # Errors
    /// [`TryResultError::NotReady`] if it has not; the task's error inside
    /// [`TryResultError::Task`].
    pub fn try_result(&self) -> std::result::Result<R, TryResultError> {
        self.result.try_get()
    }

    /// As [`result`](Self::result), waiting at most `timeout` (Python's `result(timeout)`).
    ///
    /// # Errors
    /// [`ResultTimeoutError::Timeout`] if it has not finished by then.
    pub fn result_timeout(&self, timeout: Duration) -> std::result::Result<R, ResultTimeoutError> {
        self.result.get_timeout(timeout)
    }

    /// Waits at most `timeout` for it and returns its error, if it failed (Python's
    /// `exception(timeout)`).
    ///
    /// # Errors
    /// [`Timeout`](crate::Timeout) if it has not finished by then.
    pub fn error_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<Option<TaskError>, crate::Timeout> {
        match self.result.get_timeout(timeout) {
            Ok(_) => Ok(None),
            Err(ResultTimeoutError::Task(e)) => Ok(Some(e)),
            Err(ResultTimeoutError::Timeout) => Err(crate::Timeout),
        }
    }

    /// Waits for it and returns its error, if it failed (Python's `exception()`).
    #[doc(alias = "exception")]
    pub fn error(&self) -> Option<TaskError> {
        self.result().err()
    }

    /// Waits at most `timeout`; whether it is done.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.result.wait_timeout(timeout)
    }

    /// Runs `f` with this future once it is done or cancelled: on the pool's collector thread,
    /// or at once on this thread if it already is (Python's `add_done_callback`).
    pub fn add_done_callback(&self, f: impl FnOnce(&Future<R>) + Send + 'static) {
        let me = self.clone();
        self.result.slot().add_after(Box::new(move || f(&me)));
    }
}

impl<R> std::fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Future")
            .field("phase", &self.result.slot().phase())
            .finish()
    }
}

/// When [`wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any future is done or cancelled.
    FirstCompleted,
    /// As soon as any future fails, or when all are done.
    FirstException,
    /// When all are done or cancelled.
    AllCompleted,
}

/// What [`wait`] returns: the futures split into done and not done, each in the given order.
#[derive(Debug)]
pub struct Waited<R> {
    /// Done or cancelled.
    pub done: Vec<Future<R>>,
    /// Still pending or running.
    pub not_done: Vec<Future<R>>,
}

/// `futures` with each future once, in the order of its first appearance: a future passed
/// twice counts once, as Python's (bpo-20369).
fn distinct<R>(futures: &[Future<R>]) -> Vec<Future<R>> {
    let mut seen = std::collections::HashSet::new();
    futures
        .iter()
        .filter(|f| seen.insert(Arc::as_ptr(f.result.slot())))
        .cloned()
        .collect()
}

/// Sends each future's index down a channel when it is done (at once for those that are).
fn watch<R: DeserializeOwned + 'static>(futures: &[Future<R>]) -> mpsc::Receiver<usize> {
    let (tx, rx) = mpsc::channel();
    for (i, f) in futures.iter().enumerate() {
        let tx = tx.clone();
        f.result.slot().add_after(Box::new(move || {
            let _ = tx.send(i);
        }));
    }
    rx
}

/// Waits, at most `timeout`, until `when` holds for `futures` (Python's
/// `concurrent.futures.wait`).
pub fn wait<R: DeserializeOwned + 'static>(
    futures: &[Future<R>],
    timeout: Option<Duration>,
    when: ReturnWhen,
) -> Waited<R> {
    let futures = &distinct(futures)[..];
    let rx = watch(futures);
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut finished = vec![false; futures.len()];
    let mut count = 0;
    let mut failed = false;
    loop {
        let satisfied = match when {
            ReturnWhen::AllCompleted => count == futures.len(),
            ReturnWhen::FirstCompleted => count > 0 || futures.is_empty(),
            ReturnWhen::FirstException => failed || count == futures.len(),
        };
        if satisfied {
            break;
        }
        let got = match deadline {
            None => rx.recv().ok(),
            Some(d) => rx
                .recv_timeout(d.saturating_duration_since(Instant::now()))
                .ok(),
        };
        let Some(i) = got else { break };
        if !std::mem::replace(&mut finished[i], true) {
            count += 1;
            let f = &futures[i];
            failed |= !f.is_cancelled() && f.error().is_some();
        }
    }
    let (done, not_done): (Vec<_>, Vec<_>) =
        futures.iter().cloned().zip(finished).partition(|(_, d)| *d);
    Waited {
        done: done.into_iter().map(|(f, _)| f).collect(),
        not_done: not_done.into_iter().map(|(f, _)| f).collect(),
    }
}

/// The futures in the order they finish (Python's `concurrent.futures.as_completed`); those
/// already done come first. If `timeout` passes before all are done, the iterator yields
/// [`Timeout`](crate::Timeout) once and ends (Python raises `TimeoutError`).
pub fn as_completed<R: DeserializeOwned + 'static>(
    futures: &[Future<R>],
    timeout: Option<Duration>,
) -> AsCompleted<R> {
    let futures = distinct(futures);
    AsCompleted {
        rx: watch(&futures),
        deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
        left: futures.len(),
        futures,
    }
}

/// The iterator of [`as_completed`].
#[derive(Debug)]
pub struct AsCompleted<R> {
    futures: Vec<Future<R>>,
    rx: mpsc::Receiver<usize>,
    deadline: Option<Instant>,
    left: usize,
}

impl<R> Iterator for AsCompleted<R> {
    type Item = std::result::Result<Future<R>, crate::Timeout>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let got = match self.deadline {
            None => self.rx.recv().ok(),
            Some(d) => self
                .rx
                .recv_timeout(d.saturating_duration_since(Instant::now()))
                .ok(),
        };
        match got {
            Some(i) => {
                self.left -= 1;
                Some(Ok(self.futures[i].clone()))
            }
            None => {
                self.left = 0;
                Some(Err(crate::Timeout))
            }
        }
    }
}
