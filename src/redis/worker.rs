//! `Worker`: the loop a host runs to serve a [`RedisPool`](super::RedisPool).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::Script;

use super::queue::{GROUP, RedisLease, RedisOptions, RedisQueue};
use super::task;
use super::wire::{self, Job, Reply};
use crate::error::{Error, Result};
use crate::queue::{AckError, GetTimeoutError};

/// The environment variable that turns a program into a pool worker at
/// [`shmkit::init()`](crate::init): the Redis URL to serve.
pub const WORKER_ENV: &str = "SHMKIT_REDIS_WORKER";
/// The pool a worker started by [`WORKER_ENV`] serves (default `default`).
pub const POOL_ENV: &str = "SHMKIT_REDIS_POOL";
/// Its lease time in milliseconds (default 30000).
pub const LEASE_ENV: &str = "SHMKIT_REDIS_LEASE_MS";
/// A pid: the worker ends when that process, its parent, does (Linux's parent-death signal),
/// for workers a local program starts and should not outlive, as the `cluster` example's.
pub const PARENT_ENV: &str = "SHMKIT_REDIS_WORKER_PARENT";

/// A worker of a [`RedisPool`](super::RedisPool): takes tasks from Redis and runs the
/// `#[shmkit::task]` functions they name, on any host that can reach the server.
///
/// A task is taken under a lease that a background thread renews while the function runs.
/// If this process dies (or loses Redis) the lease runs out, and the next worker to look takes
/// the task over: it runs it again if the caller allowed retries
/// ([`RedisPool::retries`](super::RedisPool::retries)), and otherwise fails it with
/// [`TaskError::WorkerDied`](crate::TaskError::WorkerDied), naming this process. A task whose
/// name this build does not know fails with [`TaskError::UnknownTask`](crate::TaskError) and
/// runs nothing.
///
/// ```no_run
/// # fn main() -> shmkit::Result<()> {
/// // On every worker host, in the same program as the caller's (main begins with init()):
/// shmkit::redis::Worker::connect("redis://10.0.0.5/", "default")?.run()
/// # }
/// ```
///
/// Or start the program with `SHMKIT_REDIS_WORKER=redis://10.0.0.5/`: [`shmkit::init()`](crate::init)
/// then runs the worker instead of `main`.
pub struct Worker {
    tasks: RedisQueue<Job>,
    pool: String,
    write: Script,
    should_run: Script,
}

impl Worker {
    /// Connects to the Redis at `url` to serve the pool named `pool`, with a 30 s lease.
    ///
    /// # Errors
    /// [`Error::Io`] if Redis cannot be reached; [`Error::InvalidArgument`] for a bad URL.
    pub fn connect(url: &str, pool: &str) -> Result<Worker> {
        Worker::with_options(url, pool, RedisOptions::default())
    }

    /// As [`connect`](Self::connect), with `opts` (the lease time above all; its
    /// `max_deliveries` is the caller's `retries` instead, and `auto_renew` is always on).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn with_options(url: &str, pool: &str, mut opts: RedisOptions) -> Result<Worker> {
        opts.max_deliveries = None;
        opts.auto_renew = true;
        Ok(Worker {
            tasks: RedisQueue::with_options(url, &wire::tasks_queue(pool), opts)?,
            pool: pool.to_owned(),
            write: Script::new(wire::WRITE_RESULT),
            should_run: Script::new(wire::SHOULD_RUN),
        })
    }

    /// This worker's consumer name (`<host>-<pid>-<random>`).
    pub fn name(&self) -> &str {
        self.tasks.consumer()
    }

    /// Serves tasks until the process ends. Redis errors (a restart, say) are logged and
    /// retried every half second, so this does not return.
    ///
    /// # Errors
    /// None today: every error is retried. The `Result` leaves room for a condition that
    /// retrying cannot fix.
    pub fn run(&self) -> Result<()> {
        let never = AtomicBool::new(false);
        self.run_until(&never).map(drop)
    }

    /// Serves tasks until `stop` is set (looked at least every 200 ms); how many it ran.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_until(&self, stop: &AtomicBool) -> Result<u64> {
        let mut ran = 0;
        while !stop.load(Ordering::Relaxed) {
            match self.work_one(Duration::from_millis(200)) {
                Ok(true) => ran += 1,
                Ok(false) => {}
                Err(e) => {
                    log::warn!("redis pool {} worker: {e}; retrying", self.pool);
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        Ok(ran)
    }

    /// Takes one task, waiting at most `timeout`, and runs it; whether there was one.
    ///
    /// # Errors
    /// [`Error::Io`] if Redis failed (the task, if taken, is delivered again after the lease).
    pub fn work_one(&self, timeout: Duration) -> Result<bool> {
        let lease = match self.tasks.get_leased_timeout(timeout) {
            Ok(lease) => lease,
            Err(GetTimeoutError::Timeout) => return Ok(false),
            Err(GetTimeoutError::Deserialize(why)) => {
                // Not a task (hostile or foreign bytes): it went to the dead-letter stream.
                log::error!("redis pool {}: an entry is not a task: {why}", self.pool);
                return Ok(true);
            }
            Err(GetTimeoutError::Failed(e)) => return Err(e),
            Err(e) => return Err(Error::from(e)),
        };
        let job: &Job = &lease;
        let done = wire::done_key(&self.pool, &job.client);
        let reply = wire::reply_key(&self.pool, &job.client);
        if lease.deliveries() > 1 {
            // Taken over: its first worker may have written the result before dying, or its
            // caller may be gone.
            let run: i64 = self.tasks.with_conn("EVALSHA", Duration::ZERO, |c| {
                self.should_run
                    .key(&done)
                    .key(&reply)
                    .arg(job.task)
                    .invoke(c)
            })?;
            if run == 0 {
                finish(lease)?;
                return Ok(true);
            }
        }
        let outcome = if lease.deliveries() > job.retries.saturating_add(1) {
            let (host, pid) = lease
                .previous_consumer()
                .map(wire::consumer_host_pid)
                .unwrap_or_else(|| ("an unknown host".into(), 0));
            let lease_time = self.tasks.options().lease;
            Reply::WorkerDied {
                pid,
                status: format!(
                    "on {host}, it stopped renewing its lease for {lease_time:?} (killed, or cut \
                     off from Redis); the task was delivered {} times with {} retries allowed",
                    lease.deliveries() - 1,
                    job.retries
                ),
            }
        } else {
            match task::find(&job.name, job.star, job.fingerprint) {
                Ok(run) => {
                    let mut out = Vec::new();
                    run(&job.args, &mut out);
                    Reply::Outcomes(out)
                }
                Err(why) => {
                    log::error!("redis pool {}: {why}", self.pool);
                    Reply::Unknown(why)
                }
            }
        };
        let bytes = postcard::to_allocvec(&outcome).map_err(|e| Error::Op(e.to_string().into()))?;
        let (task, client) = (job.task, job.client.clone());
        // The renewals stop first, so none lands after the script finishes the entry.
        let entry = lease.into_settled();
        let written: i64 = self.tasks.with_conn("EVALSHA", Duration::ZERO, |c| {
            self.write
                .key(&done)
                .key(&reply)
                .key(self.tasks.stream())
                .arg(task)
                .arg(bytes)
                .arg(wire::KEY_TTL_SECS)
                .arg(GROUP)
                .arg(&entry)
                .invoke(c)
        })?;
        if written == 0 {
            log::info!(
                "redis pool {}: task {task} of {client} already had a result (its lease ran out \
                 while this worker ran it); this one is dropped",
                self.pool
            );
        }
        Ok(true)
    }
}

/// Acks a finished task. An ack that finds it acked already (another worker took it over
/// and finished it) is not an error for the worker: the task has its result.
fn finish(lease: RedisLease<Job>) -> Result<()> {
    match lease.ack() {
        Ok(_) | Err(AckError::Lost) => Ok(()),
        Err(AckError::Failed(e)) => Err(e),
    }
}

/// The worker mode of [`shmkit::init()`](crate::init): if [`WORKER_ENV`] is set, serves that
/// Redis until the process is killed, then exits.
pub(crate) fn run_from_env() {
    let Ok(url) = std::env::var(WORKER_ENV) else {
        return;
    };
    if let Some(parent) = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    {
        // Checked after asking for the signal: a parent that died before is seen here.
        if crate::sys::die_with_parent().is_err() || crate::sys::parent_pid() != parent {
            std::process::exit(0);
        }
    }
    let pool = std::env::var(POOL_ENV).unwrap_or_else(|_| "default".into());
    let mut opts = RedisOptions::default();
    if let Some(ms) = std::env::var(LEASE_ENV).ok().and_then(|v| v.parse().ok()) {
        opts.lease = Duration::from_millis(ms);
    }
    let code = match Worker::with_options(&url, &pool, opts).and_then(|w| w.run()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shmkit redis worker ({url}, pool {pool}): {e}");
            2
        }
    };
    std::process::exit(code);
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("pool", &self.pool)
            .field("name", &self.name())
            .finish()
    }
}
