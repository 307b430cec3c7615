//! Pools of worker processes: [`Pool`] (Python's `multiprocessing.Pool`) and, in
//! [`futures`](crate::futures), an executor in the style of `concurrent.futures`.
//!
//! Layers: `task` (the wire format of a task and the trampolines a worker runs), `worker` (the
//! worker's loop and its messages), `slot` (where outcomes land in the parent, and
//! `AsyncResult`), `core` (dispatch, the collector thread, dead workers), and the faces:
//! `pool`, `imap`, `futures`.

mod core;
mod error;
pub(crate) mod futures;
mod imap;
#[allow(clippy::module_inception)]
mod pool;
mod slot;
#[allow(unsafe_code)] // one transmute of a signed function offset, in `resolve`
mod task;
mod worker;

pub use error::TaskError;
pub use imap::Imap;
pub use pool::{Chunked, Pool, PoolBuilder};
pub use slot::AsyncResult;
pub use task::StarFn;
