//! A pool worker: the loop a worker process runs, and the messages it exchanges with the parent.
//!
//! Each worker has an inbox queue of its own; the parent sends it tasks there and keeps a record
//! of what it sent, so when a worker dies the parent knows exactly which tasks it held. Before
//! running a task the worker writes the task's id into its word of a shared `RawArray`; after a
//! death, the parent reads that word to tell the task that was running (it fails, with
//! [`TaskError::WorkerDied`](super::TaskError::WorkerDied)) from the ones still waiting in the
//! inbox (sent again to another worker). All workers answer on one results queue.
//!
//! ```text
//! inbox:   TaskHeader { op, id, entry, tag } | arguments    (op TASK or STOP)
//! results: ReportHeader { kind, worker, generation } | ...
//!          RESULT: ResultHeader { id, elapsed_ns } | outcomes   READY   RETIRE   INIT_FAILED message
//! ```
//!
//! The headers are `Pod` structs, like the queue's frames, read with a length check
//! (`bytemuck::try_pod_read_unaligned`): a short or garbage message parses as `None`.

use std::time::Instant;

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use super::task;
use crate::cell::RawArray;
use crate::queue::Queue;
use crate::shm::by_name;

pub(crate) const OP_TASK: u32 = 1;
pub(crate) const OP_STOP: u32 = 2;

pub(crate) const WAKE: u32 = 0;
pub(crate) const RESULT: u32 = 1;
pub(crate) const READY: u32 = 2;
pub(crate) const RETIRE: u32 = 3;
pub(crate) const INIT_FAILED: u32 = 4;

/// The header of an inbox message; the task's encoded arguments follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct TaskHeader {
    pub(crate) op: u32,
    _reserved: u32,
    pub(crate) id: u64,
    /// The task function's offset ([`task::resolve`]) and its signature.
    pub(crate) entry: i64,
    pub(crate) tag: u64,
}

/// The header of every results message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct ReportHeader {
    pub(crate) kind: u32,
    /// The worker's index in the pool, and which start of that worker sent it.
    pub(crate) index: u32,
    pub(crate) generation: u32,
    _reserved: u32,
}

/// What follows the [`ReportHeader`] of a RESULT message; the outcomes follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct ResultHeader {
    pub(crate) id: u64,
    pub(crate) elapsed_ns: u64,
}

/// The size of a task's header in the inbox.
pub(crate) const TASK_HEADER: usize = std::mem::size_of::<TaskHeader>();
/// The size of the header of every results message.
pub(crate) const HEADER: usize = std::mem::size_of::<ReportHeader>();
/// Where a RESULT message's outcomes start.
pub(crate) const OUTCOMES_AT: usize = HEADER + std::mem::size_of::<ResultHeader>();

/// What a worker is started with.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    pub(crate) index: u32,
    pub(crate) generation: u32,
    pub(crate) inbox: Queue<Vec<u8>>,
    pub(crate) results: Queue<Vec<u8>>,
    pub(crate) started: RawArray<u64>,
    /// The initializer: its `Process` entry offset, its signature, its encoded argument.
    pub(crate) initializer: Option<(i64, u64, Vec<u8>)>,
    pub(crate) maxtasks: Option<u64>,
}

/// The bytes of a task message's header.
pub(crate) fn task_header(id: u64, entry: i64, tag: u64) -> [u8; TASK_HEADER] {
    bytemuck::cast(TaskHeader {
        op: OP_TASK,
        _reserved: 0,
        id,
        entry,
        tag,
    })
}

/// The bytes of a STOP message.
pub(crate) fn stop_message() -> [u8; TASK_HEADER] {
    bytemuck::cast(TaskHeader {
        op: OP_STOP,
        _reserved: 0,
        id: 0,
        entry: 0,
        tag: 0,
    })
}

/// The header of an inbox message, if it is a task.
pub(crate) fn parse_task(msg: &[u8]) -> Option<TaskHeader> {
    let h: TaskHeader = bytemuck::try_pod_read_unaligned(msg.get(..TASK_HEADER)?).ok()?;
    (h.op == OP_TASK).then_some(h)
}

/// The task id of an inbox message, if it is a task.
pub(crate) fn task_id(msg: &[u8]) -> Option<u64> {
    parse_task(msg).map(|h| h.id)
}

/// The bytes of the header of a results message.
pub(crate) fn header(kind: u32, index: u32, generation: u32) -> [u8; HEADER] {
    bytemuck::cast(ReportHeader {
        kind,
        index,
        generation,
        _reserved: 0,
    })
}

/// A results message, parsed (`None` for one that is malformed).
pub(crate) enum Report {
    Wake,
    /// The outcomes follow, from [`OUTCOMES_AT`].
    Result {
        id: u64,
        elapsed_ns: u64,
    },
    Ready,
    Retire,
    InitFailed(String),
}

pub(crate) fn parse_report(bytes: &[u8]) -> Option<(u32, u32, Report)> {
    let h: ReportHeader = bytemuck::try_pod_read_unaligned(bytes.get(..HEADER)?).ok()?;
    let report = match h.kind {
        WAKE => Report::Wake,
        RESULT => {
            let r: ResultHeader =
                bytemuck::try_pod_read_unaligned(bytes.get(HEADER..OUTCOMES_AT)?).ok()?;
            Report::Result {
                id: r.id,
                elapsed_ns: r.elapsed_ns,
            }
        }
        READY => Report::Ready,
        RETIRE => Report::Retire,
        INIT_FAILED => Report::InitFailed(String::from_utf8_lossy(&bytes[HEADER..]).into_owned()),
        _ => return None,
    };
    Some((h.index, h.generation, report))
}

/// The function a worker process runs: the initializer, then tasks until told to stop, until
/// its inbox or the results queue fails, or until it has run `maxtasks` tasks.
pub(crate) fn worker_main(args: WorkerArgs) {
    let key = crate::process::child::key();
    let say = |kind: u32, rest: &[u8]| {
        let mut msg = header(kind, args.index, args.generation).to_vec();
        msg.extend_from_slice(rest);
        args.results.put_bytes(&msg).is_ok()
    };
    if let Some((entry, tag, arg)) = &args.initializer {
        let mut out = Vec::new();
        let failure = match task::resolve(*entry, *tag, &key) {
            Some(run) => {
                run(arg, &mut out);
                task::first_failure(&out)
            }
            None => Some(task::REFUSED.to_owned()),
        };
        if let Some(why) = failure {
            say(INIT_FAILED, why.as_bytes());
            return;
        }
    }
    if !say(READY, &[]) {
        return;
    }
    let mut inbox = Vec::new();
    let mut out = Vec::new();
    let mut done = 0u64;
    loop {
        if args.inbox.get_bytes_into(&mut inbox).is_err() {
            return; // the pool is gone
        }
        let Some(TaskHeader { id, entry, tag, .. }) = parse_task(&inbox) else {
            return; // STOP
        };
        out.clear();
        out.extend_from_slice(&header(RESULT, args.index, args.generation));
        out.extend_from_slice(&[0; OUTCOMES_AT - HEADER]); // the ResultHeader, filled in below
        // `id` was read from shared memory: wrap rather than overflow on a hostile value.
        let _ = args.started.set(args.index as usize, id.wrapping_add(1));
        let start = Instant::now();
        // Handles among the results are handed over to the parent (see `shm::by_name`).
        let ((), _sent) = by_name::capture(|| {
            match task::resolve(entry, tag, &key) {
                Some(run) => run(&inbox[TASK_HEADER..], &mut out),
                None => task::push_refusal(&mut out),
            }
            by_name::send_noted();
        });
        let elapsed_ns = start.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        out[HEADER..OUTCOMES_AT]
            .copy_from_slice(bytemuck::bytes_of(&ResultHeader { id, elapsed_ns }));
        if args.results.put_bytes(&out).is_err() {
            return;
        }
        done += 1;
        if args.maxtasks.is_some_and(|m| done >= m) {
            say(RETIRE, &[]);
            return;
        }
    }
}
