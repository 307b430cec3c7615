//! `Yielding`: the middle step of waiting, between watching a word and sleeping on it.
//!
//! A waiter that sleeps on a futex must be woken, and the wake-up costs the *waker*: a system
//! call and, when the sleeper's core is idle, an interrupt to that core. On the development
//! machine (a 2-core VM) the producer of `queue_large_in_place` spent a fifth of its time in
//! that wake-up. A waiter that instead calls `sched_yield` in a loop stays runnable: on a quiet
//! machine the call returns at once (nothing else wants the core; 0.2 µs on average there),
//! the waiter sees the change within a microsecond or so, and the waker pays nothing. It also
//! reads the watched word about once a microsecond, not in a tight loop, so it does not pull
//! the cache line away from a running holder as spinning does. So before sleeping, a lock
//! waiter, and a queue waiter whose watch still pays, yield for a while:
//!
//! - at most a learned budget, [`YIELD_MAX`] at first: a wait that the yielding saw end keeps
//!   the full budget, one that outlasted it halves it, and a budget halved to nothing pauses
//!   yielding for [`BUSY_PAUSE`]; so a waiter whose waits are long (an idle queue) soon sleeps
//!   at once and burns no processor time;
//! - not on a machine whose cores are all busy, where a yielding waiter competes for a core
//!   with the process it waits for, and a sleeping one is woken straight onto a core: beside
//!   two busy processes on the two-core machine, yielding cut `queue_small` to a tenth. So a
//!   waiter yields only while the kernel counts no more runnable tasks than processors
//!   (`/proc/loadavg`, asked at most every 10 ms per thread), and a `sched_yield` that took
//!   longer than [`SLOW_YIELD`] (it ran another process for a time slice) pauses yielding for
//!   [`BUSY_PAUSE`]. (On the quiet development machine no yield in two seconds took a
//!   millisecond; beside two busy processes, a hundred a second did.)
//!
//! A queue waiter yields only after a watch that still pays (`QueueCore::spin`): beside a busy
//! process, `pingpong`'s peers are often not running, the watch learns to skip, and yielding
//! there cost a quarter of the round trips, where sleeping at once lets the kernel hand over.
//! The exception is a queue waiter whose peer is copying a big item outside the lock (see
//! `queue/claim.rs`): that peer is running for certain and ends the wait at its commit, so the
//! waiter yields for up to [`RUNNING_MAX`] without the learned budget
//! ([`Yielding::wait_for_running`]). Learning from such waits taught `queue_large_in_place`'s
//! consumer to sleep at once during the producer's first, slow pass over fresh ring pages, and
//! from then on every wake-up cost the producer a tenth of its time; yielding for the running
//! peer made it 1.23x faster (interleaved runs, medians of 5).
//!
//! Measured with interleaved runs of the two builds' benchmarks (medians of 5): quiet,
//! `queue_small` 1.54x, `queue_mpmc` 1.19x, `value_incr` 1.80x, `queue_large` 1.13x,
//! `pingpong` level; beside one busy process, `queue_small` 1.20x, `pingpong`, `value_incr`
//! and `queue_mpmc` within noise of level (0.84x to 0.92x in that run). The README's benchmark
//! tables are measured with this policy.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest a waiter yields before sleeping, in microseconds.
pub(crate) const YIELD_MAX: u32 = 200;
/// A `sched_yield` that takes longer than this ran another process.
pub(crate) const SLOW_YIELD: Duration = Duration::from_millis(1);
/// How long yielding stays off after a slow yield.
pub(crate) const BUSY_PAUSE: Duration = Duration::from_millis(100);
/// The longest a waiter yields for a peer known to be running (`wait_for_running`): a few
/// big copies' worth; a peer that takes longer (or died mid-copy) is slept on.
pub(crate) const RUNNING_MAX: Duration = Duration::from_millis(2);

/// A learned yielding budget: per queue handle, and per thread for locks.
#[derive(Debug)]
pub(crate) struct Yielding {
    /// Microseconds to yield for, at most.
    budget: AtomicU32,
    /// No yielding before this time (microseconds since `epoch()`), after a slow yield.
    off_until: AtomicU64,
}

/// How often a thread asks the kernel how many tasks are runnable.
const LOAD_CHECK: Duration = Duration::from_millis(10);

/// Whether the machine has a core to spare for a yielding (or watching) waiter (at most as
/// many runnable tasks as processors, this waiter included): asked of the kernel at most every
/// `LOAD_CHECK` per thread. Beside busy processes a yielding waiter competes for a core with
/// the process it waits for; with two busy processes on the two-core development machine,
/// yielding cut `queue_small` to a tenth of what sleeping does.
pub(crate) fn cores_to_spare(now: Instant) -> bool {
    thread_local! {
        static LAST: std::cell::Cell<Option<(Instant, bool)>> = const { std::cell::Cell::new(None) };
    }
    LAST.with(|last| match last.get() {
        Some((at, spare)) if now.saturating_duration_since(at) < LOAD_CHECK => spare,
        _ => {
            let spare = crate::sys::cores_to_spare();
            last.set(Some((now, spare)));
            spare
        }
    })
}

/// [`cores_to_spare`] for a hot path, such as a queue waiter about to watch: the answer of this
/// thread's last asking, asked again only every `HINT_EVERY`-th call (when, as always, at most
/// every `LOAD_CHECK` is the kernel asked). Reading the clock on every call cost a tenth of
/// `queue_small`'s throughput, whose two sides each wait about once per item.
pub(crate) fn cores_to_spare_hint() -> bool {
    const HINT_EVERY: u32 = 64;
    thread_local! {
        static HINT: std::cell::Cell<(u32, bool)> = const { std::cell::Cell::new((0, true)) };
    }
    HINT.with(|hint| {
        let (calls, spare) = hint.get();
        if calls % HINT_EVERY != 0 {
            hint.set((calls.wrapping_add(1), spare));
            return spare;
        }
        let spare = cores_to_spare(Instant::now());
        hint.set((calls.wrapping_add(1), spare));
        spare
    })
}

/// The time base of `off_until`.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros_since_epoch(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_micros()).unwrap_or(u64::MAX)
}

impl Yielding {
    pub(crate) const fn new() -> Yielding {
        Yielding {
            budget: AtomicU32::new(YIELD_MAX),
            off_until: AtomicU64::new(0),
        }
    }

    /// Yields the core until `done()` holds, the budget is spent or `deadline` passes; whether
    /// `done()` held. Returns at once (false) while yielding does not pay.
    pub(crate) fn wait(&self, deadline: Option<Instant>, done: impl FnMut() -> bool) -> bool {
        cores_to_spare(Instant::now()) && self.yield_until(deadline, done)
    }

    /// As [`wait`](Self::wait), for a peer known to be running and about to end the wait (a
    /// queue peer copying a big item outside the lock): yields for up to [`RUNNING_MAX`],
    /// neither using nor changing the learned budget, so that a peer's slow spell (its first
    /// pass over fresh pages, a big copy) does not teach this waiter to sleep at once. A slow
    /// yield, or a machine with no core to spare, still ends the yielding.
    pub(crate) fn wait_for_running(
        &self,
        deadline: Option<Instant>,
        done: impl FnMut() -> bool,
    ) -> bool {
        let start = Instant::now();
        if !cores_to_spare(start)
            || micros_since_epoch(start) < self.off_until.load(Ordering::Relaxed)
        {
            return false;
        }
        let end = deadline.map_or(start + RUNNING_MAX, |d| d.min(start + RUNNING_MAX));
        matches!(self.yield_loop(start, end, done), Yielded::Done)
    }

    /// As [`wait`](Self::wait), whatever the machine's load.
    fn yield_until(&self, deadline: Option<Instant>, done: impl FnMut() -> bool) -> bool {
        let budget = self.budget.load(Ordering::Relaxed);
        if budget == 0 {
            return false;
        }
        let start = Instant::now();
        if micros_since_epoch(start) < self.off_until.load(Ordering::Relaxed) {
            return false;
        }
        let mut end = start + Duration::from_micros(u64::from(budget));
        if let Some(d) = deadline {
            end = end.min(d);
        }
        match self.yield_loop(start, end, done) {
            Yielded::Done => {
                if budget != YIELD_MAX {
                    self.budget.store(YIELD_MAX, Ordering::Relaxed);
                }
                true
            }
            Yielded::Slow => false,
            Yielded::Spent(now) => {
                // Yielding did not see the wait end: yield half as long next time. A budget
                // halved to nothing comes back after a pause, as after a slow yield.
                let next = budget / 2;
                self.budget.store(next, Ordering::Relaxed);
                if next == 0 {
                    self.budget.store(YIELD_MAX, Ordering::Relaxed);
                    self.pause_until(now + BUSY_PAUSE);
                }
                false
            }
        }
    }

    /// Yields until `done()` holds, a yield takes longer than [`SLOW_YIELD`] (someone else
    /// needed the core: yielding pauses for [`BUSY_PAUSE`]) or `end` passes.
    fn yield_loop(&self, start: Instant, end: Instant, mut done: impl FnMut() -> bool) -> Yielded {
        let mut before = start;
        loop {
            std::thread::yield_now();
            if done() {
                return Yielded::Done;
            }
            let now = Instant::now();
            if now.saturating_duration_since(before) > SLOW_YIELD {
                self.pause_until(now + BUSY_PAUSE);
                return Yielded::Slow;
            }
            if now >= end {
                return Yielded::Spent(now);
            }
            before = now;
        }
    }

    /// No yielding before `until`.
    fn pause_until(&self, until: Instant) {
        self.off_until
            .store(micros_since_epoch(until), Ordering::Relaxed);
    }
}

/// How a round of yielding ended.
enum Yielded {
    /// `done()` held.
    Done,
    /// A yield ran another task for a while.
    Slow,
    /// The time given ran out, at this instant.
    Spent(Instant),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_wait_that_ends_while_yielding_is_seen_and_keeps_the_budget() {
        let y = Yielding::new();
        let flag = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_micros(20));
                flag.store(true, Ordering::Relaxed);
            });
            // The other thread may be slow to start on a busy machine: a miss is allowed,
            // a hit must have seen the flag.
            if y.yield_until(None, || flag.load(Ordering::Relaxed)) {
                assert!(flag.load(Ordering::Relaxed));
                assert_eq!(y.budget.load(Ordering::Relaxed), YIELD_MAX);
            }
        });
        let fresh = Yielding::new();
        assert!(
            fresh.yield_until(None, || true),
            "an ended wait is seen on the first yield"
        );
    }

    #[test]
    fn misses_halve_the_budget_then_pause_yielding() {
        let y = Yielding::new();
        let mut budgets = Vec::new();
        let start = Instant::now();
        while budgets.last() != Some(&0) && start.elapsed() < Duration::from_secs(5) {
            let before = y.budget.load(Ordering::Relaxed);
            assert!(!y.yield_until(None, || false));
            if y.off_until.load(Ordering::Relaxed) != 0 {
                budgets.push(0); // paused: a budget halved to nothing, or a slow yield
            } else {
                let after = y.budget.load(Ordering::Relaxed);
                assert_eq!(after, before / 2, "a miss halves the budget");
                budgets.push(after);
            }
        }
        assert_eq!(budgets.last(), Some(&0), "yielding pauses: {budgets:?}");
        // While paused, a wait returns at once without calling `done`.
        let t = Instant::now();
        assert!(!y.yield_until(None, || panic!("paused: not called")));
        assert!(t.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn waiting_for_a_running_peer_neither_uses_nor_changes_the_budget() {
        let y = Yielding::new();
        y.budget.store(0, Ordering::Relaxed); // as after many long waits
        let start = Instant::now();
        let wait = Duration::from_micros(300);
        // With no core to spare (a busy machine), it returns at once, false.
        if y.wait_for_running(None, || start.elapsed() >= wait) {
            assert!(start.elapsed() >= wait);
        }
        assert_eq!(
            y.budget.load(Ordering::Relaxed),
            0,
            "a budget of nothing is no bar"
        );
        // A peer that never ends the wait (one killed mid-copy) is not yielded for forever.
        assert!(!y.wait_for_running(None, || false));
        assert_eq!(y.budget.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_hint_keeps_its_answer_between_askings() {
        // A fresh test thread asks on its first call, then answers from it 63 times.
        let first = cores_to_spare_hint();
        for _ in 1..64 {
            assert_eq!(cores_to_spare_hint(), first);
        }
    }

    #[test]
    fn a_deadline_ends_the_yielding() {
        let y = Yielding::new();
        let deadline = Instant::now() + Duration::from_micros(30);
        assert!(!y.yield_until(Some(deadline), || false));
        assert!(Instant::now() >= deadline);
    }
}
