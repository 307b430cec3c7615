//! Beyond one machine (feature `redis`): [`RedisQueue`], a queue of serde values on a Redis
//! stream, and [`RedisPool`], a pool whose [`Worker`]s run on any host that reaches the same
//! Redis, for functions named by [`#[shmkit::task]`](crate::task). Shared memory stays the
//! default; this is the same shape of API over an existing engine, never a protocol of our own.
//!
//! ```no_run
//! #[shmkit::task] // registered as "my_crate::resize", with a fingerprint of (u32, u32) -> Vec<u8>
//! fn resize(size: (u32, u32)) -> Vec<u8> {
//!     vec![0; (size.0 * size.1) as usize]
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     shmkit::init(); // a worker (SHMKIT_REDIS_WORKER set) serves here and never returns
//!     let pool = shmkit::redis::RedisPool::connect("redis://10.0.0.5/", "images")?.retries(2);
//!     let thumbs = pool.map(resize, [(64, 64), (128, 128)])?; // in order, from any workers
//!     println!("{} thumbnails", thumbs.len());
//!     Ok(())
//! }
//! ```
//!
//! A function that is not a task cannot be sent; a generic one cannot be a task:
//!
//! ```compile_fail
//! #[shmkit::task]
//! fn first<T: Clone>(v: Vec<T>) -> T {
//!     v[0].clone()
//! }
//! ```
//!
//! One queue is one stream (`shmkit:q:<name>`) with one consumer group (`shmkit`); its dead
//! letters go to a second stream (`shmkit:q:<name>:dead`).
//!
//! - `put` is `XADD` of one field, `d`, holding the postcard bytes; items above the size limit
//!   (8 MiB by default) are refused before anything is sent.
//! - A leased get is one script (one round trip): take over the oldest entry whose lease ran
//!   out (idle for the lease time: its consumer died, or stopped renewing; `XPENDING ... IDLE`
//!   and `XCLAIM`), else read a new one (`XREADGROUP ... >`); only when there is none does it
//!   block in `XREADGROUP`. Its delivery count is Redis's own.
//! - `ack` is `XACK` and `XDEL`: an entry leaves the stream only once acked, so nothing
//!   pending is ever trimmed. `release` makes the entry idle at once (`XCLAIM ... IDLE`), so
//!   the next get takes it over; `renew` resets its idle time (`XCLAIM ... JUSTID`), which a
//!   background thread does every third of the lease time while the lease is held.
//! - An entry delivered `max_deliveries` times, or whose bytes are not a `T` (or not a shmkit
//!   entry at all), is moved to the dead-letter stream and acked.
//!
//! A pool's tasks are a `RedisQueue` (`shmkit:q:pool:<pool>`) of chunks of arguments naming
//! their function; results go to a stream per caller, written once per task by a script (the
//! first writer wins). See [`RedisPool`] and [`Worker`] for the semantics.
//!
//! Semantics differ from shared memory where Redis differs from shared memory: delivery is at
//! least once (a lease that runs out while its consumer still works is delivered again),
//! durability is as far as Redis persists, and a `RedisQueue` is unbounded.

mod pool;
mod queue;
mod renew;
mod task;
mod wire;
mod worker;

pub use pool::{RedisImap, RedisPool};
pub use queue::{RedisLease, RedisOptions, RedisQueue};
#[doc(hidden)]
pub use task::TaskDef;
pub(crate) use worker::run_from_env;
pub use worker::{LEASE_ENV, PARENT_ENV, POOL_ENV, WORKER_ENV, Worker};
