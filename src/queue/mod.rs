//! [`Queue`] and [`JoinableQueue`]: bounded, multi-producer multi-consumer queues of serde
//! values in shared memory, safe against processes killed at any moment.
//!
//! Layers, bottom-up: `ring.rs` (the frame format and index arithmetic, pure), `spill.rs` (items
//! too large for the ring's free space), `core.rs` (the shared control block, blocking, commit
//! points) with `claim.rs` (big items copied in and out outside the lock), `repair.rs` (after
//! a holder's death) and `slots.rs` (leased items waiting for their ack), `codec.rs` (serde ↔
//! bytes), and the typed handles in `typed.rs`, `lease.rs` and `joinable.rs`.

mod batch;
mod bulk;
#[allow(unsafe_code)]
mod claim;
mod codec;
#[cfg(feature = "pool")]
pub(crate) use codec::varint;
#[allow(unsafe_code)]
mod core;
mod error;
mod joinable;
mod lease;
mod repair;
mod ring;
#[allow(unsafe_code)]
mod slots;
#[allow(unsafe_code)]
mod spill;
mod typed;
mod wait;
mod watch;

pub use error::{
    AckError, GetError, GetTimeoutError, JoinTimeoutError, PutError, PutManyError, PutTimeoutError,
    TaskDoneError, TryGetError, TryPutError,
};
pub use joinable::JoinableQueue;
pub use lease::{Lease, LeaseCounts};
pub use typed::{DEFAULT_CAPACITY, Queue};

pub(crate) use core::{GET_LOCK_AT, QueueCore, counters};
