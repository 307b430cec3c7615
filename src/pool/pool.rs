//! `Pool`: Python's `multiprocessing.Pool`, with worker processes that stay up between tasks.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::chunked::Chunked;
use super::core::{Config, Core, Sink};
use super::error::{PoolJoinError, TaskError};
use super::imap::Imap;
use super::slot::{self, AsyncResult, Slot};
use super::task::{self, StarFn};
use crate::error::{Error, Result};

/// A pool of worker processes: Python's `multiprocessing.Pool`.
///
/// Workers are this executable started again (so `main` must begin with
/// [`shmkit::init()`](crate::init)), and stay up between tasks. Tasks are plain functions (fn
/// items or closures that capture nothing; anything else fails to compile) with serde
/// arguments and results.
///
/// Where Python's pool hangs, this one answers:
/// - A task that panics or returns `Err` fails alone, with its message
///   ([`TaskError::Panicked`], [`TaskError::Failed`]); `map` reports the first failure once every
///   chunk has finished.
/// - A worker that dies in the middle of a task (SIGKILL, abort, out of memory) fails that task
///   with [`TaskError::WorkerDied`]; tasks that were waiting for that worker go to another; the
///   worker is replaced, and the pool stays usable.
/// - An argument or result that does not (de)serialise fails its task only.
/// - An initializer that fails breaks the pool with [`TaskError::Initializer`] instead of
///   restarting workers forever.
///
/// A closure that captures local state cannot be sent to a worker, which has no copy of that
/// state: it is a compile-time error (where Python fails at run time, pickling):
///
/// ```compile_fail,E0080
/// fn main() {
///     shmkit::init();
///     let pool = shmkit::Pool::new(2).unwrap();
///     let offset = 10u64;
///     let _ = pool.map(move |x: u64| x + offset, 0..4u64); // error: captures `offset`
/// }
/// ```
///
/// Dropping the pool terminates it (Python's `with Pool() as p:` does the same): unfinished
/// tasks fail with [`TaskError::Terminated`]. Call [`close`](Self::close) and
/// [`join`](Self::join) to let them finish.
///
/// ```no_run
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     shmkit::init();
///     let pool = shmkit::Pool::new(4)?;
///     assert_eq!(pool.map(square, 1..=5)?, [1, 4, 9, 16, 25]);
///     let r = pool.apply_async(square, 7).on_success(|v| println!("got {v}"));
///     assert_eq!(r.get()?, 49);
///     Ok(())
/// }
/// ```
pub struct Pool {
    pub(super) core: Arc<Core>,
    collector: Mutex<Option<JoinHandle<()>>>,
}

/// Options for a [`Pool`]: the number of workers, an initializer, `maxtasksperchild`.
#[derive(Default, Debug)]
pub struct PoolBuilder {
    processes: Option<usize>,
    initializer: Option<std::result::Result<(i64, Vec<u8>), String>>,
    maxtasks: Option<u64>,
}

impl PoolBuilder {
    /// The number of worker processes (default: the available cores).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Runs `f(arg)` first in every worker (Python's `initializer` and `initargs`), for
    /// example to open shared objects once. If it panics, the pool is broken: every task fails
    /// with [`TaskError::Initializer`].
    pub fn initializer<F, A>(mut self, f: F, arg: A) -> Self
    where
        F: Fn(A) + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
    {
        let mut args = Vec::new();
        task::push_arg(&mut args, &arg);
        self.initializer = Some(match task::first_failure_of_args(&args) {
            None => Ok((task::map_entry::<F, A, ()>(f), args)),
            Some(why) => Err(why),
        });
        self
    }

    /// Replaces each worker by a fresh process after it has run `n` tasks (Python's
    /// `maxtasksperchild`; a `map` chunk is one task).
    #[doc(alias = "maxtasksperchild")]
    /// `0` is refused by [`build`](Self::build), as Python refuses it.
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.maxtasks = Some(n);
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for 0 processes, `max_tasks_per_child(0)`, or an initializer argument that does not
    /// serialise; [`Error::InitNotCalled`](crate::Error::InitNotCalled) if this binary's `main` does not begin with
    /// `shmkit::init()`; [`Error::Io`](crate::Error::Io) if a worker cannot be started.
    pub fn build(self) -> Result<Pool> {
        if self.maxtasks == Some(0) {
            return Err(Error::InvalidArgument {
                what: "max_tasks_per_child must be at least 1".into(),
            });
        }
        let initializer = self
            .initializer
            .transpose()
            .map_err(|why| Error::InvalidArgument { what: why })?;
        let processes = self.processes.unwrap_or_else(default_processes);
        let config = Config {
            processes,
            initializer,
            maxtasks: self.maxtasks,
            break_on_death: false,
            test: crate::process::handle::current_test(),
            worker_name: "PoolWorker",
        };
        Pool::with_config(config)
    }
}

/// The available cores (Python's `os.cpu_count()`), at least 1.
pub(crate) fn default_processes() -> usize {
    crate::cpu_count()
}

impl Pool {
    /// Starts a pool of `processes` workers.
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    pub fn new(processes: usize) -> Result<Pool> {
        Pool::builder().processes(processes).build()
    }

    /// Options: `Pool::builder().processes(4).initializer(f, arg).maxtasksperchild(100).build()`.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    pub(crate) fn with_config(config: Config) -> Result<Pool> {
        let (core, collector) = Core::start(config)?;
        Ok(Pool {
            core,
            collector: Mutex::new(Some(collector)),
        })
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// A pool whose workers run on any host reaching the Redis at `url` (feature `redis`):
    /// [`RedisPool::connect(url, "default")`](crate::redis::RedisPool::connect), for
    /// functions marked `#[shmkit::task]`. Workers serve it with
    /// `SHMKIT_REDIS_WORKER=<url>` or [`Worker`](crate::redis::Worker).
    ///
    /// # Errors
    /// As [`RedisPool::connect`](crate::redis::RedisPool::connect).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn connect(url: &str) -> Result<crate::redis::RedisPool> {
        crate::redis::RedisPool::connect(url, "default")
    }

    /// The number of workers.
    pub fn processes(&self) -> usize {
        self.core.processes()
    }

    /// The pids of the workers running now.
    pub fn pids(&self) -> Vec<u32> {
        self.core.pids()
    }

    /// Map operations with `chunksize` items per task instead of the default
    /// (Python's `chunksize=` argument): `pool.chunksize(100).map(f, items)`.
    pub fn chunksize(&self, chunksize: usize) -> Chunked<'_> {
        Chunked {
            pool: self,
            chunksize: Some(chunksize.max(1)),
        }
    }

    fn chunked(&self) -> Chunked<'_> {
        Chunked {
            pool: self,
            chunksize: None,
        }
    }

    /// Runs `f(arg)` on a worker and waits for the result (Python's `apply`).
    ///
    /// # Errors
    /// The task's [`TaskError`].
    pub fn apply<F, A, R>(&self, f: F, arg: A) -> std::result::Result<R, TaskError>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.apply_async(f, arg).get()
    }

    /// Starts `f(arg)` on a worker (Python's `apply_async`); callbacks go on the result.
    pub fn apply_async<F, A, R>(&self, f: F, arg: A) -> AsyncResult<R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        let (slot, _) = self.submit_one(f, &arg);
        AsyncResult::new(slot, slot::decode_one::<R>)
    }

    /// Runs `f(a, b, ...)` on a worker and waits for the result (Python's
    /// `apply(f, args=(a, b))`).
    ///
    /// # Errors
    /// The task's [`TaskError`].
    pub fn apply_star<F, Args, R>(&self, f: F, args: Args) -> std::result::Result<R, TaskError>
    where
        F: StarFn<Args, Output = R>,
        Args: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.apply_star_async(f, args).get()
    }

    /// Starts `f(a, b, ...)` on a worker (Python's `apply_async(f, args=(a, b))`).
    pub fn apply_star_async<F, Args, R>(&self, f: F, args: Args) -> AsyncResult<R>
    where
        F: StarFn<Args, Output = R>,
        Args: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        let (slot, _) = self.submit_entry(task::star_entry(f), &args);
        AsyncResult::new(slot, slot::decode_one::<R>)
    }

    /// Submits `f(arg)` as a task of one item: its slot, and its id (`None` if refused).
    pub(crate) fn submit_one<F, A, R>(&self, f: F, arg: &A) -> (Arc<Slot>, Option<u64>)
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.submit_entry(task::map_entry(f), arg)
    }

    /// Submits the trampoline `entry` on one argument.
    fn submit_entry<A: Serialize>(&self, entry: i64, arg: &A) -> (Arc<Slot>, Option<u64>) {
        let (args, _, sent) = task::encode_chunk(&mut std::iter::once(arg), 1);
        let slot = Slot::new(vec![1]);
        let id = self
            .core
            .submit(entry, (args, sent), Sink::Slot(slot.clone(), 0));
        (slot, id)
    }

    /// Runs a fallible `f(arg)` on a worker and waits for its value: an `Err` it returns is
    /// [`TaskError::Failed`] (with the error's text), an `Ok` is its value, with no nested
    /// `Result` (`apply` of the same function gives `Ok(Ok(v))`).
    ///
    /// # Errors
    /// The task's [`TaskError`].
    pub fn try_apply<F, A, R, E>(&self, f: F, arg: A) -> std::result::Result<R, TaskError>
    where
        F: Fn(A) -> std::result::Result<R, E> + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        E: Serialize + DeserializeOwned + 'static,
    {
        self.try_apply_async(f, arg).get()
    }

    /// As [`try_apply`](Self::try_apply), without waiting.
    pub fn try_apply_async<F, A, R, E>(&self, f: F, arg: A) -> AsyncResult<R>
    where
        F: Fn(A) -> std::result::Result<R, E> + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        E: Serialize + DeserializeOwned + 'static,
    {
        let (slot, _) = self.submit_one(f, &arg);
        AsyncResult::new(slot, slot::decode_one_ok::<R>)
    }

    /// A fallible `f` on every item, in order: the values inside the `Ok`s, or the first
    /// failure (an `Err` is [`TaskError::Failed`]), as [`try_apply`](Self::try_apply).
    ///
    /// # Errors
    /// The first failing item's [`TaskError`], once every chunk has finished.
    pub fn try_map<F, A, R, E, I>(&self, f: F, items: I) -> std::result::Result<Vec<R>, TaskError>
    where
        F: Fn(A) -> std::result::Result<R, E> + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        E: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        self.chunked()
            .run_all_with(task::map_entry(f), items, task::decode_outcome_ok::<R>)
    }

    /// `f` on every item, in order (Python's `map`), in chunks of the default size: the items
    /// divided by four times the workers, rounded up.
    ///
    /// # Errors
    /// The first failing item's [`TaskError`], once every chunk has finished.
    pub fn map<F, A, R, I>(&self, f: F, items: I) -> std::result::Result<Vec<R>, TaskError>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        self.chunked().map(f, items)
    }

    /// As [`map`](Self::map), without waiting (Python's `map_async`).
    pub fn map_async<F, A, R, I>(&self, f: F, items: I) -> AsyncResult<Vec<R>>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        self.chunked().map_async(f, items)
    }

    /// `f(a, b, ...)` for every tuple `(a, b, ...)`, in order (Python's `starmap`).
    ///
    /// # Errors
    /// As [`map`](Self::map).
    pub fn starmap<F, Args, R, I>(&self, f: F, items: I) -> std::result::Result<Vec<R>, TaskError>
    where
        F: StarFn<Args, Output = R>,
        Args: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = Args>,
    {
        self.chunked().starmap(f, items)
    }

    /// As [`starmap`](Self::starmap), without waiting (Python's `starmap_async`).
    pub fn starmap_async<F, Args, R, I>(&self, f: F, items: I) -> AsyncResult<Vec<R>>
    where
        F: StarFn<Args, Output = R>,
        Args: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = Args>,
    {
        self.chunked().starmap_async(f, items)
    }

    /// `f` on every item, lazily and in order (Python's `imap`, one item per task by default):
    /// the iterator yields each item's result as soon as it and those before it are done, and
    /// reads `items` only a few chunks ahead, so `items` may be endless.
    pub fn imap<'p, F, A, R, I>(&'p self, f: F, items: I) -> Imap<'p, R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        self.chunksize(1).imap(f, items)
    }

    /// As [`imap`](Self::imap), yielding results in the order they finish (Python's
    /// `imap_unordered`).
    pub fn imap_unordered<'p, F, A, R, I>(&'p self, f: F, items: I) -> Imap<'p, R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        self.chunksize(1).imap_unordered(f, items)
    }

    /// Accepts no more tasks (Python's `close`); those already submitted still run.
    pub fn close(&self) {
        self.core.close(false);
    }

    /// Waits for every submitted task, then stops the workers (Python's `join`).
    ///
    /// # Errors
    /// [`StillOpen`](PoolJoinError::StillOpen) unless [`close`](Self::close) or
    /// [`terminate`](Self::terminate) came first, as in Python.
    pub fn join(&self) -> std::result::Result<(), PoolJoinError> {
        self.join_until(None)
    }

    /// As [`join`](Self::join), waiting at most `timeout` for the tasks.
    ///
    /// # Errors
    /// As [`join`](Self::join), and [`PoolJoinError::Timeout`] if tasks are still running then
    /// (the pool stays closed and working; join again, or terminate it).
    pub fn join_timeout(&self, timeout: Duration) -> std::result::Result<(), PoolJoinError> {
        self.join_until(Instant::now().checked_add(timeout))
    }

    fn join_until(&self, deadline: Option<Instant>) -> std::result::Result<(), PoolJoinError> {
        if self.core.accepting() {
            return Err(PoolJoinError::StillOpen);
        }
        if !self.core.wait_idle(deadline) {
            return Err(PoolJoinError::Timeout);
        }
        self.core.close(true);
        if let Some(handle) = self.collector.lock().take() {
            let _ = handle.join();
        }
        Ok(())
    }

    /// Kills the workers at once (Python's `terminate`); unfinished tasks fail with
    /// [`TaskError::Terminated`].
    pub fn terminate(&self) {
        self.core.terminate();
        if let Some(handle) = self.collector.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes())
            .field("pids", &self.pids())
            .finish()
    }
}
