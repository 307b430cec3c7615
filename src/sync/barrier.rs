//! `Barrier`: n parties wait until all have arrived, across processes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::error::{BarrierTimeoutError, BarrierTryError, BrokenBarrier};
use super::raw_lock::RawLock;
use crate::error::{Error, Result};
use crate::shm::Shared;
use crate::shm::{Kind, shm_shared};
use crate::sys;

shm_shared! {
/// The state of a barrier in shared memory; all but `generation` change only under `lock`.
pub(crate) struct BarrierState {
    lock: RawLock,
    parties: AtomicU32,
    /// Parties waiting in the current pass.
    arrived: AtomicU32,
    /// The futex word: changes when a pass completes or the barrier breaks.
    generation: AtomicU32,
    /// The last generation that ended broken (waiters of it get `BrokenBarrier`), plus one; 0: none.
    broken_gen: AtomicU32,
    /// Set by `abort` or a timeout; cleared by `reset`.
    broken: AtomicU32,
    _reserved: AtomicU32,
}
}

type Action = Arc<dyn Fn() + Send + Sync>;

/// A barrier for `parties` processes or threads: Python's `multiprocessing.Barrier`. Each
/// [`wait`](Self::wait) blocks until all parties have called it, then all return, each with a
/// distinct index in `0..parties` (exactly one gets 0).
///
/// An action set with [`with_action`](Self::with_action) runs exactly once per pass, in the
/// party that arrives last, before anyone is released. (Closures cannot cross processes: give
/// the action to each handle that may arrive last.) [`abort`](Self::abort), or a `wait_timeout`
/// that expires, breaks the barrier for every waiter ([`BrokenBarrier`]) until
/// [`reset`](Self::reset). A party that dies while waiting never arrives: use timeouts where
/// parties may die.
///
/// ```
/// # fn main() -> shmkit::Result<()> {
/// use std::time::Duration;
///
/// let line = shmkit::Barrier::new(2)?;
/// let other = line.clone(); // a handle in another process, usually
/// let t = std::thread::spawn(move || other.wait_timeout(Duration::from_secs(10)));
/// let mine = line.wait_timeout(Duration::from_secs(10))?;
/// let theirs = t.join().unwrap()?;
/// assert_eq!(mine + theirs, 1); // indexes 0 and 1, one each
/// # Ok(()) }
/// ```
pub struct Barrier {
    shared: Arc<Shared<BarrierState>>,
    action: Option<Action>,
    /// The timeout of [`wait`](Self::wait) on this handle, if one was set.
    timeout: Option<Duration>,
}

impl Barrier {
    /// Creates an anonymous barrier for `parties` parties (at least 1).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for 0 parties; [`Error::Io`](crate::Error::Io).
    pub fn new(parties: u32) -> Result<Self> {
        Self::make(None, parties)
    }

    /// Creates the barrier `name` for `parties` parties; fails if it exists.
    ///
    /// # Errors
    /// As [`new`](Self::new), and [`Error::InvalidName`](crate::Error::InvalidName), [`Error::AlreadyExists`](crate::Error::AlreadyExists).
    pub fn create(name: &str, parties: u32) -> Result<Self> {
        Self::make(Some(name), parties)
    }

    fn make(name: Option<&str>, parties: u32) -> Result<Self> {
        if parties == 0 {
            return Err(Error::InvalidArgument {
                what: "a barrier needs at least one party".into(),
            });
        }
        let z = || AtomicU32::new(0);
        let state = BarrierState {
            lock: RawLock::new(),
            parties: AtomicU32::new(parties),
            arrived: z(),
            generation: z(),
            broken_gen: z(),
            broken: z(),
            _reserved: AtomicU32::new(0),
        };
        Ok(Barrier {
            shared: Shared::create(name, Kind::Barrier, state)?,
            action: None,
            timeout: None,
        })
    }

    /// Opens the existing barrier `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::KindMismatch`](crate::Error::KindMismatch), ...
    pub fn open(name: &str) -> Result<Self> {
        Ok(Barrier {
            shared: Shared::open(name, Kind::Barrier)?,
            action: None,
            timeout: None,
        })
    }

    /// This handle, running `action` when its party is the last to arrive in a pass.
    pub fn with_action(mut self, action: impl Fn() + Send + Sync + 'static) -> Self {
        self.action = Some(Arc::new(action));
        self
    }

    /// This handle, with a default timeout for [`wait`](Self::wait) (Python's
    /// `Barrier(parties, action, timeout)`): a wait that passes it breaks the barrier for every
    /// party and returns [`BrokenBarrier`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The barrier's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.shared.get().parties.load(Ordering::Relaxed)
    }

    fn locked<R>(&self, f: impl FnOnce(&BarrierState) -> R) -> R {
        let s = self.shared.get();
        // The barrier's lock is held only for a few loads and stores; a holder that died is
        // taken over (its state changes are single stores), and nothing else can fail here.
        if s.lock.lock().is_ok() {
            s.lock.set_poisoned(false);
            let r = f(s);
            s.lock.release_mine(); // locked just above by this thread
            r
        } else {
            f(s) // Deadlock: this thread holds it already (cannot happen: never held across calls)
        }
    }

    fn break_gen(s: &BarrierState, generation: u32) {
        s.broken.store(1, Ordering::Relaxed);
        s.broken_gen
            .store(generation.wrapping_add(1), Ordering::Relaxed);
        s.arrived.store(0, Ordering::Relaxed);
        s.generation
            .store(generation.wrapping_add(1), Ordering::Release);
        sys::futex_wake(&s.generation, i32::MAX);
    }

    /// Waits until every party has arrived; returns this party's index in `0..parties`.
    ///
    /// # Errors
    /// [`BrokenBarrier`] if the barrier is or becomes broken (also when this handle's
    /// [default timeout](Self::with_timeout) passes).
    pub fn wait(&self) -> std::result::Result<u32, BrokenBarrier> {
        // A timeout (the handle's default, if set) breaks the barrier: reported as broken.
        let deadline = self.timeout.and_then(|t| Instant::now().checked_add(t));
        self.wait_until(deadline).map_err(|_| BrokenBarrier)
    }

    /// As [`wait`](Self::wait), for at most `timeout`; on timeout the barrier breaks for every
    /// party, as in Python.
    ///
    /// # Errors
    /// [`BarrierTimeoutError::Timeout`] if this party's timeout passed (it broke the barrier);
    /// [`BarrierTimeoutError::Broken`] if it is or becomes broken otherwise.
    pub fn wait_timeout(&self, timeout: Duration) -> std::result::Result<u32, BarrierTimeoutError> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// Passes the barrier only if this party is the last to arrive (every other party is
    /// waiting); otherwise does not arrive at all.
    ///
    /// # Errors
    /// [`BarrierTryError::WouldBlock`] if other parties have yet to arrive (nothing changed);
    /// [`BarrierTryError::Broken`] if the barrier is broken.
    pub fn try_wait(&self) -> std::result::Result<u32, BarrierTryError> {
        self.locked(|s| {
            if s.broken.load(Ordering::Relaxed) != 0 {
                return Err(BarrierTryError::Broken);
            }
            let index = s.arrived.load(Ordering::Relaxed);
            if index.saturating_add(1) < s.parties.load(Ordering::Relaxed) {
                return Err(BarrierTryError::WouldBlock);
            }
            Ok(self.pass(s, index))
        })
    }

    /// Completes a pass as its last party, `index`: runs the action and releases the others.
    /// Under the lock.
    fn pass(&self, s: &BarrierState, index: u32) -> u32 {
        if let Some(action) = &self.action {
            action();
        }
        let generation = s.generation.load(Ordering::Relaxed);
        s.arrived.store(0, Ordering::Relaxed);
        s.generation
            .store(generation.wrapping_add(1), Ordering::Release); // SYNC: barrier
        sys::futex_wake(&s.generation, i32::MAX);
        index
    }

    fn wait_until(
        &self,
        deadline: Option<Instant>,
    ) -> std::result::Result<u32, BarrierTimeoutError> {
        let arrival = self.locked(|s| {
            if s.broken.load(Ordering::Relaxed) != 0 {
                return Err(BarrierTimeoutError::Broken);
            }
            let generation = s.generation.load(Ordering::Relaxed);
            let index = s.arrived.load(Ordering::Relaxed);
            // `arrived` comes from shared memory: saturate, never overflow, on a garbage count.
            if index.saturating_add(1) >= s.parties.load(Ordering::Relaxed) {
                return Ok(Err(self.pass(s, index)));
            }
            s.arrived.store(index.saturating_add(1), Ordering::Relaxed);
            Ok(Ok((generation, index)))
        })?;
        let (generation, index) = match arrival {
            Err(last) => return Ok(last),
            Ok(waiting) => waiting,
        };
        let s = self.shared.get();
        let mut timed_out = false;
        loop {
            let now_gen = s.generation.load(Ordering::Acquire); // SYNC: barrier
            if now_gen != generation {
                return if s.broken_gen.load(Ordering::Relaxed) != generation.wrapping_add(1) {
                    Ok(index)
                } else if timed_out {
                    Err(BarrierTimeoutError::Timeout)
                } else {
                    Err(BarrierTimeoutError::Broken)
                };
            }
            let timeout = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => {
                        timed_out |= self.locked(|s| {
                            let ours = s.generation.load(Ordering::Relaxed) == generation;
                            if ours {
                                Self::break_gen(s, generation);
                            }
                            ours
                        });
                        continue;
                    }
                },
            };
            sys::futex_wait(&s.generation, generation, timeout);
        }
    }

    /// Breaks the barrier: every waiter, and every later `wait` until [`reset`](Self::reset),
    /// gets [`BrokenBarrier`].
    pub fn abort(&self) {
        self.locked(|s| Self::break_gen(s, s.generation.load(Ordering::Relaxed)));
    }

    /// Makes a broken barrier usable again; parties waiting now get [`BrokenBarrier`].
    pub fn reset(&self) {
        self.locked(|s| {
            if s.arrived.load(Ordering::Relaxed) > 0 {
                Self::break_gen(s, s.generation.load(Ordering::Relaxed));
            }
            s.broken.store(0, Ordering::Relaxed);
        });
    }

    /// Whether the barrier is broken.
    #[doc(alias = "broken")]
    pub fn is_broken(&self) -> bool {
        self.shared.get().broken.load(Ordering::Relaxed) != 0
    }

    /// Parties waiting in the current pass (a snapshot).
    pub fn n_waiting(&self) -> u32 {
        self.shared.get().arrived.load(Ordering::Relaxed)
    }
}

impl Clone for Barrier {
    fn clone(&self) -> Self {
        Barrier {
            shared: Arc::clone(&self.shared),
            action: self.action.clone(),
            timeout: self.timeout,
        }
    }
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("name", &self.name())
            .field("parties", &self.parties())
            .finish()
    }
}

impl crate::shm::by_name::Handle for Barrier {
    fn hand_over(&self) -> std::sync::Arc<dyn crate::shm::by_name::HandOver> {
        self.shared.clone()
    }
}

crate::shm::serde_by_name!(impl[] Barrier);
