//! What a [`RedisPool`](super::RedisPool) and its workers exchange through Redis.
//!
//! ```text
//! shmkit:q:pool:<pool>                  the tasks: a RedisQueue<Job> (leases, take-over, renewals)
//! shmkit:pool:<pool>:reply:<client>     a stream per client: field t = task id, o = postcard Reply
//! shmkit:pool:<pool>:done:<client>      a hash per client: the task ids that have a result
//! ```
//!
//! A result is written by [`WRITE_RESULT`], a Lua script (atomic in Redis): only the first
//! writer of a task id adds a reply, so a slow worker whose task was taken over never
//! overwrites the result. The client's reply stream exists while the client does; a result for
//! a client that is gone is dropped.

use serde::{Deserialize, Serialize};

/// How long a client's keys outlive its last activity if it dies without removing them.
pub(crate) const KEY_TTL_SECS: u64 = 24 * 3600;

/// One task: a chunk of arguments for the function named `name`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Job {
    /// The task id, unique per client.
    pub(crate) task: u64,
    /// The client's id (its reply stream and done hash).
    pub(crate) client: String,
    pub(crate) name: String,
    pub(crate) star: bool,
    pub(crate) fingerprint: u64,
    /// Deliveries beyond the first that a lost worker may cost before the task fails.
    pub(crate) retries: u32,
    /// The arguments, framed as the shared-memory pool frames them.
    pub(crate) args: Vec<u8>,
}

/// What comes back for one task.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// One framed outcome per argument, as the shared-memory pool's.
    Outcomes(Vec<u8>),
    /// The worker that held the task stopped renewing its lease (it died or lost Redis), and
    /// the task had no retries left.
    WorkerDied { pid: u32, status: String },
    /// The worker has no such task (see `task::find`).
    Unknown(String),
}

pub(crate) fn tasks_queue(pool: &str) -> String {
    format!("pool:{pool}")
}

pub(crate) fn reply_key(pool: &str, client: &str) -> String {
    format!("shmkit:pool:{pool}:reply:{client}")
}

pub(crate) fn done_key(pool: &str, client: &str) -> String {
    format!("shmkit:pool:{pool}:done:{client}")
}

/// Writes a task's result once and finishes the task's entry, in one round trip.
/// KEYS: done hash, reply stream, tasks stream. ARGV: task id, reply bytes, TTL seconds,
/// group, entry id. Returns 1 if this wrote the result, 0 if another writer had, -1 if the
/// client is gone.
pub(crate) const WRITE_RESULT: &str = r"
local w = -1
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 1 then
    redis.call('XADD', KEYS[2], '*', 't', ARGV[1], 'o', ARGV[2])
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    redis.call('EXPIRE', KEYS[2], ARGV[3])
    w = 1
  else
    w = 0
  end
end
redis.call('XACK', KEYS[3], ARGV[4], ARGV[5])
redis.call('XDEL', KEYS[3], ARGV[5])
return w
";

/// KEYS: done hash, reply stream. ARGV: task id. Returns 1 if the task should run: its client
/// is there and it has no result yet.
pub(crate) const SHOULD_RUN: &str = r"
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
return 1
";

/// Splits a consumer name `<host>-<pid>-<random>` into host and pid.
pub(crate) fn consumer_host_pid(consumer: &str) -> (String, u32) {
    let mut parts = consumer.rsplitn(3, '-');
    let _random = parts.next();
    let pid = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let host = parts.next().unwrap_or(consumer).to_owned();
    (host, pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_names_split_from_the_right() {
        assert_eq!(
            consumer_host_pid("build-box-7-4242-0badcafe"),
            ("build-box-7".to_owned(), 4242)
        );
        assert_eq!(consumer_host_pid("garbage"), ("garbage".to_owned(), 0));
    }
}
