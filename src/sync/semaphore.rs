//! `Semaphore` (and Python's `BoundedSemaphore`): a counter that processes wait on, with an
//! RAII [`Permit`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::error::{Timeout, TooManyReleases, WouldBlock};
use super::handle::handle_common;
use super::word::{deadline, wait_while};
use crate::error::Result;
use crate::shm::Shared;
use crate::shm::{Kind, shm_shared};
use crate::sys;

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
/// there are none, and returns a [`Permit`] that gives it back when dropped;
/// [`Permit::forget`] keeps the unit taken, for Python's style of `release` elsewhere.
///
/// Units are not owned: a process that dies holding one does not give it back (as in Python).
/// A process killed while *waiting* leaves the semaphore usable for the others.
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// let sem = shmkit::Semaphore::new(2)?;
/// let a = sem.acquire();
/// let _b = sem.try_acquire()?;
/// assert!(sem.try_acquire().is_err()); // both units taken
/// drop(a); // gives its unit back
/// sem.acquire_timeout(std::time::Duration::from_secs(1))?.forget(); // keep it taken
/// assert_eq!(sem.value(), 0);
/// sem.release()?; // Python's release(), for a unit taken without a permit
/// # Ok(()) }
/// ```
pub struct Semaphore {
    shared: Arc<Shared<SemState>>,
}

impl Semaphore {
    /// Creates an anonymous semaphore with `value` units.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io).
    pub fn new(value: u32) -> Result<Self> {
        Self::make(None, value, 0)
    }

    /// Creates an anonymous bounded semaphore (Python's `BoundedSemaphore`): `release` fails
    /// rather than go above `value`.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io).
    #[doc(alias = "BoundedSemaphore")]
    pub fn bounded(value: u32) -> Result<Self> {
        Self::make(None, value, value)
    }

    /// Creates the semaphore `name` with `value` units.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str, value: u32) -> Result<Self> {
        Self::make(Some(name), value, 0)
    }

    /// Creates the bounded semaphore `name` (see [`Semaphore::bounded`]).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_bounded(name: &str, value: u32) -> Result<Self> {
        Self::make(Some(name), value, value)
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
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::KindMismatch`](crate::Error::KindMismatch), ...
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

    /// Takes one unit, waiting as long as it takes; the permit gives it back when dropped.
    pub fn acquire(&self) -> Permit<'_> {
        self.take(None, true);
        Permit { semaphore: self }
    }

    /// Takes one unit if there is one now (Python's `acquire(block=False)`).
    ///
    /// # Errors
    /// [`WouldBlock`] if none is free.
    pub fn try_acquire(&self) -> std::result::Result<Permit<'_>, WouldBlock> {
        if self.take(None, false) {
            Ok(Permit { semaphore: self })
        } else {
            Err(WouldBlock)
        }
    }

    /// Takes one unit, waiting at most `timeout` (Python's `acquire(timeout=...)`).
    ///
    /// # Errors
    /// [`Timeout`] if none was free in time.
    pub fn acquire_timeout(&self, timeout: Duration) -> std::result::Result<Permit<'_>, Timeout> {
        if self.take(deadline(timeout), true) {
            Ok(Permit { semaphore: self })
        } else {
            Err(Timeout)
        }
    }

    /// Gives one unit back, waking a waiter (Python's `release()`, for a unit whose permit was
    /// [forgotten](Permit::forget), or taken by another process).
    ///
    /// # Errors
    /// [`TooManyReleases`] for a bounded semaphore already at its initial value (nothing
    /// changes).
    pub fn release(&self) -> std::result::Result<(), TooManyReleases> {
        let s = self.shared.get();
        let bound = s.bound.load(Ordering::Relaxed);
        let mut v = s.value.load(Ordering::Relaxed);
        loop {
            if (bound != 0 && v >= bound) || v == u32::MAX {
                return Err(TooManyReleases);
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

/// One unit taken from a [`Semaphore`]; dropping it gives the unit back.
#[must_use = "the unit is given back as soon as the permit is dropped"]
#[derive(Debug)]
pub struct Permit<'a> {
    semaphore: &'a Semaphore,
}

impl Permit<'_> {
    /// Keeps the unit taken: nothing is given back when the permit goes; a later
    /// [`Semaphore::release`] (from any process) gives it back.
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // The unit this permit took is below the bound, so this cannot be refused; if another
        // process released extra units meanwhile, the count simply stays at its bound.
        let _ = self.semaphore.release();
    }
}
