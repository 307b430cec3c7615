//! # shmkit
//!
//! What Python's `multiprocessing` gives Python programs, for Rust programs, over shared memory
//! and free of its traps: typed shared values and arrays; queues whose producers never get
//! stuck at exit; `Lock`, `RLock`, `Semaphore`, `Event`, `Condition` and `Barrier` across
//! processes; pipes that report end-of-file when the other end dies; Rust functions run in
//! child processes ([`Process`]); and pools of worker processes ([`Pool`], and an executor in
//! [`futures`]) where a worker killed mid-task fails that task instead of hanging the caller.
//!
//! ```
//! # fn main() -> shmkit::Result<()> {
//! use shmkit::{Array, Value};
//!
//! let counter = Value::new(0.0f64)?;           // Python: Value('d', 0.0)
//! let squares = Array::from_slice(&[0i32; 10])?; // Python: Array('i', 10)
//!
//! counter.update(|v| *v += 1.0)?;
//! squares.update(|s| s.iter_mut().enumerate().for_each(|(i, x)| *x = (i * i) as i32))?;
//!
//! // Handles travel to other processes as their names (they implement serde), and the other
//! // process opens the same memory with full type checks:
//! let same: Value<f64> = Value::open(counter.name())?;
//! assert_eq!(same.get()?, 1.0);
//! assert_eq!(squares.get(3)?, 9);
//!
//! // Python: Queue(maxsize=100). Once `put` returns, the item is in shared memory, and this
//! // process may exit before anyone reads it.
//! let q = shmkit::Queue::<(String, Vec<u8>)>::new(100)?;
//! q.put(("job".into(), vec![1, 2, 3]))?;
//! assert_eq!(q.get()?.0, "job");
//! # Ok(()) }
//! ```
//!
//! ## Robustness
//! Every shared object lives in a segment that starts with a validated header: opening the
//! wrong kind, type or length, or a truncated or garbage segment, is an [`Error`], never
//! undefined behaviour. Each [`Value`] and [`Array`] has a process-shared lock that survives
//! its holder: if a process dies while holding it, the next locker gets
//! [`LockError::OwnerDied`] with the guard, instead of hanging. Segments are owned by their
//! creator and unlinked when it drops them; [`shm::segments`] and [`shm::remove_stale`] find
//! and remove what crashed creators left.
//!
//! ## Errors
//! Each operation returns an error of its own with only the cases it can produce, handing back
//! the item or guard where there is one: [`PutError`], [`TryPutError`] and [`PutTimeoutError`]
//! for a queue's `put`, `try_put` and `put_timeout`, [`RecvError`] for a pipe's `recv`,
//! [`LockError`] for `lock`, and so on. Every one converts into the crate [`Error`] (which
//! otherwise holds setup, segment and OS failures), so `?` works in a function returning
//! [`Result`].
//!
//! ## Features
//! `process` (Rust functions in child processes: [`Process`], [`init`]) and `pool` (worker
//! pools and the [`futures`] executor; implies `process`, on by default). Without them, the
//! shared cells, dicts and lists, queues, primitives and pipes remain.
//!
//! ## Layers
//! `sys` (the only code that calls libc) → `shm` (segments, headers, what may live in them) →
//! `sync` (the robust lock, wait lists, and the primitives built on them) → `cell` (`Value`,
//! `Array`), `dict` (`Dict`, `List`), `queue` (`Queue`, `JoinableQueue`) and `pipe` (`Pipe`) →
//! `process` (`Process`) →
//! `pool` (`Pool`, `futures`). `unsafe` is denied crate-wide and allowed only in `sys`, `shm`
//! (segments, the checked control-block types, the registry), the raw lock, its guard and the
//! `Lock`'s hold generation (`sync::raw_lock`, `sync::guard`, `sync::ownerless`), cell storage
//! (`cell::core`, `cell::words`), the queue's ring and lease slots (`queue::core`,
//! `queue::spill`, `queue::slots`), the dict and list storage (`dict::store`) and naming a
//! function across processes (`process::entry`); each block states its argument in a
//! `// SAFETY:` comment.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod cell;
mod dict;
mod error;
pub mod inspect;
mod pid;
mod pipe;
#[cfg(feature = "pool")]
mod pool;
#[cfg(feature = "process")]
#[cfg_attr(docsrs, doc(cfg(feature = "process")))]
pub mod process;
pub mod queue;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod select;
pub mod shm;
mod sync;
#[allow(unsafe_code)]
mod sys;

#[doc(hidden)]
pub mod fuzzing;

pub use cell::{Array, ArrayGuard, RawArray, RawValue, Value, ValueGuard};
pub use dict::{Dict, DictError, List, ListError};
pub use error::{Error, Result};
pub use pid::{cpu_count, current_pid, parent_pid};
pub use pipe::{
    Connection, DEATH_CHECK, End, Pipe, RecvError, RecvTimeoutError, SendError, TryRecvError,
};
#[cfg(feature = "pool")]
#[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
pub use pool::{
    AsyncResult, Chunked, Imap, Pool, PoolBuilder, PoolJoinError, ResultTimeoutError, StarFn,
    TaskError, TryResultError,
};
#[cfg(feature = "process")]
#[cfg_attr(docsrs, doc(cfg(feature = "process")))]
pub use process::{
    Process, ProcessError, ProcessInfo, ProcessTimeoutError, active_children, current_process,
    init, parent_process,
};
pub use select::{Waitable, wait};
/// Names a function so that a [`RedisPool`](crate::redis::RedisPool)'s workers on other hosts
/// can run it: `#[shmkit::task]` (registered as `module_path::fn_name`) or
/// `#[shmkit::task(name = "resize")]`. See [`redis`].
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use shmkit_macros::task;

/// Not public API: what `#[shmkit::task]` expands to.
#[cfg(feature = "redis")]
#[doc(hidden)]
pub mod __private {
    pub use crate::redis::TaskDef;
    pub use inventory;
}
pub use shm::cleanup_on_signals;

/// An executor in the style of Python's `concurrent.futures`: [`Executor`](futures::Executor),
/// [`Future`](futures::Future), [`wait`](futures::wait), [`as_completed`](futures::as_completed).
#[cfg(feature = "pool")]
#[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
pub mod futures {
    pub use crate::pool::futures::{
        AsCompleted, Executor, ExecutorBuilder, Future, MapOptions, MapWith, ReturnWhen, Shutdown,
        Waited, as_completed, wait,
    };
}
pub use queue::{
    AckError, GetError, GetTimeoutError, JoinTimeoutError, JoinableQueue, Lease, LeaseCounts,
    PutError, PutManyError, PutTimeoutError, Queue, TaskDoneError, TryGetError, TryPutError,
};
pub use sync::{
    AccessError, Barrier, BarrierTimeoutError, BarrierTryError, BrokenBarrier, Condition, Event,
    Lock, LockError, LockGuard, LockTimeoutError, NotLocked, NotOwner, OutOfRange, OwnerlessLock,
    Permit, RLock, RawLock, RawMutex, Semaphore, Timeout, TooManyReleases, TryLockError, WaitError,
    WaitTimeoutError, WouldBlock,
};

/// The README's code, compiled and run by `cargo test` so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
