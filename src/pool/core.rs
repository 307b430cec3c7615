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

use super::error::TaskError;
use super::slot::{Chunk, ChunkOutcome, Slot};
use super::task;
use super::worker::{self, Report, WorkerArgs};
use crate::cell::RawArray;
use crate::error::{Error, Result};
use crate::process::Process;
use crate::process::entry::{self, Key};
use crate::queue::{GetTimeoutError, Queue};

/// How often the collector checks that workers are alive, at the latest.
const TICK: Duration = Duration::from_millis(20);
/// The most tasks waiting in one worker's inbox.
const MAX_PREFETCH: usize = 64;
/// The work a worker's inbox should hold, in nanoseconds of measured task time.
const PREFETCH_NS: f64 = 2e6;
/// Workers that died before they were ready, in a row, after which the pool gives up.
const EARLY_DEATHS: u32 = 3;

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
    fn cancel(self) {
        match self {
            // A slot with other chunks already running cannot be cancelled as a whole: this
            // chunk still gets its outcome, so no one waits for it.
            Sink::Slot(slot, i) if !slot.cancel() => slot.complete(i, Err(TaskError::Cancelled)),
            Sink::Slot(..) => {}
            stream => stream.deliver(Err(TaskError::Cancelled)),
        }
    }

    fn deliver(self, outcome: ChunkOutcome) {
        match self {
            Sink::Slot(slot, i) => slot.complete(i, outcome),
            Sink::Stream(tx, i) => {
                let _ = tx.send((i, outcome));
            }
        }
    }
}

type Deliveries = Vec<(Sink, ChunkOutcome)>;

fn deliver(deliveries: Deliveries) {
    for (sink, outcome) in deliveries {
        sink.deliver(outcome);
    }
}

struct Task {
    entry: i64,
    tag: u64,
    args: Vec<u8>,
    sink: Sink,
}

struct Worker {
    process: Option<Process<()>>,
    pid: u32,
    inbox: Option<Queue<Vec<u8>>>,
    generation: u32,
    /// Tasks sent to the inbox and not answered, oldest first.
    sent: VecDeque<u64>,
    /// Tasks it may still be sent (maxtasksperchild).
    quota: Option<u64>,
    ready: bool,
    /// When the task at the head of `sent` started, about (sent, or the previous answered).
    busy_since: Instant,
}

impl Worker {
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
enum Mode {
    Running,
    /// No new tasks; with `stop_when_idle`, workers are stopped once the last task is done.
    Closed,
    /// Workers were told to stop; the collector ends when they have.
    Stopping,
    Terminated,
}

struct State {
    mode: Mode,
    stop_when_idle: bool,
    next_id: u64,
    pending: VecDeque<u64>,
    tasks: HashMap<u64, Task>,
    workers: Vec<Worker>,
    avg_ns: Option<f64>,
    /// Every task fails with this (a failed initializer, a broken executor).
    failure: Option<TaskError>,
    early_deaths: u32,
    deal_from: usize,
}

/// A pool's shared parent-side state.
pub(crate) struct Core {
    state: Mutex<State>,
    /// Notified when the task table empties or the mode changes.
    idle: Condvar,
    results: Queue<Vec<u8>>,
    started: RawArray<u64>,
    config: Config,
    key: Key,
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
    pub(crate) fn submit(&self, entry: i64, args: Vec<u8>, sink: Sink) -> Option<u64> {
        let mut deliveries = Vec::new();
        let mut st = self.state.lock();
        if let Some(refusal) = st.refusal() {
            drop(st);
            sink.deliver(Err(refusal));
            return None;
        }
        let id = st.next_id;
        st.next_id += 1;
        let tag = self.sign(entry);
        st.tasks.insert(
            id,
            Task {
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
        st.tasks.remove(&id);
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
                .filter_map(|id| st.tasks.remove(&id).map(|t| t.sink))
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

    /// Sends pending tasks to workers: first one to each idle worker, then, while tasks are
    /// short, more to each inbox in turn, up to the prefetch limit. A worker whose current task
    /// has run longer than the prefetch window gets no more queued behind it.
    fn pump(&self, st: &mut State, deliveries: &mut Deliveries) {
        let now = Instant::now();
        if st.pending.is_empty() {
            Self::steal(&mut st.workers, &mut st.pending, now);
            return;
        }
        let limit = st.avg_ns.map_or(1, |ns| {
            ((PREFETCH_NS / ns.max(1.0)) as usize).clamp(1, MAX_PREFETCH)
        });
        let window = Duration::from_nanos(PREFETCH_NS as u64);
        let n = st.workers.len();
        let State {
            pending,
            tasks,
            workers,
            deal_from,
            ..
        } = st;
        for cap in [1, limit] {
            while !pending.is_empty() {
                let mut sent_any = false;
                for k in 0..n {
                    let w = &mut workers[(*deal_from + k) % n];
                    let Some(inbox) = &w.inbox else { continue };
                    let stuck = !w.sent.is_empty() && now.duration_since(w.busy_since) > window;
                    if w.sent.len() >= cap || w.quota == Some(0) || stuck {
                        continue;
                    }
                    let Some(id) = pending.pop_front() else { break };
                    let Some(task) = tasks.get(&id) else { continue };
                    let header = worker::task_header(id, task.entry, task.tag);
                    match inbox.put_bytes2(&header, &task.args) {
                        Ok(()) => {
                            if w.sent.is_empty() {
                                w.busy_since = now;
                            }
                            w.sent.push_back(id);
                            if let Some(q) = &mut w.quota {
                                *q -= 1;
                            }
                            if let Sink::Slot(slot, _) = &task.sink {
                                slot.set_running();
                            }
                            sent_any = true;
                        }
                        Err(e) => {
                            if let Some(task) = tasks.remove(&id) {
                                let why = format!("could not send the task to a worker: {e}");
                                deliveries.push((task.sink, Err(TaskError::Pool(why))));
                            }
                        }
                    }
                }
                if !sent_any {
                    break;
                }
                *deal_from = (*deal_from + 1) % n;
            }
        }
        if pending.is_empty() {
            Self::steal(workers, pending, now);
        }
    }

    /// With nothing pending, moves tasks that wait behind a busy worker's current task to idle
    /// workers: a task taken back from the busy worker's inbox has not started (the inbox hands
    /// each item to one taker), so it can run elsewhere at once.
    fn steal(workers: &mut [Worker], pending: &mut VecDeque<u64>, now: Instant) {
        let mut buf = Vec::new();
        loop {
            let idle = workers
                .iter()
                .position(|w| w.inbox.is_some() && w.sent.is_empty() && w.quota != Some(0));
            let donor = workers
                .iter()
                .enumerate()
                .filter(|(_, w)| w.inbox.is_some() && w.sent.len() >= 2)
                .max_by_key(|(_, w)| w.sent.len())
                .map(|(i, _)| i);
            let (Some(idle), Some(donor)) = (idle, donor) else {
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
            let w = &mut workers[idle];
            let sent = w
                .inbox
                .as_ref()
                .is_some_and(|to| to.put_bytes(&buf).is_ok());
            if !sent {
                pending.push_front(id); // dealt again on the next pump
                return;
            }
            w.sent.push_back(id);
            w.busy_since = now;
            if let Some(q) = &mut w.quota {
                *q -= 1;
            }
        }
    }

    /// Starts worker `index` (again).
    fn spawn(&self, index: usize) -> Result<()> {
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

    /// The collector thread: delivers results, checks on workers, replaces dead ones.
    fn collect(&self) {
        let mut buf = Vec::new();
        let mut last_check = Instant::now();
        loop {
            let mut deliveries = Vec::new();
            let mut check = false;
            match self.results.get_bytes_timeout_into(&mut buf, TICK) {
                Ok(_) => {
                    check |= self.handle(&mut buf, &mut deliveries);
                    // Take what else is there, in a bounded batch, before delivering.
                    for _ in 0..256 {
                        if self
                            .results
                            .get_bytes_timeout_into(&mut buf, Duration::ZERO)
                            .is_err()
                        {
                            break;
                        }
                        check |= self.handle(&mut buf, &mut deliveries);
                    }
                }
                Err(GetTimeoutError::Timeout) => {}
                Err(e) => {
                    let why = TaskError::Pool(format!("the results queue failed: {e}"));
                    self.shut_down(why, &mut deliveries);
                }
            }
            deliver(deliveries);
            if check || last_check.elapsed() >= TICK {
                last_check = Instant::now();
                self.check_workers(&mut buf);
            }
            if self.stop_if_idle() {
                break;
            }
        }
        self.reap();
    }

    /// Handles one message from a worker; whether workers should be checked now.
    fn handle(&self, msg: &mut Vec<u8>, deliveries: &mut Deliveries) -> bool {
        let Some((index, generation, report)) = worker::parse_report(msg) else {
            return false;
        };
        let mut st = self.state.lock();
        let index = index as usize;
        let current = st
            .workers
            .get(index)
            .is_some_and(|w| w.generation == generation);
        match report {
            Report::Wake => {}
            Report::Result { id, elapsed_ns } => {
                if let Some(w) = st.workers.get_mut(index) {
                    if let Some(pos) = w.sent.iter().position(|&t| t == id) {
                        w.sent.remove(pos);
                        w.busy_since = Instant::now();
                    }
                }
                if let Some(task) = st.tasks.remove(&id) {
                    // The message itself becomes the outcome: no copy.
                    let chunk = Chunk::new(std::mem::take(msg), worker::OUTCOMES_AT);
                    deliveries.push((task.sink, Ok(chunk)));
                }
                let ns = elapsed_ns as f64;
                st.avg_ns = Some(st.avg_ns.map_or(ns, |avg| avg * 0.8 + ns * 0.2));
                self.pump(&mut st, deliveries);
                if st.tasks.is_empty() {
                    self.idle.notify_all();
                }
            }
            Report::Ready => {
                if current {
                    st.workers[index].ready = true;
                    st.early_deaths = 0;
                }
            }
            Report::Retire => return true,
            Report::InitFailed(why) => {
                drop(st);
                self.shut_down(TaskError::Initializer(why), deliveries);
                return false;
            }
        }
        false
    }

    /// Finds dead workers, settles their tasks, and starts replacements.
    fn check_workers(&self, buf: &mut Vec<u8>) {
        let dead: Vec<usize> = {
            let mut st = self.state.lock();
            st.workers
                .iter_mut()
                .enumerate()
                .filter_map(|(i, w)| {
                    w.process
                        .as_mut()
                        .is_some_and(|p| !p.is_alive())
                        .then_some(i)
                })
                .collect()
        };
        if dead.is_empty() {
            return;
        }
        // Everything a dead worker put before it died is in the results queue: handle it first,
        // so only tasks it never answered are left in its record.
        let mut deliveries = Vec::new();
        while self
            .results
            .get_bytes_timeout_into(buf, Duration::ZERO)
            .is_ok()
        {
            self.handle(buf, &mut deliveries);
        }
        let mut respawn = Vec::new();
        let mut broken = None;
        {
            let mut st = self.state.lock();
            for &i in &dead {
                let w = &mut st.workers[i];
                let code = w.process.as_mut().and_then(|p| p.exit_code());
                w.process = None;
                w.inbox = None;
                let sent = std::mem::take(&mut w.sent);
                let (pid, ready) = (w.pid, w.ready);
                let retired = w.quota == Some(0) && sent.is_empty() && code == Some(0);
                let status = match code {
                    Some(c) if c < 0 => format!("killed by signal {}", -c),
                    Some(c) => format!("exit code {c}"),
                    None => "unknown status".into(),
                };
                let running = self.started.get(i).unwrap_or(0);
                let mut requeue = Vec::new();
                for (k, id) in sent.into_iter().enumerate() {
                    if k == 0 && running == id + 1 {
                        if let Some(task) = st.tasks.remove(&id) {
                            deliveries.push((task.sink, Err(self.died(pid, &status))));
                        }
                    } else {
                        requeue.push(id);
                    }
                }
                for id in requeue.into_iter().rev() {
                    st.pending.push_front(id);
                }
                if !matches!(st.mode, Mode::Running | Mode::Closed) || retired {
                    if retired {
                        respawn.push(i);
                    }
                    continue;
                }
                if self.config.break_on_death {
                    broken = Some(self.died(pid, &status));
                } else if !ready && self.config.initializer.is_some() {
                    broken = Some(TaskError::Initializer(format!(
                        "a worker (pid {pid}) died in its initializer: {status}"
                    )));
                } else if !ready {
                    st.early_deaths += 1;
                    if st.early_deaths >= EARLY_DEATHS {
                        broken = Some(TaskError::Pool(format!(
                            "{EARLY_DEATHS} workers in a row died before they were ready \
                             (the last, pid {pid}: {status})"
                        )));
                    }
                }
                respawn.push(i);
            }
            if st.tasks.is_empty() {
                self.idle.notify_all();
            }
            self.pump(&mut st, &mut deliveries);
        }
        if let Some(why) = broken {
            self.shut_down(why, &mut deliveries);
            respawn.clear();
        }
        deliver(deliveries);
        for i in respawn {
            if !matches!(self.state.lock().mode, Mode::Running | Mode::Closed) {
                break;
            }
            if let Err(e) = self.spawn(i) {
                let mut deliveries = Vec::new();
                let why = TaskError::Pool(format!("could not start a worker: {e}"));
                self.shut_down(why, &mut deliveries);
                deliver(deliveries);
                break;
            }
        }
    }

    /// The error of the task a worker was running when it died.
    fn died(&self, pid: u32, status: &str) -> TaskError {
        if self.config.break_on_death {
            TaskError::Broken(format!("a worker (pid {pid}) died abruptly: {status}"))
        } else {
            TaskError::WorkerDied {
                pid,
                status: status.to_owned(),
            }
        }
    }

    /// Fails every task with `why`, refuses new ones with it, and kills the workers.
    fn shut_down(&self, why: TaskError, deliveries: &mut Deliveries) {
        let mut st = self.state.lock();
        st.failure.get_or_insert(why.clone());
        self.kill_all(&mut st, why, deliveries);
    }

    fn kill_all(&self, st: &mut State, why: TaskError, deliveries: &mut Deliveries) {
        st.mode = Mode::Terminated;
        st.pending.clear();
        deliveries.extend(st.tasks.drain().map(|(_, t)| (t.sink, Err(why.clone()))));
        for w in &mut st.workers {
            w.sent.clear();
            if let Some(p) = &w.process {
                let _ = p.kill();
            }
        }
        self.idle.notify_all();
        self.wake_collector();
    }

    fn wake_collector(&self) {
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

    /// Tells the workers to stop once the pool is closed and idle; whether the collector
    /// should end now (terminated, or every worker has exited).
    fn stop_if_idle(&self) -> bool {
        let mut st = self.state.lock();
        if st.mode == Mode::Closed && st.stop_when_idle && st.tasks.is_empty() {
            st.mode = Mode::Stopping;
            for w in &st.workers {
                if let Some(inbox) = &w.inbox {
                    let _ = inbox.put_bytes(&[worker::OP_STOP]);
                }
            }
        }
        match st.mode {
            Mode::Terminated => true,
            Mode::Stopping => st.workers.iter().all(|w| w.process.is_none()),
            _ => false,
        }
    }

    /// Waits for the workers that are left (killed ones exit at once).
    fn reap(&self) {
        let workers: Vec<Process<()>> = {
            let mut st = self.state.lock();
            st.workers
                .iter_mut()
                .filter_map(|w| {
                    w.inbox = None;
                    w.process.take()
                })
                .collect()
        };
        for mut p in workers {
            if p.join_timeout(Duration::from_secs(5)).is_err() && p.is_alive() {
                let _ = p.kill();
                let _ = p.join_timeout(Duration::from_secs(5));
            }
        }
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
    fn refusal(&self) -> Option<TaskError> {
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
