//! Beyond one machine: [`RedisQueue`], a queue of serde values on a Redis stream (feature
//! `redis`), for processes on several hosts. Shared memory stays the default; this is the same
//! shape of API over an existing engine, never a protocol of our own.
//!
//! One queue is one stream (`shmkit:q:<name>`) with one consumer group (`shmkit`); its dead
//! letters go to a second stream (`shmkit:q:<name>:dead`).
//!
//! - `put` is `XADD` of one field, `d`, holding the postcard bytes; items above the size limit
//!   (8 MiB by default) are refused before anything is sent.
//! - A leased get first takes over an entry whose lease ran out (`XAUTOCLAIM` with the lease
//!   time as minimum idle time: its consumer died, or stopped renewing), then reads a new one
//!   (`XREADGROUP ... >`). Its delivery count is Redis's own (`XPENDING`).
//! - `ack` is `XACK` and `XDEL`: an entry leaves the stream only once acked, so nothing
//!   pending is ever trimmed. `release` makes the entry idle at once (`XCLAIM ... IDLE`), so
//!   the next get takes it over; `renew` resets its idle time (`XCLAIM ... JUSTID`), which a
//!   background thread does every third of the lease time while the lease is held.
//! - An entry delivered `max_deliveries` times, or whose bytes are not a `T` (or not a shmkit
//!   entry at all), is moved to the dead-letter stream and acked.
//!
//! Semantics differ from the shared-memory queue where Redis differs from shared memory:
//! delivery is at least once (a lease that runs out while its consumer still works is
//! delivered again), durability is as far as Redis persists, and a `RedisQueue` is unbounded.

mod pool;
mod queue;
mod task;
mod wire;
mod worker;

pub use pool::{RedisImap, RedisPool};
pub use queue::{RedisLease, RedisOptions, RedisQueue};
#[doc(hidden)]
pub use task::TaskDef;
pub(crate) use worker::run_from_env;
pub use worker::{LEASE_ENV, POOL_ENV, WORKER_ENV, Worker};
