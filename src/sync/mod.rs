//! Process-shared synchronisation: the lock every shared object uses, and Python's
//! `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Condition` and `Barrier`.
//!
//! `RawLock` is the robust lock every shared cell carries; [`LockGuard`] is the safe access to
//! what it protects; [`LockError`], [`TryLockError`] and [`AccessError`] hand the guard or value
//! back when a previous holder died.

mod barrier;
mod condition;
mod error;
mod event;
#[allow(unsafe_code)]
mod guard;
mod handle;
mod lock;
#[allow(unsafe_code)]
mod ownerless;
#[allow(unsafe_code)]
mod raw_lock;
mod semaphore;
mod waitlist;
mod word;
mod yielding;

pub use barrier::Barrier;
pub use condition::Condition;
pub use error::{
    AccessError, BarrierTimeoutError, BarrierTryError, BrokenBarrier, LockError, LockTimeoutError,
    NotLocked, NotOwner, OutOfRange, Timeout, TooManyReleases, TryLockError, WaitError,
    WaitTimeoutError, WouldBlock,
};
pub use event::Event;
pub use guard::{LockGuard, RawMutex};
pub use lock::{Lock, RLock};
pub use ownerless::OwnerlessLock;
pub use raw_lock::RawLock;
pub use semaphore::{Permit, Semaphore};

pub(crate) use raw_lock::{Acquired, LockFailure, describe as describe_lock, holder_dead};
pub(crate) use waitlist::Waitlist;
pub(crate) use yielding::{Yielding, cores_to_spare_hint};
