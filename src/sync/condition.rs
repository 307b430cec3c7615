//! `Condition`: a condition variable with its own lock, across processes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::error::LockError;
use super::handle::handle_common;
use super::raw_lock::RawLock;
use crate::error::{Error, Result};
use crate::shm::Shared;
use crate::shm::{Kind, shm_shared};
use crate::sys;

shm_shared! {
/// The state of a condition in shared memory. Everything but `seq` changes only under `lock`.
pub(crate) struct CondState {
    lock: RawLock,
    /// Futex word waiters sleep on; changed by every notify.
    seq: AtomicU32,
    /// Threads waiting (counted from `wait` until they return).
    waiting: AtomicU32,
    /// Notifications not yet taken by a waiter: `notify(n)` adds at most n, and a waiter
    /// returns as notified only by taking one, so at most n waiters return.
    tokens: AtomicU32,
    _reserved: AtomicU32,
}
}

/// A condition variable shared by processes, over its own lock: Python's
/// `multiprocessing.Condition`. Acquire the lock, check your condition, and `wait` (which
/// releases the lock while sleeping and re-acquires it before returning); another process
/// changes the state under the lock and calls `notify`.
///
/// `notify(n)` lets at most `n` waiters return. Waiting or notifying without holding the lock
/// is an error. A waiter killed while waiting may take a notification with it; others can
/// still wait and be notified. As with any condition variable, check your condition in a loop,
/// or use [`wait_while`](Self::wait_while).
pub struct Condition {
    shared: Arc<Shared<CondState>>,
}

impl Condition {
    /// Creates an anonymous condition with its own lock.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn new() -> Result<Self> {
        Self::make(None)
    }

    /// Creates the condition `name`; fails if it exists.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::AlreadyExists`], [`Error::Io`].
    pub fn create(name: &str) -> Result<Self> {
        Self::make(Some(name))
    }

    fn make(name: Option<&str>) -> Result<Self> {
        let state = CondState {
            lock: RawLock::new(),
            seq: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            tokens: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
        };
        Ok(Condition {
            shared: Shared::create(name, Kind::Condition, state)?,
        })
    }

    /// Opens the existing condition `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KindMismatch`], ...
    pub fn open(name: &str) -> Result<Self> {
        Ok(Condition {
            shared: Shared::open(name, Kind::Condition)?,
        })
    }

    /// The condition's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    fn state(&self) -> &CondState {
        self.shared.get()
    }

    fn relock(&self) -> std::result::Result<(), LockError<()>> {
        super::lock::blocking(&self.state().lock)
    }

    /// Acquires the condition's lock.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (acquired: its holder had died), [`LockError::Deadlock`].
    pub fn acquire(&self) -> std::result::Result<(), LockError<()>> {
        self.relock()
    }

    /// Releases the condition's lock.
    ///
    /// # Errors
    /// [`Error::NotOwner`] if this thread does not hold it.
    pub fn release(&self) -> Result<()> {
        let l = &self.state().lock;
        if !l.held_by_me() {
            return Err(Error::NotOwner);
        }
        l.release_mine();
        Ok(())
    }

    fn require_lock(&self) -> Result<()> {
        if self.state().lock.held_by_me() {
            Ok(())
        } else {
            Err(Error::NotOwner)
        }
    }

    /// Releases the lock, sleeps until notified, and re-acquires the lock.
    ///
    /// # Errors
    /// [`Error::NotOwner`] if this thread does not hold the lock; [`Error::OwnerDied`] if the
    /// lock's holder died meanwhile (the lock is held again all the same).
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None).map(drop)
    }

    /// As [`wait`](Self::wait), for at most `timeout`; returns whether it was notified (the lock
    /// is held again either way).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// Waits while `condition()` holds (Python's `wait_for` with the test negated), checking
    /// it under the lock; returns whether it cleared before `timeout` (`None`: no limit).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_while(
        &self,
        mut condition: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        while condition() {
            if !self.wait_until(deadline)? && condition() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        self.require_lock()?;
        let s = self.state();
        s.waiting.fetch_add(1, Ordering::Relaxed);
        let mut died = false;
        let notified = loop {
            let seq = s.seq.load(Ordering::Acquire); // SYNC: condvar-seq, read under the lock
            // `require_lock` (or the relock below) made sure this thread holds it.
            s.lock.release_mine();
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if timeout.is_none_or(|t| !t.is_zero()) {
                sys::futex_wait(&s.seq, seq, timeout);
            }
            died |= self.relock().is_err();
            let t = s.tokens.load(Ordering::Relaxed);
            if t > 0 {
                s.tokens.store(t - 1, Ordering::Relaxed);
                break true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break false;
            }
        };
        s.waiting.fetch_sub(1, Ordering::Relaxed);
        if died {
            Err(Error::OwnerDied)
        } else {
            Ok(notified)
        }
    }

    /// Lets at most `n` waiters return.
    ///
    /// # Errors
    /// [`Error::NotOwner`] if this thread does not hold the lock.
    pub fn notify(&self, n: u32) -> Result<()> {
        self.require_lock()?;
        let s = self.state();
        let (w, t) = (
            s.waiting.load(Ordering::Relaxed),
            s.tokens.load(Ordering::Relaxed),
        );
        let k = n.min(w.saturating_sub(t));
        if k > 0 {
            s.tokens.store(t + k, Ordering::Relaxed);
            s.seq.fetch_add(1, Ordering::Release); // SYNC: condvar-seq
            sys::futex_wake(&s.seq, k.min(i32::MAX as u32) as i32);
        }
        Ok(())
    }

    /// Lets every waiter return.
    ///
    /// # Errors
    /// [`Error::NotOwner`] if this thread does not hold the lock.
    pub fn notify_all(&self) -> Result<()> {
        self.notify(u32::MAX)
    }
}

handle_common!(Condition);
