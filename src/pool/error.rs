//! `TaskError`: why a pool task gave no value.

/// Why a task submitted to a [`Pool`](crate::Pool) or an [`Executor`](crate::futures::Executor)
/// gave no value. Each task fails on its own: the pool stays usable after every variant except
/// [`Initializer`](Self::Initializer) and [`Broken`](Self::Broken).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The function panicked, with this message.
    #[error("the task panicked: {0}")]
    Panicked(String),
    /// The function returned `Err`, rendered as text (a string error is its text; anything else
    /// its JSON).
    #[error("the task failed: {0}")]
    Failed(String),
    /// The worker running the task died (killed by a signal, aborted, out of memory) before it
    /// sent the result. The pool replaced the worker.
    #[error("the worker (pid {pid}) running this task died: {status}")]
    WorkerDied {
        /// The dead worker's pid.
        pid: u32,
        /// How it ended, as text (`killed by signal 9`, `exit code 3`).
        status: String,
    },
    /// The argument or the result did not serialise.
    #[error("{0}")]
    Serialize(String),
    /// The argument or the result did not deserialise.
    #[error("{0}")]
    Deserialize(String),
    /// A worker's initializer panicked or its worker died in it; the pool does not start
    /// workers again (Python's pool restarts them forever), and every task fails.
    #[error("the pool's initializer failed: {0}")]
    Initializer(String),
    /// The pool was terminated or dropped before the task finished.
    #[error("the pool was terminated before the task finished")]
    Terminated,
    /// The task was submitted after `close`, `join` or `shutdown`.
    #[error("the pool is closed to new tasks")]
    Closed,
    /// An executor's worker died, which breaks the executor, as in Python's
    /// `ProcessPoolExecutor`: every unfinished future fails with this, and so does any new one.
    #[error("the executor is broken: {0}")]
    Broken(String),
    /// The future was cancelled before it started.
    #[error("the task was cancelled")]
    Cancelled,
    /// A worker on another host (`shmkit::redis::RedisPool`, feature `redis`) does not know
    /// the task's name, or knows a function of other argument or result types under it (it
    /// runs another build): it ran nothing.
    #[error("{0}")]
    UnknownTask(String),
    /// The pool could not start a worker or talk to it (an OS error, as text).
    #[error("pool failure: {0}")]
    Pool(String),
}

/// Why [`AsyncResult::get_timeout`](crate::AsyncResult::get_timeout) (or
/// [`Future::result_timeout`](crate::futures::Future::result_timeout)) gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultTimeoutError {
    /// The task had not finished at the deadline (it keeps running; ask again).
    #[error("the task had not finished at the deadline")]
    Timeout,
    /// The task finished without a value.
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// Why [`AsyncResult::try_get`](crate::AsyncResult::try_get) (or
/// [`Future::try_result`](crate::futures::Future::try_result)) gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TryResultError {
    /// The task has not finished yet.
    #[error("the task has not finished yet")]
    NotReady,
    /// The task finished without a value.
    #[error(transparent)]
    Task(#[from] TaskError),
}

crate::error::into_op_error!(TaskError, ResultTimeoutError, TryResultError, PoolJoinError);

/// Why [`Pool::join_timeout`](crate::Pool::join_timeout) returned before the pool stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolJoinError {
    /// `join` needs [`close`](crate::Pool::close) or [`terminate`](crate::Pool::terminate)
    /// first, as in Python (which raises `ValueError`).
    #[error("join() needs close() or terminate() first")]
    StillOpen,
    /// Tasks were still running at the deadline (the pool stays closed and working; join
    /// again, or terminate it).
    #[error("tasks were still running at the deadline")]
    Timeout,
}
