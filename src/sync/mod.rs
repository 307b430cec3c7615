//! Process-shared synchronisation.
//!
//! `RawLock` is the robust lock every shared cell carries; [`LockGuard`] is the safe access to
//! what it protects; [`LockError`], [`TryLockError`] and [`AccessError`] hand the guard or value
//! back when a previous holder died.

mod error;
#[allow(unsafe_code)]
mod guard;
#[allow(unsafe_code)]
mod raw_lock;

pub use error::{AccessError, LockError, TryLockError};
pub use guard::LockGuard;

pub(crate) use raw_lock::{Acquired, LockFailure, RawLock};
