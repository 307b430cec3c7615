//! `Semaphore` and `BoundedSemaphore`, and `Event`: counters and flags that processes wait on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::handle::handle_common;
use crate::error::{Error, Result};
use crate::shm::Shared;
use crate::shm::{Kind, shm_shared};
use crate::sys;

/// Waits on futex `word` while `blocked()`; the sleepers count lets wakers skip the system
/// call when nobody sleeps. `deadline` None: forever. Returns whether `blocked()` cleared.
fn wait_while(
    word: &AtomicU32,
    sleepers: &AtomicU32,
    deadline: Option<Instant>,
    mut blocked: impl FnMut(u32) -> bool,
) -> bool {
    loop {
        let v = word.load(Ordering::Acquire);
        if !blocked(v) {
            return true;
        }
        let timeout = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return false,
            },
        };
        sleepers.fetch_add(1, Ordering::SeqCst);
        // The kernel sleeps only if the word still holds `v`: a change after our check wakes
        // us at once, so no wake-up is lost.
        sys::futex_wait(word, v, timeout);
        sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

shm_shared! {
    /// The state of a semaphore in shared memory.
    pub(crate) struct SemState {
        /// The count, and the futex word acquirers sleep on.
        value: AtomicU32,
        sleepers: AtomicU32,
        /// For a bounded semaphore, the most the count may be; 0: unbounded.
        bound: AtomicU32,
        _reserved: AtomicU32,
    }
}

/// A counting semaphore shared by processes: Python's `multiprocessing.Semaphore` (and, made
/// with [`Semaphore::bounded`], `BoundedSemaphore`). `acquire` takes one unit, waiting while
/// there are none; `release` gives one back.
///
/// Units are not owned: a process that dies holding one does not give it back (as in Python).
/// A process killed while *waiting* leaves the semaphore usable for the others.
pub struct Semaphore {
    shared: Arc<Shared<SemState>>,
}

/// Python's `BoundedSemaphore`: a [`Semaphore`] whose `release` refuses to raise the count above
/// its initial value.
pub type BoundedSemaphore = Semaphore;

impl Semaphore {
    /// Creates an anonymous semaphore with `value` units.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn new(value: u32) -> Result<Self> {
        Self::make(None, value, 0)
    }

    /// Creates an anonymous bounded semaphore: `release` fails rather than go above `value`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn bounded(value: u32) -> Result<Self> {
        Self::make(None, value, value)
    }

    /// Creates the semaphore `name` with `value` units; `bounded` as for [`Semaphore::bounded`].
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::AlreadyExists`], [`Error::Io`].
    pub fn create(name: &str, value: u32, bounded: bool) -> Result<Self> {
        Self::make(Some(name), value, if bounded { value } else { 0 })
    }

    fn make(name: Option<&str>, value: u32, bound: u32) -> Result<Self> {
        let state = SemState {
            value: AtomicU32::new(value),
            sleepers: AtomicU32::new(0),
            bound: AtomicU32::new(bound),
            _reserved: AtomicU32::new(0),
        };
        Ok(Semaphore {
            shared: Shared::create(name, Kind::Semaphore, state)?,
        })
    }

    /// Opens the existing semaphore `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KindMismatch`], ...
    pub fn open(name: &str) -> Result<Self> {
        Ok(Semaphore {
            shared: Shared::open(name, Kind::Semaphore)?,
        })
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    fn take(&self, deadline: Option<Instant>, wait: bool) -> bool {
        let s = self.shared.get();
        loop {
            let v = s.value.load(Ordering::Relaxed);
            if v > 0 {
                // SYNC: semaphore. Acquire pairs with the Release in `release`.
                if s.value
                    .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            if !wait || !wait_while(&s.value, &s.sleepers, deadline, |v| v == 0) {
                return false;
            }
        }
    }

    /// Takes one unit, waiting as long as it takes.
    pub fn acquire(&self) {
        self.take(None, true);
    }

    /// Takes one unit if there is one now.
    pub fn try_acquire(&self) -> bool {
        self.take(None, false)
    }

    /// Takes one unit, waiting at most `timeout`; returns whether it got one.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.take(deadline(timeout), true)
    }

    /// Gives one unit back, waking a waiter.
    ///
    /// # Errors
    /// [`Error::TooManyReleases`] for a bounded semaphore already at its initial value (nothing
    /// changes).
    pub fn release(&self) -> Result<()> {
        let s = self.shared.get();
        let bound = s.bound.load(Ordering::Relaxed);
        let mut v = s.value.load(Ordering::Relaxed);
        loop {
            if (bound != 0 && v >= bound) || v == u32::MAX {
                return Err(Error::TooManyReleases);
            }
            // SYNC: semaphore.
            match s
                .value
                .compare_exchange_weak(v, v + 1, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        if s.sleepers.load(Ordering::SeqCst) != 0 {
            sys::futex_wake(&s.value, 1);
        }
        Ok(())
    }

    /// The number of units now (a snapshot).
    pub fn value(&self) -> u32 {
        self.shared.get().value.load(Ordering::Relaxed)
    }
}

handle_common!(Semaphore);

shm_shared! {
    /// The state of an event in shared memory.
    pub(crate) struct EventState {
        /// 1 when set; the futex word waiters sleep on.
        flag: AtomicU32,
        sleepers: AtomicU32,
    }
}

/// A flag that processes wait for: Python's `multiprocessing.Event`.
pub struct Event {
    shared: Arc<Shared<EventState>>,
}

impl Event {
    /// Creates an anonymous event, not set.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn new() -> Result<Self> {
        Self::make(None)
    }

    /// Creates the event `name`; fails if it exists.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::AlreadyExists`], [`Error::Io`].
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
    /// [`Error::NotFound`], [`Error::KindMismatch`], ...
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
