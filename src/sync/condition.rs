//! `Condition`: a condition variable with its own lock, across processes.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use super::error::{
    LockError, LockTimeoutError, NotOwner, TryLockError, WaitError, WaitTimeoutError,
};
use super::handle::handle_common;
use super::raw_lock::RawLock;
use super::waitlist::Waitlist;
use crate::error::Result;
use crate::shm::Shared;
use crate::shm::{Kind, shm_shared};

shm_shared! {
/// The state of a condition in shared memory. Everything but the futex word changes only
/// under `lock`.
pub(crate) struct CondState {
    lock: RawLock,
    /// Threads waiting (registered from `wait` until they return). `notify(n)` sends at most
    /// n signals, and a waiter returns as notified only by taking one, so at most n return.
    waiters: Waitlist,
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
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// use std::time::Duration;
/// use shmkit::{Condition, Value, WaitTimeoutError};
///
/// let (cond, ready) = (Condition::new()?, Value::new(0u8)?);
/// let (c2, r2) = (cond.clone(), ready.clone()); // in another process, usually
/// let producer = std::thread::spawn(move || {
///     c2.acquire().unwrap();
///     r2.set(1).unwrap();
///     c2.notify(1).unwrap();
///     c2.release().unwrap();
/// });
/// cond.acquire()?;
/// match cond.wait_while_timeout(|| ready.get().unwrap() == 0, Duration::from_secs(10)) {
///     Ok(()) => assert_eq!(ready.get()?, 1),
///     Err(WaitTimeoutError::Timeout) => panic!("never notified"),
///     Err(e) => return Err(e.into()),
/// }
/// cond.release()?;
/// producer.join().unwrap();
/// # Ok(()) }
/// ```
pub struct Condition {
    shared: Arc<Shared<CondState>>,
}

impl Condition {
    /// Creates an anonymous condition with its own lock.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io).
    pub fn new() -> Result<Self> {
        Self::make(None)
    }

    /// Creates the condition `name`; fails if it exists.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str) -> Result<Self> {
        Self::make(Some(name))
    }

    fn make(name: Option<&str>) -> Result<Self> {
        let state = CondState {
            lock: RawLock::new(),
            waiters: Waitlist::new(),
            _reserved: AtomicU32::new(0),
        };
        Ok(Condition {
            shared: Shared::create(name, Kind::Condition, state)?,
        })
    }

    /// Opens the existing condition `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::KindMismatch`](crate::Error::KindMismatch), ...
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

    /// Acquires the condition's lock if it is free.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`], or as [`acquire`](Self::acquire).
    pub fn try_acquire(&self) -> std::result::Result<(), TryLockError<()>> {
        let l = &self.state().lock;
        super::lock::clean_up(l, l.try_lock())
    }

    /// Acquires the condition's lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockTimeoutError::Timeout`], or as [`acquire`](Self::acquire).
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<(), LockTimeoutError<()>> {
        let l = &self.state().lock;
        super::lock::clean_up(l, l.try_lock_for(timeout)).map_err(TryLockError::into_timeout)
    }

    /// Releases the condition's lock.
    ///
    /// # Errors
    /// [`NotOwner`] if this thread does not hold it.
    pub fn release(&self) -> std::result::Result<(), NotOwner> {
        if self.state().lock.release_mine() {
            Ok(())
        } else {
            Err(NotOwner)
        }
    }

    fn require_lock(&self) -> std::result::Result<(), NotOwner> {
        if self.state().lock.held_by_me() {
            Ok(())
        } else {
            Err(NotOwner)
        }
    }

    /// Releases the lock, sleeps until notified, and re-acquires the lock.
    ///
    /// # Errors
    /// [`WaitError::NotOwner`] if this thread does not hold the lock (nothing happens);
    /// [`WaitError::OwnerDied`] if the lock's holder died meanwhile (the lock is held again all
    /// the same).
    pub fn wait(&self) -> std::result::Result<(), WaitError> {
        match self.wait_until(None) {
            Ok(_) => Ok(()),
            Err(WaitTimeoutError::NotOwner) => Err(WaitError::NotOwner),
            // Without a deadline only a notification ends the wait: no `Timeout` here.
            Err(_) => Err(WaitError::OwnerDied),
        }
    }

    /// As [`wait`](Self::wait), for at most `timeout` (the lock is held again either way).
    ///
    /// # Errors
    /// [`WaitTimeoutError::Timeout`] if not notified in time, or as [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> std::result::Result<(), WaitTimeoutError> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// Waits while `condition()` holds (Python's `wait_for` with the test negated), checking
    /// it under the lock; returns once it no longer holds.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    #[doc(alias = "wait_for")]
    pub fn wait_while(
        &self,
        mut condition: impl FnMut() -> bool,
    ) -> std::result::Result<(), WaitError> {
        while condition() {
            self.wait()?;
        }
        Ok(())
    }

    /// As [`wait_while`](Self::wait_while), for at most `timeout`.
    ///
    /// # Errors
    /// [`WaitTimeoutError::Timeout`] if `condition()` still holds at the deadline, or as
    /// [`wait`](Self::wait).
    pub fn wait_while_timeout(
        &self,
        mut condition: impl FnMut() -> bool,
        timeout: Duration,
    ) -> std::result::Result<(), WaitTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        while condition() {
            match self.wait_until(deadline) {
                Err(WaitTimeoutError::Timeout) if condition() => {
                    return Err(WaitTimeoutError::Timeout);
                }
                Err(WaitTimeoutError::Timeout) => return Ok(()),
                other => other?,
            }
        }
        Ok(())
    }

    fn wait_until(&self, deadline: Option<Instant>) -> std::result::Result<(), WaitTimeoutError> {
        self.require_lock()
            .map_err(|NotOwner| WaitTimeoutError::NotOwner)?;
        let s = self.state();
        s.waiters.enter();
        let mut died = false;
        let notified = loop {
            let seq = s.waiters.seq();
            // `require_lock` (or the relock below) made sure this thread holds it.
            s.lock.release_mine();
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if timeout.is_none_or(|t| !t.is_zero()) {
                s.waiters.sleep(seq, timeout);
            }
            died |= self.relock().is_err();
            if s.waiters.take_signal() {
                break true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break false;
            }
        };
        s.waiters.leave();
        if died {
            Err(WaitTimeoutError::OwnerDied)
        } else if notified {
            Ok(())
        } else {
            Err(WaitTimeoutError::Timeout)
        }
    }

    /// Lets at most `n` waiters return.
    ///
    /// # Errors
    /// [`NotOwner`] if this thread does not hold the lock.
    pub fn notify(&self, n: u32) -> std::result::Result<(), NotOwner> {
        self.require_lock()?;
        let w = &self.state().waiters;
        w.wake(w.claim(n));
        Ok(())
    }

    /// Lets every waiter return.
    ///
    /// # Errors
    /// [`NotOwner`] if this thread does not hold the lock.
    pub fn notify_all(&self) -> std::result::Result<(), NotOwner> {
        self.notify(u32::MAX)
    }
}

handle_common!(Condition);
