//! Copying a big item outside the queue's lock. A get claims the ring's oldest frame under
//! the lock, copies it out (or runs `get_with`'s closure on it) unlocked, and commits under the
//! lock again; a put reserves the ring's space at `tail` under the lock, copies its item in
//! unlocked (or runs `put_with`'s closure), and commits under the lock again.
//!
//! # Why
//! A get copies its item out under the lock, and a put copies its item in under it. For a
//! megabyte-sized item each copy takes tens of microseconds, during which the other side
//! waits: producer and consumer take turns instead of copying at the same time. Copying big
//! items outside the lock lets the consumer copy item `n` out while the producer copies item
//! `n + k` in. Items under [`OUTSIDE_MIN`] bytes are copied under the lock as before, where a
//! second lock round trip would cost more than the overlap gains.
//!
//! # Why it is safe
//! A claim is one word in the control block, `reader` for a get and `writer` for a put: the
//! claiming thread's identity (see `sys::thread_identity`), 0 when there is none. Each is
//! stored and cleared under its side's lock (the get lock for `reader`, the put lock for
//! `writer`, see "Two locks" in `core.rs`), so at most one get and one put copy outside the
//! locks at once. (With two locks a put and a get no longer wait for each other's copy; the
//! claims still keep a big copy from holding a lock that leases, closing and sleepers need.)
//! - A claimed frame stays between `head` and `tail` until its commit: putters write only
//!   beyond `tail`, and every get that takes the oldest frame (`wait_for_item`, `next`, and
//!   the batches and leased gets through them) first asks [`QueueCore::head_claimed`] and
//!   waits while the claim stands. No one else reads, takes or overwrites it.
//! - A reserved space lies beyond `tail`, where gets never read, and every put first asks
//!   [`QueueCore::tail_claimed`] and waits while the reservation stands: `tail` does not
//!   move, and no one else writes there. Gets only move `head`, which adds free space.
//! - The commits are the single stores of every get and put (see `core.rs`): `head` after the
//!   item was read, `tail` after the frame's headers were written, under the lock. The claim
//!   is cleared after the commit.
//!
//! # A claimer that dies
//! A claimer killed while it copies leaves its claim behind, naming a dead thread. The next
//! get (for a reader) or put (for a writer) that finds it checks (at most every
//! [`CLAIM_CHECK`] per handle: a `/proc` read) and drops it. A reader had not taken its
//! item, so the next get takes it; a writer had not put its item, and its bytes beyond `tail`
//! are never read. So a killed consumer either took its item or left it for the next one, and
//! a killed producer either put its item or did not, as for copies under the lock. Waiters
//! behind a claim wake every [`CLAIM_POLL`] to check. A claimer killed between its commit and
//! clearing its claim leaves a claim whose work is done; it is dropped the same way.
//!
//! A claimer whose closure panics, whose commit fails, or (a writer) whose queue was closed
//! meanwhile lets go of its claim without committing: nothing was taken or put.
//!
//! A thread that waits on the same queue while it holds a claim (a `get`, or a `put` waiting
//! for room, inside `get_with`'s or `put_with`'s closure) would wait for itself: it gets the
//! lock's deadlock error, as it does for an item copied under the lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::core::{Fail, Held, Positions, QueueCore, Wait};
use super::ring::{self, HEADER, INLINE};
use crate::error::Error;
use crate::sys;

/// Items of at least this many bytes are copied outside the lock. Copying 64 KiB takes
/// microseconds, long beside a second lock round trip (tens of nanoseconds uncontended).
pub(crate) const OUTSIDE_MIN: u64 = 64 << 10;
/// At most how often a handle checks whether a claim's holder is alive.
const CLAIM_CHECK: Duration = Duration::from_millis(20);
/// How long a waiter behind a claim sleeps at most before checking its holder again.
pub(super) const CLAIM_POLL: Duration = Duration::from_millis(50);

/// The deadlock error a thread gets for waiting on a queue it holds a claim on.
fn waits_for_itself() -> Fail {
    Fail::Error(Error::Op(Box::new(crate::sync::LockError::<()>::Deadlock)))
}

impl QueueCore {
    /// Under the lock: whether the ring's oldest frame is claimed by another thread's get
    /// copying it outside the lock. A claim whose holder died is dropped. Errors if this
    /// thread holds the claim: it would wait for itself.
    #[inline]
    pub(super) fn head_claimed(&self, _held: &Held<'_>) -> Result<bool, Fail> {
        self.claim_stands(&self.ctl().reader)
    }

    /// Under the lock: whether another thread's put has reserved the space at `tail`, as for
    /// [`head_claimed`](Self::head_claimed).
    #[inline]
    pub(super) fn tail_claimed(&self, _held: &Held<'_>) -> Result<bool, Fail> {
        self.claim_stands(&self.ctl().writer)
    }

    #[inline]
    fn claim_stands(&self, word: &AtomicU64) -> Result<bool, Fail> {
        let holder = word.load(Ordering::Relaxed);
        if holder == 0 {
            return Ok(false);
        }
        self.check_claim(word, holder)
    }

    #[cold]
    fn check_claim(&self, word: &AtomicU64, holder: u64) -> Result<bool, Fail> {
        if holder == sys::thread_identity() {
            return Err(waits_for_itself());
        }
        let now = super::slots::now_ms();
        let last = self.claims_checked.load(Ordering::Relaxed);
        if now.saturating_sub(last) < CLAIM_CHECK.as_millis() as u64 {
            return Ok(true);
        }
        self.claims_checked.store(now, Ordering::Relaxed);
        if crate::sync::holder_dead(holder) {
            word.store(0, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }

    /// Waits for a claim to be committed or let go (watching `counter`, then sleeping on
    /// `list`, waking every [`CLAIM_POLL`] to check its holder): out of line, off the paths
    /// of gets and puts that find no claim.
    #[cold]
    #[inline(never)]
    pub(super) fn wait_behind_claim<'a>(
        &'a self,
        held: Held<'a>,
        spun: &mut bool,
        counter: &AtomicU64,
        list: &crate::sync::Waitlist,
        wait: Wait,
    ) -> Result<Held<'a>, Fail> {
        self.wait_turn(held, spun, counter, list, wait, Some(CLAIM_POLL))
    }

    /// Whether the peer a waiter watching `counter` waits for is copying a big item outside
    /// the lock right now, and so is running: for a getter (watching `puts`) a put holding a
    /// reservation, for a putter (watching `gets`) a get holding a claim.
    pub(super) fn peer_copying(&self, counter: &AtomicU64) -> bool {
        let ctl = self.ctl();
        let peer = if std::ptr::eq(counter, &ctl.puts) {
            &ctl.writer
        } else if std::ptr::eq(counter, &ctl.gets) {
            &ctl.reader
        } else {
            return false;
        };
        peer.load(Ordering::Relaxed) != 0
    }

    /// Errors if this thread holds a claim on this queue: a caller about to sleep on the
    /// queue would wait for itself.
    pub(super) fn not_claiming(&self) -> Result<(), Fail> {
        let ctl = self.ctl();
        let (r, w) = (
            ctl.reader.load(Ordering::Relaxed),
            ctl.writer.load(Ordering::Relaxed),
        );
        if r | w != 0 && (r == sys::thread_identity() || w == sys::thread_identity()) {
            return Err(waits_for_itself());
        }
        Ok(())
    }

    /// Takes the ring's oldest frame, `found` (an INLINE item at `pos`), copying it outside
    /// the lock: claims it, unlocks, passes its bytes to `read`, and commits the get under
    /// the lock again.
    #[inline(never)]
    pub(super) fn take_outside<R>(
        &self,
        held: Held<'_>,
        found: ring::Found,
        pos: Positions,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, Fail> {
        let me = sys::thread_identity();
        self.ctl().reader.store(me, Ordering::Relaxed);
        drop(held);
        let mut claim = Claim {
            core: self,
            me,
            committed: false,
            side: Side::Read { found, pos },
        };
        let value = read(claim.bytes());
        claim.commit()?;
        Ok(value)
    }

    /// Puts an INLINE frame of `len` payload bytes at placement `pl` after `tail` (as item
    /// `seq`), which `fill` writes outside the lock: reserves the space, unlocks, fills it,
    /// and commits the put under the lock again. The caller has checked the room, `maxsize`,
    /// that the queue is open and that no other put holds a reservation.
    #[inline(never)]
    pub(super) fn put_outside(
        &self,
        held: Held<'_>,
        tail: u64,
        pl: ring::Placement,
        seq: u64,
        len: u64,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), Fail> {
        let me = sys::thread_identity();
        self.ctl().writer.store(me, Ordering::Relaxed);
        drop(held);
        let mut claim = Claim {
            core: self,
            me,
            committed: false,
            side: Side::Write { tail, pl, seq, len },
        };
        fill(claim.space());
        claim.commit()
    }
}

/// A claim held by this thread while it copies an item outside the lock. Dropped without
/// [`commit`](Claim::commit), it lets go: nothing is taken or put.
struct Claim<'a> {
    core: &'a QueueCore,
    me: u64,
    committed: bool,
    side: Side,
}

enum Side {
    /// A get of the oldest frame, `found`, at `pos`.
    Read { found: ring::Found, pos: Positions },
    /// A put of item `seq`, `len` bytes, at placement `pl` after `tail`.
    Write {
        tail: u64,
        pl: ring::Placement,
        seq: u64,
        len: u64,
    },
}

impl Claim<'_> {
    fn word(&self) -> &AtomicU64 {
        match self.side {
            Side::Read { .. } => &self.core.ctl().reader,
            Side::Write { .. } => &self.core.ctl().writer,
        }
    }

    /// The claimed item's bytes (a reader's).
    fn bytes(&self) -> &[u8] {
        let Side::Read { found, .. } = self.side else {
            return &[];
        };
        let (at, len) = (found.at + HEADER, u64::from(found.header.len));
        assert!(at + len <= self.core.cap);
        // SAFETY: in bounds (asserted). The frame lies between `head` and `tail`, and the
        // claim keeps it there: `head` moves past it only at this claim's commit, putters write
        // only beyond `tail`, and every other get waits while the claim stands (see the
        // module's docs). So no shmkit process writes these bytes while this borrow, tied to
        // the claim, lives.
        unsafe {
            std::slice::from_raw_parts(self.core.ring_ptr().add(at as usize).as_ptr(), len as usize)
        }
    }

    /// The reserved payload space (a writer's).
    fn space(&mut self) -> &mut [u8] {
        let Side::Write { pl, len, .. } = self.side else {
            return &mut [];
        };
        let at = pl.at + HEADER;
        assert!(at + len <= self.core.cap);
        // SAFETY: in bounds (asserted). The space lies beyond `tail`, where no get reads, and
        // the reservation keeps `tail` where it is and every other put away (see the module's
        // docs). So no shmkit process reads or writes these bytes while this borrow, tied to
        // an exclusive borrow of the claim, lives.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.core.ring_ptr().add(at as usize).as_ptr(),
                len as usize,
            )
        }
    }

    /// Commits the get or put under the lock, then clears the claim.
    fn commit(&mut self) -> Result<(), Fail> {
        let core = self.core;
        let ctl = core.ctl();
        let held = core.lock(Wait::Forever)?;
        let (head, tail, puts, gets) = core.state(&held)?;
        if self.word().load(Ordering::Relaxed) != self.me {
            return Err(core.corrupt("a claim was taken from its live holder"));
        }
        let (putters, getters) = match self.side {
            Side::Read { found, pos } => {
                if head != pos.head || gets != pos.gets {
                    return Err(core.corrupt(format!(
                        "a claimed item moved: head {head} (was {}), gets {gets} (was {})",
                        pos.head, pos.gets
                    )));
                }
                // SYNC: commit-get. The item has been read.
                ctl.head.store(head + found.advance, Ordering::Release);
                ctl.gets.store(gets + 1, Ordering::Release);
                // Room for putters; and a getter that waited behind the claim may take the
                // next item.
                (u32::MAX, 1)
            }
            Side::Write {
                tail: at_tail,
                pl,
                seq,
                len,
            } => {
                if tail != at_tail || puts != seq {
                    return Err(core.corrupt(format!(
                        "a reserved space moved: tail {tail} (was {at_tail}), puts {puts} (was {seq})"
                    )));
                }
                if ctl.closed.load(Ordering::Relaxed) != 0 {
                    return Err(Fail::Closed);
                }
                core.write_headers(&held, tail, pl, seq, INLINE, len);
                // SYNC: commit-put. The frame is written.
                let size = ring::frame_size(len);
                ctl.tail.store(pl.new_tail(tail, size), Ordering::Release);
                ctl.puts.store(puts + 1, Ordering::Release);
                // A getter; and a putter that waited behind the reservation.
                (1, 1)
            }
        };
        self.word().store(0, Ordering::Relaxed);
        self.committed = true;
        let (putters, getters) = (ctl.not_full.claim(putters), ctl.not_empty.claim(getters));
        drop(held);
        ctl.not_full.wake(putters);
        ctl.not_empty.wake(getters);
        Ok(())
    }
}

impl Drop for Claim<'_> {
    /// Lets go of an uncommitted claim (a closure that panicked, a commit that failed, a
    /// queue closed meanwhile): nothing is taken or put.
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let ctl = self.core.ctl();
        let word = self.word();
        match self.core.lock(Wait::Forever) {
            Ok(held) => {
                if word.load(Ordering::Relaxed) == self.me {
                    word.store(0, Ordering::Relaxed);
                }
                // Whoever waited behind the claim may go on.
                let (putters, getters) = (ctl.not_full.claim(1), ctl.not_empty.claim(1));
                drop(held);
                ctl.not_full.wake(putters);
                ctl.not_empty.wake(getters);
            }
            // No lock to be had (a corrupt segment): the claim is this thread's alone to
            // clear, which one atomic exchange does; waiters notice at their next poll.
            Err(_) => {
                let _ = word.compare_exchange(self.me, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }
}
