//! Pools of worker processes: [`Pool`] (Python's `multiprocessing.Pool`) and, in
//! [`futures`](crate::futures), an executor in the style of `concurrent.futures`.
//!
//! Layers: `task` (the wire format of a task and the trampolines a worker runs), `worker` (the
//! worker's loop and its messages), `slot` (where outcomes land in the parent, and
//! `AsyncResult`), `core` (dispatch, the collector thread, dead workers), and the faces:
//! `pool`, `imap`, `futures`.

mod chunked;
mod collector;
mod core;
mod dispatch;
pub(crate) mod error;
pub(crate) mod futures;
mod imap;
#[allow(clippy::module_inception)]
mod pool;
pub(crate) mod slot;
pub(crate) mod task;
mod worker;

pub use chunked::Chunked;
pub use error::{PoolJoinError, ResultTimeoutError, TaskError, TryResultError};
pub use imap::Imap;
pub use pool::{Pool, PoolBuilder};
pub use slot::AsyncResult;
pub use task::StarFn;

/// The fuzz harness for the messages workers and the parent exchange (see
/// [`crate::fuzzing::pool_messages`]): whatever the bytes, parsing and decoding return values
/// or errors, never panic.
pub(crate) fn fuzz_messages(data: &[u8]) {
    let Some((&ctrl, rest)) = data.split_first() else {
        return;
    };
    // The parent's side: a results message, then its outcomes as a chunk of `ctrl` items.
    if let Some((_, _, worker::Report::Result { .. })) = worker::parse_report(rest) {
        let outcomes = rest.get(worker::OUTCOMES_AT..).unwrap_or_default();
        let mut n = 0;
        task::decode_chunk::<(u32, String)>(outcomes, usize::from(ctrl), |_| n += 1);
        assert_eq!(
            n,
            usize::from(ctrl),
            "one result per item, whatever the bytes"
        );
    }
    let _ = task::first_failure(rest);
    let _ = task::first_failure_of_args(rest);
    let _ = worker::task_id(rest);
    // The worker's side: a chunk of hostile arguments through a real trampoline.
    fn echo(x: (u32, String)) -> (String, u32) {
        (x.1, x.0)
    }
    let key = [0x5eed, 0x5eed];
    let entry = task::map_entry(echo);
    if let Some(run) = task::resolve(entry, task::sign(entry, &key), &key) {
        let mut out = Vec::new();
        run(rest, &mut out);
        let items = task::Items(rest).count();
        assert_eq!(
            task::Items(&out).count(),
            items,
            "one outcome per argument frame"
        );
    }
}
