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
//! inbox:   TASK id u64 | entry i64 | tag u64 | arguments      STOP
//! results: kind u8 | worker u32 | generation u32 | ...
//!          RESULT id u64 | elapsed-ns u64 | outcomes   READY   RETIRE   INIT_FAILED message
//! ```

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::task;
use crate::cell::RawArray;
use crate::queue::Queue;

pub(crate) const OP_TASK: u8 = 1;
pub(crate) const OP_STOP: u8 = 2;

pub(crate) const WAKE: u8 = 0;
pub(crate) const RESULT: u8 = 1;
pub(crate) const READY: u8 = 2;
pub(crate) const RETIRE: u8 = 3;
pub(crate) const INIT_FAILED: u8 = 4;

/// The size of a task's header in the inbox.
pub(crate) const TASK_HEADER: usize = 25;
/// The size of the header of every results message.
pub(crate) const HEADER: usize = 9;

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

/// The header of a task message.
pub(crate) fn task_header(id: u64, entry: i64, tag: u64) -> [u8; TASK_HEADER] {
    let mut h = [0u8; TASK_HEADER];
    h[0] = OP_TASK;
    h[1..9].copy_from_slice(&id.to_le_bytes());
    h[9..17].copy_from_slice(&entry.to_le_bytes());
    h[17..25].copy_from_slice(&tag.to_le_bytes());
    h
}

/// The task id of an inbox message, if it is a task.
pub(crate) fn task_id(msg: &[u8]) -> Option<u64> {
    if msg.first() != Some(&OP_TASK) {
        return None;
    }
    u64_at(msg, 1)
}

/// The header of a results message.
pub(crate) fn header(kind: u8, index: u32, generation: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = kind;
    h[1..5].copy_from_slice(&index.to_le_bytes());
    h[5..9].copy_from_slice(&generation.to_le_bytes());
    h
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
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

/// Where a RESULT message's outcomes start.
pub(crate) const OUTCOMES_AT: usize = HEADER + 16;

pub(crate) fn parse_report(bytes: &[u8]) -> Option<(u32, u32, Report)> {
    let kind = *bytes.first()?;
    let index = u32_at(bytes, 1)?;
    let generation = u32_at(bytes, 5)?;
    let report = match kind {
        WAKE => Report::Wake,
        RESULT => Report::Result {
            id: u64_at(bytes, HEADER)?,
            elapsed_ns: u64_at(bytes, HEADER + 8)?,
        },
        READY => Report::Ready,
        RETIRE => Report::Retire,
        INIT_FAILED => Report::InitFailed(String::from_utf8_lossy(&bytes[HEADER..]).into_owned()),
        _ => return None,
    };
    Some((index, generation, report))
}

/// The function a worker process runs: the initializer, then tasks until told to stop, until
/// its inbox or the results queue fails, or until it has run `maxtasks` tasks.
pub(crate) fn worker_main(args: WorkerArgs) {
    let key = crate::process::child::key();
    let say = |kind: u8, rest: &[u8]| {
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
        if args.inbox.get_bytes_into(&mut inbox).is_err() || inbox.first() != Some(&OP_TASK) {
            return; // STOP, or the pool is gone
        }
        let (Some(id), Some(entry), Some(tag)) =
            (u64_at(&inbox, 1), u64_at(&inbox, 9), u64_at(&inbox, 17))
        else {
            return;
        };
        out.clear();
        out.extend_from_slice(&header(RESULT, args.index, args.generation));
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        // `id` was read from shared memory: wrap rather than overflow on a hostile value.
        let _ = args.started.set(args.index as usize, id.wrapping_add(1));
        let start = Instant::now();
        match task::resolve(entry as i64, tag, &key) {
            Some(run) => run(&inbox[TASK_HEADER..], &mut out),
            None => task::push_refusal(&mut out),
        }
        let elapsed = start.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        out[HEADER + 8..OUTCOMES_AT].copy_from_slice(&elapsed.to_le_bytes());
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
