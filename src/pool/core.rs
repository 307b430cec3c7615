//! The parent side of a pool: the task table, dispatch to workers, and the collector thread
//! that delivers results, notices dead workers and replaces them.
//!
//! Dispatch: the parent deals tasks from one FIFO to the workers' inboxes, keeping at most a
//! few in each inbox. How many depends on how long tasks take (measured by the workers): about
//! 2 ms of work, between 1 and 64 tasks. So a worker never waits for the parent between short
//! tasks, and long tasks are not queued behind each other on one worker while another is idle.
//!
//! Everything that can wake a waiter or run a user callback (delivering an outcome to its
//! [`Sink`]) happens after the state lock is released, so a callback may submit more tasks.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::dispatch::{self, Load};
use super::error::TaskError;
use super::slot::{ChunkOutcome, Slot};
use super::task;
use super::worker::{self, WorkerArgs};
use crate::cell::RawArray;
use crate::error::{Error, Result};
use crate::process::Process;
use crate::process::entry::{self, Key};
use crate::queue::Queue;
use crate::shm::by_name::SentOut;

/// How often the collector checks that workers are alive, at the latest.
pub(super) const TICK: Duration = Duration::from_millis(20);
/// Workers that died before they were ready, in a row, after which the pool gives up.
pub(super) const EARLY_DEATHS: u32 = 3;

/// How a pool is set up.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) processes: usize,
    /// The initializer's entry offset and encoded argument.
    pub(crate) initializer: Option<(i64, Vec<u8>)>,
    pub(crate) maxtasks: Option<u64>,
    /// An executor: the death of a worker breaks it (Python's `BrokenProcessPool`).
    pub(crate) break_on_death: bool,
    /// The libtest test the workers must run (the creating thread's), if inside a test.
    pub(crate) test: Option<String>,
    pub(crate) worker_name: &'static str,
}

/// Where a task's outcome goes.
pub(crate) enum Sink {
    /// Chunk `.1` of a slot.
    Slot(Arc<Slot>, usize),
    /// Chunk `.1` of an `imap`.
    Stream(mpsc::Sender<(usize, ChunkOutcome)>, usize),
}

impl Sink {
    /// The task will not run: a slot becomes cancelled, a stream gets the error.
    pub(super) fn cancel(self) {
        match self {
            // A slot with other chunks already running cannot be cancelled as a whole: this
            // chunk still gets its outcome, so no one waits for it.
            Sink::Slot(slot, i) if !slot.cancel() => slot.complete(i, Err(TaskError::Cancelled)),
            Sink::Slot(..) => {}
            stream => stream.deliver(Err(TaskError::Cancelled)),
        }
    }

    pub(super) fn deliver(self, outcome: ChunkOutcome) {
        match self {
            Sink::Slot(slot, i) => slot.complete(i, outcome),
            Sink::Stream(tx, i) => {
                let _ = tx.send((i, outcome));
            }
        }
    }
}

pub(super) type Deliveries = Vec<(Sink, ChunkOutcome)>;

pub(super) fn deliver(deliveries: Deliveries) {
    for (sink, outcome) in deliveries {
        sink.deliver(outcome);
    }
}

pub(super) struct Task {
    /// The hand-overs of handles among its arguments: taken back if no worker gets it.
    pub(super) sent: SentOut,
    pub(super) entry: i64,
    pub(super) tag: u64,
    pub(super) args: Vec<u8>,
    pub(super) sink: Sink,
}

pub(super) struct Worker {
    pub(super) process: Option<Process<()>>,
    pub(super) pid: u32,
    pub(super) inbox: Option<Queue<Vec<u8>>>,
    pub(super) generation: u32,
    /// Tasks sent to the inbox and not answered, oldest first.
    pub(super) sent: VecDeque<u64>,
    /// Tasks it may still be sent (maxtasksperchild).
    pub(super) quota: Option<u64>,
    pub(super) ready: bool,
    /// When the task at the head of `sent` started, about (sent, or the previous answered).
    pub(super) busy_since: Instant,
}

impl Worker {
    /// What dispatch needs to know of it.
    fn load(&self, now: Instant) -> Load {
        Load {
            open: self.inbox.is_some(),
            queued: self.sent.len(),
            quota: self.quota,
            busy_for: now.saturating_duration_since(self.busy_since),
        }
    }

    /// Records task `id` as sent to it.
    fn took(&mut self, id: u64, now: Instant) {
        if self.sent.is_empty() {
            self.busy_since = now;
        }
        self.sent.push_back(id);
        if let Some(q) = &mut self.quota {
            *q -= 1;
        }
    }

    /// A worker slot with no process yet.
    fn idle() -> Worker {
        Worker {
            process: None,
            pid: 0,
            inbox: None,
            generation: 0,
            sent: VecDeque::new(),
            quota: None,
            ready: false,
            busy_since: Instant::now(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Running,
    /// No new tasks; with `stop_when_idle`, workers are stopped once the last task is done.
    Closed,
    /// Workers were told to stop; the collector ends when they have.
    Stopping,
    Terminated,
}

pub(super) struct State {
    pub(super) mode: Mode,
    pub(super) stop_when_idle: bool,
    pub(super) next_id: u64,
    pub(super) pending: VecDeque<u64>,
    pub(super) tasks: HashMap<u64, Task>,
    pub(super) workers: Vec<Worker>,
    pub(super) avg_ns: Option<f64>,
    /// Every task fails with this (a failed initializer, a broken executor).
    pub(super) failure: Option<TaskError>,
    pub(super) early_deaths: u32,
    pub(super) deal_from: usize,
}

/// A pool's shared parent-side state.
pub(crate) struct Core {
    pub(super) state: Mutex<State>,
    /// Notified when the task table empties or the mode changes.
    pub(super) idle: Condvar,
    pub(super) results: Queue<Vec<u8>>,
    pub(super) started: RawArray<u64>,
    pub(super) config: Config,
    pub(super) key: Key,
}

impl Core {
    /// Starts the collector thread, which starts the workers; returns once they all run.
    pub(crate) fn start(config: Config) -> Result<(Arc<Core>, JoinHandle<()>)> {
        if config.processes == 0 {
            return Err(Error::InvalidArgument {
                what: "a pool needs at least one process".into(),
            });
        }
        let key = entry::new_key().map_err(|e| Error::io("getrandom", e))?;
        let core = Arc::new(Core {
            state: Mutex::new(State {
                mode: Mode::Running,
                stop_when_idle: false,
                next_id: 0,
                pending: VecDeque::new(),
                tasks: HashMap::new(),
                workers: (0..config.processes).map(|_| Worker::idle()).collect(),
                avg_ns: None,
                failure: None,
                early_deaths: 0,
                deal_from: 0,
            }),
            idle: Condvar::new(),
            results: Queue::new(0)?,
            started: RawArray::new(config.processes)?,
            config,
            key,
        });
        let (tx, rx) = mpsc::channel();
        let collector = core.clone();
        // Workers are started by this thread, which lives as long as the pool: they are tied to
        // it with PR_SET_PDEATHSIG, which fires when the *thread* that started them ends.
        let handle = std::thread::Builder::new()
            .name("shmkit-pool".into())
            .spawn(move || {
                let started = (0..collector.config.processes).try_for_each(|i| collector.spawn(i));
                let ok = started.is_ok();
                let _ = tx.send(started);
                if !ok {
                    collector.terminate();
                }
                let run = std::panic::AssertUnwindSafe(|| collector.collect());
                if std::panic::catch_unwind(run).is_err() {
                    // A bug, not a user error (callbacks are guarded): fail every task rather
                    // than leave its waiters hanging.
                    let mut deliveries = Vec::new();
                    let why = TaskError::Pool("the pool's collector thread panicked".into());
                    collector.shut_down(why, &mut deliveries);
                    deliver(deliveries);
                    collector.reap();
                }
            })
            .map_err(|e| Error::io("spawn the pool's collector thread", e))?;
        match rx.recv() {
            Ok(Ok(())) => Ok((core, handle)),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => {
                let _ = handle.join();
                Err(Error::InvalidArgument {
                    what: "the pool's collector thread panicked".into(),
                })
            }
        }
    }

    pub(crate) fn processes(&self) -> usize {
        self.config.processes
    }

    /// Signs an entry offset with this pool's secret.
    pub(crate) fn sign(&self, entry: i64) -> u64 {
        task::sign(entry, &self.key)
    }

    /// Queues a task; its outcome goes to `sink`. Returns its id, or `None` if the pool
    /// refused it (the sink has its error already).
    pub(crate) fn submit(
        &self,
        entry: i64,
        (args, sent): (Vec<u8>, SentOut),
        sink: Sink,
    ) -> Option<u64> {
        let mut deliveries = Vec::new();
        let mut st = self.state.lock();
        if let Some(refusal) = st.refusal() {
            drop(st);
            sent.abandon();
            sink.deliver(Err(refusal));
            return None;
        }
        let id = st.next_id;
        st.next_id += 1;
        let tag = self.sign(entry);
        st.tasks.insert(
            id,
            Task {
                sent,
                entry,
                tag,
                args,
                sink,
            },
        );
        st.pending.push_back(id);
        self.pump(&mut st, &mut deliveries);
        drop(st);
        deliver(deliveries);
        Some(id)
    }

    /// Removes a task that no worker has been sent; whether it was there.
    pub(crate) fn withdraw(&self, id: u64) -> bool {
        let mut st = self.state.lock();
        let Some(pos) = st.pending.iter().position(|&t| t == id) else {
            return false;
        };
        st.pending.remove(pos);
        if let Some(task) = st.tasks.remove(&id) {
            task.sent.abandon();
        }
        if st.tasks.is_empty() {
            self.idle.notify_all();
        }
        true
    }

    /// Cancels every task no worker has been sent.
    pub(crate) fn cancel_pending(&self) {
        let sinks: Vec<Sink> = {
            let mut st = self.state.lock();
            let pending = std::mem::take(&mut st.pending);
            let sinks = pending
                .into_iter()
                .filter_map(|id| {
                    st.tasks.remove(&id).map(|t| {
                        t.sent.abandon();
                        t.sink
                    })
                })
                .collect();
            if st.tasks.is_empty() {
                self.idle.notify_all();
            }
            sinks
        };
        for sink in sinks {
            sink.cancel();
        }
    }

    /// Sends pending tasks to workers by the policy of [`dispatch`]; with nothing pending,
    /// lets idle workers take back tasks waiting behind a busy one.
    pub(super) fn pump(&self, st: &mut State, deliveries: &mut Deliveries) {
        let now = Instant::now();
        let State {
            pending,
            tasks,
            workers,
            deal_from,
            avg_ns,
            ..
        } = st;
        if !pending.is_empty() {
            let mut loads: Vec<Load> = workers.iter().map(|w| w.load(now)).collect();
            let plan = dispatch::deal(
                &mut loads,
                pending.len(),
                dispatch::prefetch_limit(*avg_ns),
                deal_from,
            );
            for w in plan {
                // The next task still in the table: a withdrawn one is skipped here, so the
                // queue is never scanned as a whole.
                let Some(id) =
                    std::iter::from_fn(|| pending.pop_front()).find(|id| tasks.contains_key(id))
                else {
                    break;
                };
                let (Some(task), Some(inbox)) = (tasks.get(&id), &workers[w].inbox) else {
                    continue;
                };
                let header = worker::task_header(id, task.entry, task.tag);
                match inbox.put_bytes2(&header, &task.args) {
                    Ok(()) => {
                        workers[w].took(id, now);
                        if let Sink::Slot(slot, _) = &task.sink {
                            slot.set_running();
                        }
                    }
                    Err(e) => {
                        if let Some(task) = tasks.remove(&id) {
                            let why = format!("could not send the task to a worker: {e}");
                            deliveries.push((task.sink, Err(TaskError::Pool(why))));
                        }
                    }
                }
            }
        }
        if pending.is_empty() {
            Self::steal(workers, pending, now);
        }
    }

    /// Moves tasks that wait behind a busy worker's current task to idle workers
    /// ([`dispatch::steal`]): a task taken back from the busy worker's inbox has not started
    /// (the inbox hands each item to one taker), so it can run elsewhere at once.
    fn steal(workers: &mut [Worker], pending: &mut VecDeque<u64>, now: Instant) {
        let mut buf = Vec::new();
        loop {
            let loads: Vec<Load> = workers.iter().map(|w| w.load(now)).collect();
            let Some((idle, donor)) = dispatch::steal(&loads) else {
                return;
            };
            let Some(from) = &workers[donor].inbox else {
                return;
            };
            if from
                .get_bytes_timeout_into(&mut buf, Duration::ZERO)
                .is_err()
            {
                return; // the busy worker has taken them all already
            }
            let Some(id) = worker::task_id(&buf) else {
                let _ = from.put_bytes(&buf); // not a task (STOP): give it back
                return;
            };
            let w = &mut workers[donor];
            w.sent.retain(|&t| t != id);
            if let Some(q) = &mut w.quota {
                *q += 1;
            }
            let sent = workers[idle]
                .inbox
                .as_ref()
                .is_some_and(|to| to.put_bytes(&buf).is_ok());
            if !sent {
                pending.push_front(id); // dealt again on the next pump
                return;
            }
            workers[idle].took(id, now);
        }
    }

    /// Starts worker `index` (again).
    pub(super) fn spawn(&self, index: usize) -> Result<()> {
        let generation = self.state.lock().workers[index].generation + 1;
        let inbox = Queue::<Vec<u8>>::new(0)?;
        self.started.set(index, 0)?;
        let args = WorkerArgs {
            index: index as u32,
            generation,
            inbox: inbox.clone(),
            results: self.results.clone(),
            started: self.started.clone(),
            initializer: self
                .config
                .initializer
                .as_ref()
                .map(|(entry, arg)| (*entry, self.sign(*entry), arg.clone())),
            maxtasks: self.config.maxtasks,
        };
        let process = Process::builder()
            .name(format!("{}-{}", self.config.worker_name, index + 1))
            .daemon()
            .test_filter(self.config.test.clone())
            .key(self.key)
            .start(worker::worker_main, args)?;
        let mut deliveries = Vec::new();
        let mut st = self.state.lock();
        if st.mode == Mode::Terminated {
            let _ = process.kill();
        }
        st.workers[index] = Worker {
            pid: process.pid(),
            process: Some(process),
            inbox: Some(inbox),
            generation,
            sent: VecDeque::new(),
            quota: self.config.maxtasks,
            ready: false,
            busy_since: Instant::now(),
        };
        self.pump(&mut st, &mut deliveries);
        drop(st);
        deliver(deliveries);
        Ok(())
    }

    pub(super) fn wake_collector(&self) {
        let _ = self.results.put_bytes(&worker::header(worker::WAKE, 0, 0));
    }

    /// Python's `terminate`: kills the workers at once; unfinished tasks fail with
    /// [`TaskError::Terminated`].
    pub(crate) fn terminate(&self) {
        let mut deliveries = Vec::new();
        {
            let mut st = self.state.lock();
            if st.mode != Mode::Terminated {
                self.kill_all(&mut st, TaskError::Terminated, &mut deliveries);
            }
        }
        deliver(deliveries);
    }

    /// No new tasks; with `stop`, the workers stop once the last task is done.
    pub(crate) fn close(&self, stop: bool) {
        let mut st = self.state.lock();
        if st.mode == Mode::Running {
            st.mode = Mode::Closed;
        }
        st.stop_when_idle |= stop;
        drop(st);
        self.idle.notify_all();
        self.wake_collector();
    }

    /// Whether new tasks are accepted.
    pub(crate) fn accepting(&self) -> bool {
        self.state.lock().refusal().is_none()
    }

    /// Waits until no task is left, at most until `deadline`; whether none is.
    pub(crate) fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        let mut st = self.state.lock();
        while !st.tasks.is_empty() {
            match deadline {
                None => self.idle.wait(&mut st),
                Some(d) => {
                    if self.idle.wait_until(&mut st, d).timed_out() {
                        return st.tasks.is_empty();
                    }
                }
            }
        }
        true
    }

    /// The pids of the workers now running (for tests and `maxtasksperchild`).
    pub(crate) fn pids(&self) -> Vec<u32> {
        let st = self.state.lock();
        st.workers
            .iter()
            .filter(|w| w.process.is_some())
            .map(|w| w.pid)
            .collect()
    }
}

impl State {
    /// Why a new task would be refused.
    pub(super) fn refusal(&self) -> Option<TaskError> {
        if let Some(f) = &self.failure {
            return Some(f.clone());
        }
        match self.mode {
            Mode::Running => None,
            Mode::Terminated => Some(TaskError::Terminated),
            Mode::Closed | Mode::Stopping => Some(TaskError::Closed),
        }
    }
}
