//! `RedisPool`: the pool's calls, with workers on any host (see [`Worker`](super::Worker)).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::queue::{RedisOptions, RedisQueue};
use super::task::{self, TaskName};
use super::wire::{self, Job, Reply};
use crate::error::{Error, Result};
use crate::pool::error::{PoolJoinError, TaskError};
use crate::pool::slot::{self, AsyncResult, Chunk, ChunkOutcome, Slot};
use crate::pool::task::push_arg;
use crate::pool::{ResultTimeoutError, StarFn};

/// Where each outstanding task's outcome goes: its submission's slot and its chunk index.
type Pending = HashMap<u64, (Arc<Slot>, usize)>;

struct Shared {
    tasks: RedisQueue<Job>,
    pool: String,
    client: String,
    reply: String,
    done: String,
    pending: Mutex<Pending>,
    /// Signalled whenever `pending` shrinks (for `join`).
    drained: Condvar,
    next_task: AtomicU64,
    stop: AtomicBool,
    closed: AtomicBool,
}

impl Shared {
    /// Removes tasks from the outstanding ones (all of them for `None`) and wakes `join`:
    /// where their outcomes go.
    fn take(&self, tasks: Option<&[u64]>) -> Vec<(Arc<Slot>, usize)> {
        let mut pending = self.pending.lock();
        let taken = match tasks {
            None => pending.drain().map(|(_, v)| v).collect(),
            Some(ids) => ids.iter().filter_map(|t| pending.remove(t)).collect(),
        };
        drop(pending);
        self.drained.notify_all();
        taken
    }

    /// Ends tasks (all outstanding ones for `None`) with `why`.
    fn fail(&self, tasks: Option<&[u64]>, why: &TaskError) {
        for (slot, index) in self.take(tasks) {
            slot.complete(index, Err(why.clone()));
        }
    }
}

/// A pool whose workers run on any host that reaches one Redis: [`Pool`](crate::Pool)'s
/// calls (`map`, `starmap`, `imap`, `apply`, `apply_async` with callbacks, [`AsyncResult`]),
/// for functions marked `#[shmkit::task]`.
///
/// Each call puts its tasks (chunks of arguments) on the pool's stream; any
/// [`Worker`](super::Worker) of the same pool name takes them under a lease and writes each
/// result back once (the first writer wins). A background thread collects the results.
///
/// Semantics, beside the shared-memory pool's:
/// - A function must be a `#[shmkit::task]`: a worker looks it up by name and fingerprint and
///   refuses a task it does not know ([`TaskError::UnknownTask`]); anything else (a closure)
///   fails at the call with the same error.
/// - A worker killed mid-task fails the task with [`TaskError::WorkerDied`] once its lease
///   runs out (30 s by default, the workers' setting), as on one host. With
///   [`retries(n)`](Self::retries) it runs again on another worker, up to `n` more times: at
///   least once, so tasks should be idempotent. A task that kills every worker fails after
///   `n + 1` tries; it never loops.
/// - There are no workers to count or to start here: a map waits until some worker serves it
///   (use the `_timeout` calls of [`AsyncResult`] to bound the wait).
/// - Dropping the pool (or [`terminate`](Self::terminate)) fails what is unfinished with
///   [`TaskError::Terminated`] and removes the pool's reply keys; workers then drop the
///   results of tasks they were running.
///
/// ```no_run
/// #[shmkit::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     shmkit::init(); // with SHMKIT_REDIS_WORKER set, this process serves as a worker instead
///     let pool = shmkit::redis::RedisPool::connect("redis://127.0.0.1/", "default")?;
///     assert_eq!(pool.map(square, 1..=5)?, [1, 4, 9, 16, 25]);
///     Ok(())
/// }
/// ```
pub struct RedisPool {
    shared: Arc<Shared>,
    collector: Option<JoinHandle<()>>,
    retries: u32,
    chunksize: Option<usize>,
}

/// The id of a client: host, pid and a random part, unique among the pool's callers.
fn client_id() -> Result<String> {
    let random = crate::sys::random_u128().map_err(|e| Error::io("getrandom", e))?;
    Ok(format!(
        "{}-{}-{:012x}",
        crate::sys::hostname(),
        crate::sys::current_pid(),
        random as u64 & 0xffff_ffff_ffff
    ))
}

impl RedisPool {
    /// Connects to the Redis at `url` as a caller of the pool named `pool`.
    ///
    /// # Errors
    /// [`Error::Io`] if Redis cannot be reached; [`Error::InvalidArgument`] for a bad URL.
    pub fn connect(url: &str, pool: &str) -> Result<RedisPool> {
        RedisPool::with_options(url, pool, RedisOptions::default())
    }

    /// As [`connect`](Self::connect), with `opts` (the I/O timeout and the size limit of a
    /// task's arguments matter here; leases are the workers' setting).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn with_options(url: &str, pool: &str, opts: RedisOptions) -> Result<RedisPool> {
        let tasks = RedisQueue::<Job>::with_options(url, &wire::tasks_queue(pool), opts)?;
        let client = client_id()?;
        let reply = wire::reply_key(pool, &client);
        let done = wire::done_key(pool, &client);
        // The reply stream exists while this client does: workers write only into it.
        create_reply_stream(&tasks, &reply)?;
        let collector_link = tasks.try_clone()?;
        let shared = Arc::new(Shared {
            tasks,
            pool: pool.to_owned(),
            client,
            reply,
            done,
            pending: Mutex::new(HashMap::new()),
            drained: Condvar::new(),
            next_task: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let for_thread = Arc::clone(&shared);
        let collector = std::thread::Builder::new()
            .name("shmkit-redis-collector".into())
            .spawn(move || collect(&for_thread, &collector_link))
            .map_err(|e| Error::io("spawn the result collector", e))?;
        Ok(RedisPool {
            shared,
            collector: Some(collector),
            retries: 0,
            chunksize: None,
        })
    }

    /// Lets a task whose worker died run again, up to `n` more times, on other workers
    /// (default 0: it fails with [`TaskError::WorkerDied`]).
    #[must_use]
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Map calls send `n` items per task instead of the default (about 1/64 of the items).
    #[must_use]
    pub fn chunksize(mut self, n: usize) -> Self {
        self.chunksize = Some(n.max(1));
        self
    }

    /// This caller's id (its reply keys are `shmkit:pool:<pool>:reply:<id>` and `...:done:<id>`).
    pub fn client_id(&self) -> &str {
        &self.shared.client
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.pool
    }

    /// Tasks submitted and not finished.
    pub fn outstanding(&self) -> usize {
        self.shared.pending.lock().len()
    }

    /// Sends the chunks (each `(args, items)`) as tasks of one submission.
    fn submit(
        &self,
        name: std::result::Result<TaskName, String>,
        chunks: Vec<(Vec<u8>, usize)>,
    ) -> Arc<Slot> {
        let slot = Slot::new(chunks.iter().map(|&(_, n)| n).collect());
        let name = match name {
            Ok(name) if !self.shared.closed.load(Ordering::Relaxed) => name,
            refused => {
                let why = match refused {
                    Err(why) => TaskError::UnknownTask(why),
                    Ok(_) => TaskError::Closed,
                };
                for i in 0..chunks.len() {
                    slot.complete(i, Err(why.clone()));
                }
                return slot;
            }
        };
        // Encoded and checked one by one (a chunk too large fails alone), then sent in one
        // round trip.
        let max = self.shared.tasks.options().max_size;
        let mut sent = Vec::with_capacity(chunks.len());
        let mut encoded = Vec::with_capacity(chunks.len());
        for (index, (args, _)) in chunks.into_iter().enumerate() {
            let task = self.shared.next_task.fetch_add(1, Ordering::Relaxed);
            let job = Job {
                task,
                client: self.shared.client.clone(),
                name: name.name.to_owned(),
                star: name.star,
                fingerprint: name.fingerprint,
                retries: self.retries,
                args,
            };
            match postcard::to_allocvec(&job) {
                Ok(bytes) if bytes.len() <= max => {
                    sent.push((task, index));
                    encoded.push(bytes);
                }
                Ok(bytes) => slot.complete(
                    index,
                    Err(TaskError::Serialize(format!(
                        "a task of {} bytes is larger than the limit of {max} bytes \
                         (RedisOptions::max_size; a smaller chunksize may help)",
                        bytes.len()
                    ))),
                ),
                Err(e) => slot.complete(index, Err(TaskError::Serialize(e.to_string()))),
            }
        }
        {
            let mut pending = self.shared.pending.lock();
            for &(task, index) in &sent {
                pending.insert(task, (Arc::clone(&slot), index));
            }
        }
        if let Err(e) = self.shared.tasks.put_encoded(&encoded) {
            let ids: Vec<u64> = sent.iter().map(|&(task, _)| task).collect();
            let why = TaskError::Pool(format!("sending the tasks: {e}"));
            self.shared.fail(Some(&ids), &why);
        }
        slot.set_running();
        slot
    }

    /// Sends one task of one argument (a tuple, for a star function) named by `name`.
    fn submit_one<A: Serialize, R: DeserializeOwned + 'static>(
        &self,
        name: std::result::Result<TaskName, String>,
        arg: &A,
    ) -> AsyncResult<R> {
        let mut bytes = Vec::new();
        push_arg(&mut bytes, arg);
        let slot = self.submit(name, vec![(bytes, 1)]);
        AsyncResult::new(slot, slot::decode_one::<R>)
    }

    fn chunks<A: Serialize>(&self, items: impl IntoIterator<Item = A>) -> Vec<(Vec<u8>, usize)> {
        let items: Vec<A> = items.into_iter().collect();
        let size = self
            .chunksize
            .unwrap_or_else(|| items.len().div_ceil(64).max(1));
        items
            .chunks(size)
            .map(|chunk| {
                let mut args = Vec::new();
                for a in chunk {
                    push_arg(&mut args, a);
                }
                (args, chunk.len())
            })
            .collect()
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

    /// Submits `f(arg)` and returns at once (Python's `apply_async`); register callbacks on
    /// the [`AsyncResult`].
    pub fn apply_async<F, A, R>(&self, f: F, arg: A) -> AsyncResult<R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        let _ = f;
        self.submit_one(task::name_of::<F>(false), &arg)
    }

    /// Runs `f(a, b, ...)` with a tuple's fields as arguments (Python's `apply` with several).
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

    /// As [`apply_star`](Self::apply_star), returning at once.
    pub fn apply_star_async<F, Args, R>(&self, f: F, args: Args) -> AsyncResult<R>
    where
        F: StarFn<Args, Output = R>,
        Args: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        let _ = f;
        self.submit_one(task::name_of::<F>(true), &args)
    }

    /// `f` over every item, results in the items' order (Python's `map`).
    ///
    /// # Errors
    /// The first failing item's [`TaskError`], once every task has finished.
    pub fn map<F, A, R, I>(&self, f: F, items: I) -> std::result::Result<Vec<R>, TaskError>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        self.map_async(f, items).get()
    }

    /// As [`map`](Self::map), returning at once.
    pub fn map_async<F, A, R, I>(&self, f: F, items: I) -> AsyncResult<Vec<R>>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        let _ = f;
        let slot = self.submit(task::name_of::<F>(false), self.chunks(items));
        AsyncResult::new(slot, slot::decode_all::<R>)
    }

    /// `f(a, b, ...)` over tuples of arguments (Python's `starmap`).
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
        self.starmap_async(f, items).get()
    }

    /// As [`starmap`](Self::starmap), returning at once.
    pub fn starmap_async<F, Args, R, I>(&self, f: F, items: I) -> AsyncResult<Vec<R>>
    where
        F: StarFn<Args, Output = R>,
        Args: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = Args>,
    {
        let _ = f;
        let slot = self.submit(task::name_of::<F>(true), self.chunks(items));
        AsyncResult::new(slot, slot::decode_all::<R>)
    }

    /// `f` over every item, yielding results in order as they arrive (Python's `imap`). Every
    /// task is sent at once; each chunk's results come as soon as that chunk and those before
    /// it have finished.
    pub fn imap<F, A, R, I>(&self, f: F, items: I) -> RedisImap<R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        let _ = f;
        let name = task::name_of::<F>(false);
        let chunks = self
            .chunks(items)
            .into_iter()
            .map(|chunk| self.submit(name.clone(), vec![chunk]))
            .collect();
        RedisImap {
            chunks,
            ready: Vec::new().into_iter(),
        }
    }

    /// No more tasks: later calls fail with [`TaskError::Closed`].
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
    }

    /// Waits until every task submitted has finished (after [`close`](Self::close), as in
    /// Python).
    ///
    /// # Errors
    /// [`PoolJoinError::StillOpen`] before `close`.
    pub fn join(&self) -> std::result::Result<(), PoolJoinError> {
        self.join_until(None)
    }

    /// As [`join`](Self::join), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`PoolJoinError::Timeout`] if tasks are still running then, or as [`join`](Self::join).
    pub fn join_timeout(&self, timeout: Duration) -> std::result::Result<(), PoolJoinError> {
        self.join_until(Instant::now().checked_add(timeout))
    }

    fn join_until(&self, deadline: Option<Instant>) -> std::result::Result<(), PoolJoinError> {
        if !self.shared.closed.load(Ordering::Relaxed) {
            return Err(PoolJoinError::StillOpen);
        }
        let mut pending = self.shared.pending.lock();
        while !pending.is_empty() {
            match deadline {
                None => self.shared.drained.wait(&mut pending),
                Some(d) => {
                    if self.shared.drained.wait_until(&mut pending, d).timed_out()
                        && !pending.is_empty()
                    {
                        return Err(PoolJoinError::Timeout);
                    }
                }
            }
        }
        Ok(())
    }

    /// Fails every unfinished task with [`TaskError::Terminated`] and closes the pool.
    pub fn terminate(&self) {
        self.close();
        self.shared.fail(None, &TaskError::Terminated);
    }
}

impl Drop for RedisPool {
    fn drop(&mut self) {
        self.terminate();
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.collector.take() {
            let _ = t.join();
        }
        let _ = self.shared.tasks.with_conn("DEL", Duration::ZERO, |c| {
            redis::cmd("DEL")
                .arg(&self.shared.reply)
                .arg(&self.shared.done)
                .query::<i64>(c)
        });
    }
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("pool", &self.shared.pool)
            .field("client", &self.shared.client)
            .field("retries", &self.retries)
            .finish()
    }
}

/// The results of [`RedisPool::imap`], in order.
pub struct RedisImap<R> {
    chunks: std::collections::VecDeque<Arc<Slot>>,
    ready: std::vec::IntoIter<std::result::Result<R, TaskError>>,
}

impl<R: DeserializeOwned + 'static> RedisImap<R> {
    /// The next result, waiting at most `timeout` for its chunk; `None` once all are out.
    pub fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Option<std::result::Result<R, ResultTimeoutError>> {
        loop {
            if let Some(r) = self.ready.next() {
                return Some(r.map_err(ResultTimeoutError::from));
            }
            let deadline = Instant::now().checked_add(timeout);
            let outcomes = match self.chunks.front()?.wait(deadline) {
                Some(outcomes) => outcomes,
                None => return Some(Err(ResultTimeoutError::Timeout)),
            };
            self.advance(&outcomes);
        }
    }

    /// Decodes the first chunk's items one by one (a failed item fails alone).
    fn advance(&mut self, outcomes: &[ChunkOutcome]) {
        let Some(slot) = self.chunks.pop_front() else {
            return;
        };
        let size = slot.sizes().iter().sum();
        let mut items = Vec::with_capacity(size);
        match outcomes.first() {
            Some(Ok(bytes)) => {
                crate::pool::task::decode_chunk::<R>(bytes, size, |r| items.push(r));
            }
            Some(Err(e)) => items.extend((0..size).map(|_| Err(e.clone()))),
            None => {}
        }
        self.ready = items.into_iter();
    }
}

impl<R: DeserializeOwned + 'static> Iterator for RedisImap<R> {
    type Item = std::result::Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.ready.next() {
                return Some(r);
            }
            let outcomes = self.chunks.front()?.wait(None)?;
            self.advance(&outcomes);
        }
    }
}

impl<R> std::fmt::Debug for RedisImap<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisImap")
            .field("chunks_left", &self.chunks.len())
            .finish()
    }
}

/// The collector: reads the client's reply stream and completes slots, until told to stop.
fn collect(shared: &Shared, link: &RedisQueue<Job>) {
    let mut last = "0-0".to_owned();
    let mut checked = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        if checked.elapsed() >= Duration::from_secs(1) {
            checked = Instant::now();
            if let Ok(false) = keep_keys(link, shared) {
                // The server lost this client's state (restarted without persistence, or the
                // key was removed): workers would drop every result. Make the stream again,
                // read it from the start, and fail what was outstanding, which the server
                // has lost too: an error, never a wait without end.
                if create_reply_stream(link, &shared.reply).is_ok() {
                    last = "0-0".to_owned();
                    let why = TaskError::Pool(
                        "the Redis server lost the pool's state (a restart without \
                         persistence?): the task may not have run"
                            .into(),
                    );
                    shared.fail(None, &why);
                }
            }
        }
        let read = link.with_conn("XREAD", Duration::from_millis(100), |c| {
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(512)
                .arg("BLOCK")
                .arg(100)
                .arg("STREAMS")
                .arg(&shared.reply)
                .arg(&last)
                .query::<Value>(c)
        });
        let entries = match read {
            Ok(v) => reply_entries(&v),
            Err(e) => {
                log::warn!("redis pool {}: reading results: {e}", shared.pool);
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let mut ids = Vec::with_capacity(entries.len());
        for (id, task, outcome) in entries {
            deliver(shared, task, outcome);
            last.clone_from(&id);
            ids.push(id);
        }
        if !ids.is_empty() {
            let _ = link.with_conn("XDEL", Duration::ZERO, |c| {
                redis::cmd("XDEL")
                    .arg(&shared.reply)
                    .arg(&ids)
                    .query::<i64>(c)
            });
        }
    }
}

/// Makes the client's reply stream (one greeting entry) with its time to live.
fn create_reply_stream(link: &RedisQueue<Job>, reply: &str) -> Result<()> {
    link.with_conn("XADD", Duration::ZERO, |c| {
        redis::pipe()
            .cmd("XADD")
            .arg(reply)
            .arg("*")
            .arg("hello")
            .arg(1)
            .ignore()
            .cmd("EXPIRE")
            .arg(reply)
            .arg(wire::KEY_TTL_SECS)
            .ignore()
            .query::<()>(c)
    })
}

/// Restarts the time to live of the client's keys; whether its reply stream still exists
/// (`EXPIRE` answers 0 for a missing key).
fn keep_keys(link: &RedisQueue<Job>, shared: &Shared) -> Result<bool> {
    link.with_conn("EXPIRE", Duration::ZERO, |c| {
        let (reply, _done): (bool, bool) = redis::pipe()
            .cmd("EXPIRE")
            .arg(&shared.reply)
            .arg(wire::KEY_TTL_SECS)
            .cmd("EXPIRE")
            .arg(&shared.done)
            .arg(wire::KEY_TTL_SECS)
            .query(c)?;
        Ok(reply)
    })
}

/// One reply: its outcome goes to the task's slot (a reply for a task not outstanding, or
/// a second reply, is dropped).
fn deliver(shared: &Shared, task: Option<u64>, outcome: Option<Vec<u8>>) {
    let Some(task) = task else {
        return;
    };
    let Some((slot, index)) = shared.take(Some(&[task])).pop() else {
        return;
    };
    let outcome: ChunkOutcome = match outcome.map(|b| postcard::from_bytes::<Reply>(&b)) {
        Some(Ok(Reply::Outcomes(bytes))) => Ok(Chunk::new(bytes, 0)),
        Some(Ok(Reply::WorkerDied { pid, status })) => Err(TaskError::WorkerDied { pid, status }),
        Some(Ok(Reply::Unknown(why))) => Err(TaskError::UnknownTask(why)),
        Some(Err(e)) => Err(TaskError::Deserialize(format!(
            "the reply for task {task} is not a shmkit reply: {e}"
        ))),
        None => Err(TaskError::Deserialize(format!(
            "the reply for task {task} has no outcome"
        ))),
    };
    slot.complete(index, outcome);
}

/// The entries of an `XREAD` reply: id, task id, outcome bytes (missing if the entry is not
/// a reply: the stream's first entry, or hostile bytes).
fn reply_entries(v: &Value) -> Vec<(String, Option<u64>, Option<Vec<u8>>)> {
    // RESP2: [[stream, entries], ...]; RESP3: {stream: entries}.
    let lists: Vec<&Value> = match v {
        Value::Array(s) => s
            .iter()
            .filter_map(|s| match s {
                Value::Array(parts) => parts.get(1),
                _ => None,
            })
            .collect(),
        Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for list in lists {
        let Value::Array(entries) = list else {
            continue;
        };
        for e in entries {
            let Value::Array(parts) = e else { continue };
            let Some(id) = parts.first().and_then(bulk_text) else {
                continue;
            };
            let (mut task, mut outcome) = (None, None);
            if let Some(Value::Array(fields)) = parts.get(1) {
                for pair in fields.chunks_exact(2) {
                    match (&pair[0], &pair[1]) {
                        (Value::BulkString(f), Value::BulkString(b)) if f == b"t" => {
                            task = std::str::from_utf8(b).ok().and_then(|t| t.parse().ok());
                        }
                        (Value::BulkString(f), Value::BulkString(b)) if f == b"o" => {
                            outcome = Some(b.clone());
                        }
                        _ => {}
                    }
                }
            }
            out.push((id, task, outcome));
        }
    }
    out
}

fn bulk_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}
