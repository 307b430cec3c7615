//! `Event`: a flag that processes wait for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::handle::handle_common;
use super::word::{deadline, wait_while};
use crate::error::Result;
use crate::shm::{Kind, Shared, shm_shared};
use crate::sys;

shm_shared! {
    /// The state of an event in shared memory.
    pub(crate) struct EventState {
        /// 1 when set; the futex word waiters sleep on.
        flag: AtomicU32,
        sleepers: AtomicU32,
    }
}

/// A flag that processes wait for: Python's `multiprocessing.Event`.
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// let ready = shmkit::Event::new()?;
/// assert!(!ready.wait_timeout(std::time::Duration::from_millis(1)));
/// ready.set(); // in another process, usually
/// ready.wait();
/// assert!(ready.is_set());
/// # Ok(()) }
/// ```
pub struct Event {
    shared: Arc<Shared<EventState>>,
}

impl Event {
    /// Creates an anonymous event, not set.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io).
    pub fn new() -> Result<Self> {
        Self::make(None)
    }

    /// Creates the event `name`; fails if it exists.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str) -> Result<Self> {
        Self::make(Some(name))
    }

    fn make(name: Option<&str>) -> Result<Self> {
        Ok(Event {
            shared: Shared::create(
                name,
                Kind::Event,
                EventState {
                    flag: AtomicU32::new(0),
                    sleepers: AtomicU32::new(0),
                },
            )?,
        })
    }

    /// Opens the existing event `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::KindMismatch`](crate::Error::KindMismatch), ...
    pub fn open(name: &str) -> Result<Self> {
        Ok(Event {
            shared: Shared::open(name, Kind::Event)?,
        })
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let s = self.shared.get();
        s.flag.store(1, Ordering::Release); // SYNC: event
        if s.sleepers.load(Ordering::SeqCst) != 0 {
            sys::futex_wake(&s.flag, i32::MAX);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.shared.get().flag.store(0, Ordering::Relaxed);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.shared.get().flag.load(Ordering::Acquire) == 1 // SYNC: event
    }

    /// Waits until the flag is set.
    pub fn wait(&self) {
        let s = self.shared.get();
        wait_while(&s.flag, &s.sleepers, None, |f| f == 0);
    }

    /// Waits at most `timeout` for the flag; returns whether it is set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let s = self.shared.get();
        wait_while(&s.flag, &s.sleepers, deadline(timeout), |f| f == 0)
    }
}

handle_common!(Event);
