//! `QueueCore`: the byte-level queue in a shared segment: its control block, its two locks,
//! blocking, the commit order that makes it crash-safe, and the repair after a holder died. It
//! knows nothing of serde; `Queue<T>` puts serialised items through it.
//!
//! # Two locks
//! Putters and getters take different locks, as in Michael and Scott's two-lock queue: the
//! *put lock* guards `tail`, `puts` and the free space beyond `tail`; the *get lock* guards
//! `head`, `gets` and the frames between `head` and `tail`. A put and a get run at once, and
//! contend only with their own kind. Everything else (leases and their slots, the repair,
//! closing, `task_done`, spills, registering a sleeper) holds both, taken get lock first.
//!
//! Each side reads the other's pair without its lock, so the commits order their stores: a
//! put stores `tail`, then `puts`; a get `head`, then `gets` (Release), and a reader reads the
//! count before the position (Acquire). A getter that sees item `n` counted so sees its frame
//! inside `tail`, and a putter that sees a get counted sees its frame's space free. Both pairs
//! only grow, so an old reading of the other side is a past state: it can make the queue look
//! fuller to a putter or emptier to a getter than it is, never the reverse. So each handle
//! keeps its last reading of the other side and reads it again only when it seems to have to
//! wait (or when the reading does not fit its own side, which another handle's progress can
//! cause): in a steady stream neither side touches the other's cache lines but for the items.
//! Each side's lock and its published pair lie in separate cache lines, so a waiter watching
//! the other side's count does not pull the lock's line away from it.
//!
//! Measured with interleaved runs against the one-lock queue (medians of 5, quiet 2-core
//! machine): `queue_mpmc` 3.6x (2.2x the C reference's one-mutex queue), `queue_small` 1.5x,
//! `pingpong` 1.7x. Without the per-handle reading (each side reading the other's line on
//! every operation), two locks were slower than one: `queue_small` 0.68x, `queue_mpmc` 0.85x.
//! The readings are stored with plain stores under the lock: an atomic swap, whose full fence
//! then sits on every wait, halved `pingpong`.
//!
//! # Crash safety
//! Every change happens under a lock (items of 64 KiB and more are copied in and out outside
//! it, under a claim that the lock hands out: see `claim.rs`), and each operation has one
//! commit point, a single store: `tail` for a put (the frame is written before it, so bytes
//! beyond `tail` are never read), `head` for a get (the item is copied out before it). The
//! counters `puts` and `gets` are stored after the commit; if a holder dies between the two,
//! the next locker learns it from the lock (owner died), lets it go and takes both locks, and
//! [`QueueCore::repair`] recomputes them from the sequence numbers of the frames between
//! `head` and `tail`. So a killed producer either put its item or did not, and a killed
//! consumer either took its item (it is gone with it) or left it for the next consumer: never
//! a torn item, never a duplicate. A getter waiting beside a dead putter's lock finds it when
//! it takes both locks to sleep, and the repair counts the item the putter committed.
//!
//! # Waiting
//! Getters sleep on the futex word of `not_empty`, putters on `not_full`, joiners on `joined`,
//! each after registering holding both locks and reading the word's value. A waker claims
//! under its own side's lock, after its commit (a putter wakes `not_empty`, a getter
//! `not_full`), so no claim falls between a sleeper's last check and its registration. It
//! changes the word and calls `futex_wake` only for sleepers that no wake-up is already on its
//! way to (see `Waitlist`): no system call when nobody waits, one per sleeper when some do. A
//! waiter killed in its sleep stays counted, which costs a spare wake-up now and then.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use super::claim::{CLAIM_POLL, OUTSIDE_MIN};
use super::ring::{self, FrameHeader, HEADER, INLINE, PAD, SPILL, SPILL_REF_LEN, SpillRef};
use super::slots::{self, SLOT_SIZE};
use super::spill;
use crate::error::{Error, Result};
use crate::shm::{Expect, Kind, MAX_NAME_LEN, Segment, SegmentName, Spec, TypeInfo, shm_shared};
use crate::sync::{Acquired, LockFailure, RawLock, Waitlist, Yielding};

pub(crate) use super::wait::{Fail, Wait};
use crate::sys;

/// How long a `try_` operation waits for the queue's lock (held only for a copy, normally).
const TRY_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(20);

/// Watching before sleeping, learned per handle (see `QueueCore::spin`): at most `SPIN_MAX`
/// rounds; while watching does not pay, a full watch only every `SPIN_RETRY`-th wait, to
/// notice when it pays again.
const SPIN_MAX: u32 = 2000;
const SPIN_RETRY: u32 = 16;

shm_shared! {
/// The queue's state, at the start of the segment's control block: two cache lines for each
/// side (see "Two locks" in the module docs), one with its lock and what only that side reads,
/// and one with the position and count it publishes to the other side (which a waiter of the
/// other side watches); then what both read and seldom write.
pub(crate) struct Control {
    /// The put lock: held to change `tail` and `puts` and to write beyond `tail`. Taken after
    /// `get_lock` by a holder of both.
    pub(super) put_lock: RawLock,
    /// The thread writing an item into the space at `tail` outside the lock, or 0 (see
    /// `queue/claim.rs`).
    pub(super) writer: AtomicU64,
    pub(super) _put_lock_line: [AtomicU64; 5],
    /// Byte position after the newest frame. Commit point of a put.
    pub(super) tail: AtomicU64,
    /// Items ever put (the next item's sequence number).
    pub(super) puts: AtomicU64,
    pub(super) _puts_line: [AtomicU64; 6],
    /// The get lock: held to change `head` and `gets` and to read between `head` and `tail`.
    /// Every other change is made holding both locks.
    pub(super) get_lock: RawLock,
    /// Slots HELD by a consumer (a hint kept with the slots; repaired from them). In the get
    /// lock's cache line, which every get reads anyway.
    pub(super) held: AtomicU32,
    /// Slots RETURNED, waiting for redelivery (a hint, as `held`).
    pub(super) returned: AtomicU32,
    /// The thread reading the ring's oldest item outside the lock, or 0 (ditto).
    pub(super) reader: AtomicU64,
    pub(super) _get_lock_line: [AtomicU64; 4],
    /// Byte position of the oldest frame. Commit point of a get.
    pub(super) head: AtomicU64,
    /// Items ever taken.
    pub(super) gets: AtomicU64,
    pub(super) _gets_line: [AtomicU64; 6],
    /// `task_done` calls (JoinableQueue).
    pub(super) done: AtomicU64,
    /// Ring bytes; fixed at creation.
    pub(super) capacity: AtomicU64,
    /// Most items at once; 0: no limit. Fixed at creation.
    pub(super) maxsize: AtomicU64,
    pub(super) closed: AtomicU32,
    /// Getters waiting for an item.
    pub(super) not_empty: Waitlist,
    /// Putters waiting for room.
    pub(super) not_full: Waitlist,
    /// Joiners waiting for every task to be done.
    pub(super) joined: Waitlist,
    /// Lease slots after the ring; fixed at creation (see `queue/slots.rs`).
    pub(super) slots: AtomicU32,
    /// Deliveries after which a returned item is dead-lettered; 0: no limit.
    pub(super) max_deliveries: AtomicU32,
    /// The last lease id given out.
    pub(super) lease_ids: AtomicU64,
    /// Items moved to the dead-letter queue.
    pub(super) dead_lettered: AtomicU64,
    /// Items dropped after their last delivery, with no dead-letter queue to take them.
    pub(super) discarded: AtomicU64,
    /// Lease getters waiting for a free slot.
    pub(super) slot_free: Waitlist,
    /// The dead-letter queue: its kind (0: none), and its name's length and bytes.
    pub(super) dlq_kind: AtomicU32,
    pub(super) dlq_len: AtomicU32,
    pub(super) _reserved: AtomicU32,
    pub(super) dlq_name: [AtomicU8; MAX_NAME_LEN],
}
}

/// Where each side's words start in the control block: a cache line apart.
const _: () = assert!(std::mem::offset_of!(Control, tail) == 64);
const _: () = assert!(std::mem::offset_of!(Control, get_lock) == 128);
const _: () = assert!(std::mem::offset_of!(Control, head) == 192);
const _: () = assert!(std::mem::offset_of!(Control, done) == 256);
const _: () = assert!(std::mem::size_of::<Control>() == 576);
/// `shmkit ls` and `inspect` see a queue's counters (`counters`) in the control bytes they copy.
const _: () = assert!(
    std::mem::offset_of!(Control, closed) + 4 <= crate::shm::CONTROL_PEEK as usize
        && GET_LOCK_AT + 16 <= crate::shm::CONTROL_PEEK as usize
);

/// Where the get lock lies in the control block (the put lock is at its start), for
/// inspection from outside.
pub(crate) const GET_LOCK_AT: usize = std::mem::offset_of!(Control, get_lock);

/// A queue's counters as read from a copy of its control block's bytes, for inspection from
/// outside (`shmkit inspect`); untrusted: any bytes give numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) head: u64,
    pub(crate) tail: u64,
    pub(crate) puts: u64,
    pub(crate) gets: u64,
    pub(crate) done: u64,
    pub(crate) capacity: u64,
    pub(crate) maxsize: u64,
    pub(crate) closed: bool,
    /// Items held under a lease, and items handed back for redelivery.
    pub(crate) leased: u32,
    pub(crate) returned: u32,
}

/// The counters in `bytes`, a copy of a queue's control block (after its 16-byte lock).
pub(crate) fn counters(bytes: &[u8]) -> Option<Counters> {
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    use std::mem::offset_of;
    Some(Counters {
        head: u64_at(offset_of!(Control, head))?,
        tail: u64_at(offset_of!(Control, tail))?,
        puts: u64_at(offset_of!(Control, puts))?,
        gets: u64_at(offset_of!(Control, gets))?,
        leased: u32_at(offset_of!(Control, held))?,
        returned: u32_at(offset_of!(Control, returned))?,
        done: u64_at(offset_of!(Control, done))?,
        capacity: u64_at(offset_of!(Control, capacity))?,
        maxsize: u64_at(offset_of!(Control, maxsize))?,
        closed: u32_at(offset_of!(Control, closed))? != 0,
    })
}

/// A queue's shared state (opaque: it appears in the sealed trait behind `shmkit::wait`).
pub struct QueueCore {
    ctl: NonNull<Control>,
    ring: NonNull<u8>,
    pub(super) cap: u64,
    /// Lease slots, after the ring (read once: the stored count is not trusted later).
    pub(super) slots: u32,
    pub(super) name: SegmentName,
    pub(super) kind: Kind,
    pub(super) ty: TypeInfo,
    /// The dead-letter queue, once opened by this process.
    pub(super) dlq: std::sync::Mutex<Option<std::sync::Arc<QueueCore>>>,
    /// When this handle last checked lease holders (milliseconds since the epoch).
    pub(super) holders_checked: AtomicU64,
    /// When this handle last looked for abandoned spills (seconds since the epoch).
    pub(super) spills_checked: AtomicU64,
    /// When this handle last checked a claim's reader (milliseconds since the epoch).
    pub(super) claims_checked: AtomicU64,
    /// The serialised size of the last item put through this handle's serde path: while it is
    /// at most `IN_PLACE_MAX`, items are serialised straight into the ring (see `typed.rs`).
    last_item_len: AtomicU64,
    /// The other side's counters as this handle last read them (see [`QueueCore::state`]):
    /// `gets` and `head`, read and written under the put lock; `puts` and `tail`, under the
    /// get lock.
    seen_gets: AtomicU64,
    seen_head: AtomicU64,
    seen_puts: AtomicU64,
    seen_tail: AtomicU64,
    /// Rounds to watch before sleeping, learned, and waits so far (see `spin`).
    spin_budget: AtomicU32,
    spin_calls: AtomicU32,
    /// Yielding after the watch, before sleeping, learned (see `sync::Yielding`).
    yielding: Yielding,
    /// Owns the mapping the pointers point into; dropped last.
    seg: Segment,
}

// SAFETY: the pointers point into the shared mapping owned by `seg`, which lives as long as the
// core; the control block is atomics, and the ring is read and written only under its lock.
unsafe impl Send for QueueCore {}
// SAFETY: as for Send.
unsafe impl Sync for QueueCore {}

/// Which of the queue's two locks a [`Held`] holds (see "Two locks" in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// The put lock: a put's fast path.
    Put,
    /// The get lock: a get's fast path.
    Get,
    /// Both, taken get lock first: everything else.
    Both,
}

/// One or both of the queue's locks, held; released on drop.
pub(super) struct Held<'a> {
    core: &'a QueueCore,
    /// The locks held.
    side: Side,
    /// The locks the operation takes again after it waited (`side` may be more after an
    /// upgrade, see [`QueueCore::upgrade`]).
    fast: Side,
}

impl Held<'_> {
    /// Whether the put lock is held: the space beyond `tail` may be written.
    #[inline]
    pub(super) fn puts(&self) -> bool {
        self.side != Side::Get
    }

    /// Whether the get lock is held: the frames between `head` and `tail` may be read.
    #[inline]
    pub(super) fn gets(&self) -> bool {
        self.side != Side::Put
    }

    /// Whether both locks are held: anything may be changed.
    #[inline]
    pub(super) fn both(&self) -> bool {
        self.side == Side::Both
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let ctl = self.core.ctl();
        // SAFETY: a `Held` exists only while this thread holds the locks its `side` names.
        unsafe {
            if self.side != Side::Get {
                ctl.put_lock.unlock();
            }
            if self.side != Side::Put {
                ctl.get_lock.unlock();
            }
        }
    }
}

impl QueueCore {
    /// Creates a queue segment of `kind` with a ring of `capacity` bytes.
    pub(crate) fn create(
        name: SegmentName,
        kind: Kind,
        ty: TypeInfo,
        maxsize: usize,
        capacity: usize,
    ) -> Result<Self> {
        let cap = ring::capacity_for(capacity as u64).ok_or_else(|| Error::InvalidArgument {
            what: format!(
                "a queue's capacity must be {} to {} bytes, not {capacity}",
                ring::MIN_CAPACITY,
                ring::MAX_CAPACITY
            ),
        })?;
        let nslots = slots::slots_for(cap);
        let spec = Spec::new(
            kind,
            ty,
            cap + u64::from(nslots) * SLOT_SIZE,
            sys::page_size() as u64,
        )?;
        let seg = Segment::create(name.clone(), &spec, |seg| {
            let ctl: *const Control = seg.control::<Control>()?;
            let fresh = Control {
                put_lock: RawLock::new(),
                writer: AtomicU64::new(0),
                _put_lock_line: [const { AtomicU64::new(0) }; 5],
                tail: AtomicU64::new(0),
                puts: AtomicU64::new(0),
                _puts_line: [const { AtomicU64::new(0) }; 6],
                get_lock: RawLock::new(),
                held: AtomicU32::new(0),
                returned: AtomicU32::new(0),
                reader: AtomicU64::new(0),
                _get_lock_line: [const { AtomicU64::new(0) }; 4],
                head: AtomicU64::new(0),
                gets: AtomicU64::new(0),
                _gets_line: [const { AtomicU64::new(0) }; 6],
                done: AtomicU64::new(0),
                capacity: AtomicU64::new(cap),
                maxsize: AtomicU64::new(maxsize as u64),
                closed: AtomicU32::new(0),
                not_empty: Waitlist::new(),
                not_full: Waitlist::new(),
                joined: Waitlist::new(),
                slots: AtomicU32::new(nslots),
                max_deliveries: AtomicU32::new(slots::DEFAULT_MAX_DELIVERIES),
                lease_ids: AtomicU64::new(0),
                dead_lettered: AtomicU64::new(0),
                discarded: AtomicU64::new(0),
                slot_free: Waitlist::new(),
                dlq_kind: AtomicU32::new(0),
                dlq_len: AtomicU32::new(0),
                _reserved: AtomicU32::new(0),
                dlq_name: [const { AtomicU8::new(0) }; MAX_NAME_LEN],
            };
            // SAFETY: `control` checked that the block fits in the mapping and is aligned; the
            // segment is not published yet, so no one else can see it. (The slots after the
            // ring are zero, FREE, as the new file is.)
            unsafe { ctl.cast_mut().write(fresh) };
            Ok(())
        })?;
        Self::from_segment(seg, name, kind, ty)
    }

    /// Opens a queue segment of `kind` whose items are `ty`.
    pub(crate) fn open(
        name: SegmentName,
        kind: Kind,
        ty: TypeInfo,
        wait: std::time::Duration,
    ) -> Result<Self> {
        let seg = Segment::open(
            name.clone(),
            &Expect {
                kind,
                ty,
                len: None,
            },
            wait,
        )?;
        Self::from_segment(seg, name, kind, ty)
    }

    fn from_segment(seg: Segment, name: SegmentName, kind: Kind, ty: TypeInfo) -> Result<Self> {
        let ctl = NonNull::from(seg.control::<Control>()?);
        let ring = seg.payload::<u8>()?.cast::<u8>();
        // SAFETY: `ctl` points into `seg`'s control block, validated by `control`.
        let c = unsafe { ctl.as_ref() };
        let cap = c.capacity.load(Ordering::Relaxed);
        let nslots = c.slots.load(Ordering::Relaxed);
        let fits = ring::capacity_for(cap) == Some(cap)
            && nslots <= slots::MAX_SLOTS
            && cap + u64::from(nslots) * SLOT_SIZE == seg.len();
        if !fits {
            return Err(Error::Corrupt {
                name: name.as_str().to_owned(),
                reason: format!(
                    "a ring of {cap} bytes and {nslots} lease slots in a payload of {}",
                    seg.len()
                ),
            });
        }
        Ok(QueueCore {
            ctl,
            ring,
            cap,
            slots: nslots,
            name,
            kind,
            ty,
            dlq: std::sync::Mutex::new(None),
            holders_checked: AtomicU64::new(0),
            spills_checked: AtomicU64::new(0),
            claims_checked: AtomicU64::new(0),
            last_item_len: AtomicU64::new(0),
            seen_gets: AtomicU64::new(0),
            seen_head: AtomicU64::new(0),
            seen_puts: AtomicU64::new(0),
            seen_tail: AtomicU64::new(0),
            spin_budget: AtomicU32::new(SPIN_MAX),
            spin_calls: AtomicU32::new(0),
            yielding: Yielding::new(),
            seg,
        })
    }

    /// The ring's start; the lease slots follow it.
    pub(super) fn ring_ptr(&self) -> NonNull<u8> {
        self.ring
    }

    pub(super) fn ctl(&self) -> &Control {
        // SAFETY: points into the control block of `self.seg`, validated in `from_segment`,
        // alive as long as `self`; `Control` is `ShmShared`.
        unsafe { self.ctl.as_ref() }
    }

    pub(crate) fn name(&self) -> &str {
        self.name.as_str()
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.cap
    }

    pub(crate) fn maxsize(&self) -> u64 {
        self.ctl().maxsize.load(Ordering::Relaxed)
    }

    /// Records the serialised size of an item this handle put.
    pub(super) fn note_item_len(&self, len: u64) {
        self.last_item_len.store(len, Ordering::Relaxed);
    }

    /// Whether the items this handle puts are small enough to serialise in place (see
    /// `QueueCore::put_serialized`): learned from the last one, so a run of big items costs
    /// one miss, not one each, and a small one after them is tried in place again.
    pub(super) fn items_are_small(&self) -> bool {
        self.last_item_len.load(Ordering::Relaxed) <= super::batch::IN_PLACE_MAX
    }

    pub(super) fn corrupt(&self, reason: impl Into<String>) -> Fail {
        Fail::Error(Error::Corrupt {
            name: self.name().to_owned(),
            reason: reason.into(),
        })
    }

    /// Takes both locks; after a holder's death, repairs the state first.
    ///
    /// The operation's own deadline bounds the wait for the locks too: a lock held longer (by a
    /// stalled process, or one that only looks alive, such as a hostile peer's) fails a timed
    /// operation at its deadline and a `try_` one after [`TRY_LOCK_PATIENCE`], as Python's
    /// `get(block=False)` gives up when its lock is busy.
    pub(super) fn lock(&self, wait: Wait) -> Result<Held<'_>, Fail> {
        self.lock_side(Side::Both, wait)
    }

    /// Takes the put lock alone, for a put's fast path (or both, after a holder's death).
    #[inline]
    pub(super) fn lock_put(&self, wait: Wait) -> Result<Held<'_>, Fail> {
        self.lock_side(Side::Put, wait)
    }

    /// Takes the get lock alone, for a get's fast path (or both, after a holder's death).
    #[inline]
    pub(super) fn lock_get(&self, wait: Wait) -> Result<Held<'_>, Fail> {
        self.lock_side(Side::Get, wait)
    }

    /// Takes the locks `side` names. A lock whose holder died is let go again (still
    /// poisoned) and both are taken in order, for the repair, which needs both: the caller
    /// then holds more than it asked for, which is always allowed.
    #[inline]
    pub(super) fn lock_side(&self, side: Side, wait: Wait) -> Result<Held<'_>, Fail> {
        let ctl = self.ctl();
        let one = match side {
            Side::Put => &ctl.put_lock,
            Side::Get => &ctl.get_lock,
            Side::Both => return self.lock_both(side, wait),
        };
        match lock_one(one, wait)? {
            Acquired::Clean => Ok(Held {
                core: self,
                side,
                fast: side,
            }),
            Acquired::Poisoned => {
                // SAFETY: just taken by this thread. It stays poisoned for `lock_both`.
                unsafe { one.unlock() };
                self.lock_both(side, wait)
            }
        }
    }

    /// Takes the get lock, then the put lock; repairs the state if either was poisoned.
    #[cold]
    fn lock_both(&self, fast: Side, wait: Wait) -> Result<Held<'_>, Fail> {
        let ctl = self.ctl();
        let got = lock_one(&ctl.get_lock, wait)?;
        let put = match lock_one(&ctl.put_lock, wait) {
            Ok(put) => put,
            Err(f) => {
                // SAFETY: taken above by this thread.
                unsafe { ctl.get_lock.unlock() };
                return Err(f);
            }
        };
        let held = Held {
            core: self,
            side: Side::Both,
            fast,
        };
        if got == Acquired::Poisoned || put == Acquired::Poisoned {
            self.repair(&held)?; // on error the locks stay poisoned: every user is told
            ctl.get_lock.set_poisoned(false);
            ctl.put_lock.set_poisoned(false);
        }
        Ok(held)
    }

    /// Lets go of a one-sided hold and takes both locks (in order), for a step that needs
    /// both (a spill, a sleep); the caller checks its condition again, since the queue may
    /// have changed in between. After a later wait, the caller's side is taken again.
    #[cold]
    pub(super) fn upgrade<'a>(&'a self, held: Held<'a>, wait: Wait) -> Result<Held<'a>, Fail> {
        if held.both() {
            return Ok(held);
        }
        let fast = held.fast;
        drop(held);
        self.lock_both(fast, wait)
    }

    /// The positions and counts, checked. Under the lock.
    ///
    /// With one lock held, the other side's pair comes from this handle's last reading of it
    /// (see "Two locks" in the module docs), read again only when it looks wrong here or when
    /// the caller would wait ([`refresh`](Self::refresh)). An old reading is a past state of
    /// counts that only grow, so it can only make the queue look fuller to a putter, or
    /// emptier to a getter, than it is.
    #[inline(always)]
    pub(super) fn state(&self, held: &Held<'_>) -> Result<(u64, u64, u64, u64), Fail> {
        let (head, tail, puts, gets) = match held.side {
            Side::Both => {
                self.refresh(held); // keep both readings current while both are at hand
                self.positions(Side::Both)
            }
            side => self.positions(side),
        };
        if valid(head, tail, puts, gets, self.cap) {
            return Ok((head, tail, puts, gets));
        }
        if held.side != Side::Both && self.refresh(held) {
            return self.state_again(held);
        }
        Err(self.corrupt_positions((head, tail, puts, gets)))
    }

    /// After a reading that did not fit and a refresh that found the other side moved
    /// (another handle's puts or gets went further): judges the fresh reading, once.
    #[cold]
    #[inline(never)]
    fn state_again(&self, held: &Held<'_>) -> Result<(u64, u64, u64, u64), Fail> {
        let (head, tail, puts, gets) = self.positions(held.side);
        if valid(head, tail, puts, gets, self.cap) {
            return Ok((head, tail, puts, gets));
        }
        Err(self.corrupt_positions((head, tail, puts, gets)))
    }

    #[cold]
    fn corrupt_positions(&self, (head, tail, puts, gets): (u64, u64, u64, u64)) -> Fail {
        self.corrupt(format!(
            "head {head}, tail {tail}, puts {puts}, gets {gets}"
        ))
    }

    /// `head`, `tail`, `puts` and `gets`: this side's from memory, the other's from this
    /// handle's reading (both from memory when both locks are held).
    #[inline(always)]
    fn positions(&self, side: Side) -> (u64, u64, u64, u64) {
        let c = self.ctl();
        match side {
            Side::Put => (
                self.seen_head.load(Ordering::Relaxed),
                c.tail.load(Ordering::Relaxed),
                c.puts.load(Ordering::Relaxed),
                self.seen_gets.load(Ordering::Relaxed),
            ),
            Side::Get => (
                c.head.load(Ordering::Relaxed),
                self.seen_tail.load(Ordering::Relaxed),
                self.seen_puts.load(Ordering::Relaxed),
                c.gets.load(Ordering::Relaxed),
            ),
            Side::Both => (
                c.head.load(Ordering::Relaxed),
                c.tail.load(Ordering::Relaxed),
                c.puts.load(Ordering::Relaxed),
                c.gets.load(Ordering::Relaxed),
            ),
        }
    }

    /// Reads the other side's counters again into this handle's reading of them (all four
    /// when both locks are held); whether they had moved since. Under the lock.
    pub(super) fn refresh(&self, held: &Held<'_>) -> bool {
        let c = self.ctl();
        // SYNC: commit-put, commit-get. Read a side's count before its position (its commit
        // stores them the other way round), so that a getter that sees item `puts - 1` sees
        // its frame before `tail`, and a putter that sees a get counted sees its frame's space
        // free.
        let mut moved = false;
        if held.puts() {
            let (gets, head) = (
                c.gets.load(Ordering::Acquire),
                c.head.load(Ordering::Acquire),
            );
            moved |= remember(&self.seen_gets, gets) | remember(&self.seen_head, head);
        }
        if held.gets() {
            let (puts, tail) = (
                c.puts.load(Ordering::Acquire),
                c.tail.load(Ordering::Acquire),
            );
            moved |= remember(&self.seen_puts, puts) | remember(&self.seen_tail, tail);
        }
        moved
    }

    pub(super) fn read_header(&self, at: u64) -> FrameHeader {
        debug_assert!(at + HEADER <= self.cap && at.is_multiple_of(8));
        // SAFETY: callers pass an 8-aligned offset with `at + HEADER <= cap` (`ring::oldest`
        // only asks for offsets it has checked so), so the read is inside the ring. The copy
        // is plain data, believed only after `ring::oldest` checks it.
        unsafe {
            self.ring
                .add(at as usize)
                .cast::<FrameHeader>()
                .read_volatile()
        }
    }

    /// Writes `bytes` at ring offset `at`. Under the lock; `at + bytes.len() <= cap`.
    pub(super) fn write(&self, held: &Held<'_>, at: u64, bytes: &[u8]) {
        assert!(held.puts() && at + bytes.len() as u64 <= self.cap);
        // SAFETY: in bounds (asserted); we hold the put lock (asserted), so no other put
        // writes, and the region lies beyond `tail`, where no get reads; `bytes` is private
        // memory, so the two do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.ring.add(at as usize).as_ptr(),
                bytes.len(),
            )
        };
    }

    /// The payload bytes of a frame at `at`. Under the lock; checked by `ring::oldest`.
    pub(super) fn payload<'h>(&'h self, held: &'h Held<'_>, at: u64, len: u32) -> &'h [u8] {
        assert!(held.gets() && at + HEADER + u64::from(len) <= self.cap);
        // SAFETY: in bounds (asserted). We hold the get lock (asserted) and the frame lies
        // between `head` and `tail`: only a holder of the get lock moves `head` past it, and
        // putters write only beyond `tail`, so no shmkit process writes it while this borrow
        // (tied to the held lock) lives.
        unsafe {
            std::slice::from_raw_parts(self.ring.add((at + HEADER) as usize).as_ptr(), len as usize)
        }
    }

    /// Before sleeping, releases the lock and watches `counter` for a short while: a peer
    /// running on another core often changes it sooner than a futex wake-up could arrive.
    /// Returns with the lock held again.
    ///
    /// How long is learned per handle, because it pays only while the peer is running. On a
    /// quiet machine (pingpong, a producer a step ahead) the change comes within a few hundred
    /// rounds, and the budget stays at `SPIN_MAX` rounds (a few microseconds). Beside busy
    /// processes the peer is often not running, watching finds nothing, and every miss halves
    /// the budget: the waiter soon sleeps at once, as a plain futex waiter does, and the
    /// kernel gives its core to the peer. Every `SPIN_RETRY`-th wait watches the full
    /// `SPIN_MAX` rounds again, and a hit restores the budget, so a waiter whose peer was
    /// merely slow to start does not stay asleep-first on a quiet machine (where a futex
    /// wake-up across cores costs tens of microseconds). Measured with `side_by_side.py
    /// --load 1` (see the README's benchmarks): `pingpong` went from 0.34x to 1.3x the C
    /// reference's futex-only waiting, `queue_small` from 0.76x to 1.2x.
    ///
    /// A watch that missed while watching still pays (its next budget is not nothing) goes on
    /// yielding the core for a while before the sleep (see `sync::Yielding`), so that the peer,
    /// which is running and will change `counter` soon, need not wake a sleeper.
    ///
    /// No watch at all while the kernel counts more runnable tasks than processors (asked at
    /// most every 10 ms per thread, as for yielding, and looked up every 64th wait): there,
    /// every round of a watch is taken from a task that may be the one to change `counter`.
    /// Measured in interleaved runs
    /// against watching by the learned budget alone (medians of 5): quiet, `queue_mpmc` (four
    /// processes on the two cores) 1.10x, the rest level; beside one busy process `pingpong`
    /// 1.48x, `queue_small` 1.03x; beside two, `pingpong` 1.19x and `queue_small` 4x (both
    /// noisy there), `queue_mpmc` level.
    pub(super) fn spin<'a>(
        &'a self,
        held: Held<'a>,
        counter: &AtomicU64,
        wait: Wait,
    ) -> Result<Held<'a>, Fail> {
        let seen = counter.load(Ordering::Relaxed);
        let fast = held.fast;
        drop(held);
        let budget = self.spin_budget.load(Ordering::Relaxed);
        let calls = self.spin_calls.fetch_add(1, Ordering::Relaxed);
        // With more runnable tasks than processors, a watch spends a core that the peer, or
        // the lock's holder, may be waiting for: sleep at once (see `sync::Yielding`).
        let rounds = if !crate::sync::cores_to_spare_hint() {
            0
        } else if calls.is_multiple_of(SPIN_RETRY) {
            SPIN_MAX
        } else {
            budget
        };
        let mut hit = false;
        for _ in 0..rounds {
            std::hint::spin_loop();
            if counter.load(Ordering::Relaxed) != seen {
                hit = true;
                break;
            }
        }
        let next = match (hit, rounds) {
            (true, _) => SPIN_MAX,
            (false, 0) => 0,
            (false, _) => budget / 2,
        };
        if next != budget {
            self.spin_budget.store(next, Ordering::Relaxed);
        }
        // Yielding pays while the peer runs on another core; watching tells that: after a
        // watch that missed with a budget of nothing, sleep at once (see `sync::Yielding`).
        // A peer copying a big item outside the lock is running for certain, and will change
        // `counter` when it commits, however long its copy takes (see `claim.rs`): yield for it
        // without learning from it.
        let deadline = match wait {
            Wait::Until(t) => Some(t),
            Wait::Forever | Wait::No => None,
        };
        if !hit && self.peer_copying(counter) {
            self.yielding
                .wait_for_running(deadline, || counter.load(Ordering::Relaxed) != seen);
        } else if !hit && next > 0 {
            self.yielding
                .wait(deadline, || counter.load(Ordering::Relaxed) != seen);
        }
        self.lock_side(fast, wait)
    }

    /// Waits for a change, after which every condition (closed included) is checked again
    /// under the lock: in turn, a brief watch of `counter` (see [`spin`](Self::spin)), then a
    /// sleep on `list` (with `poll`, at most that long). Returns with the lock held again.
    ///
    /// A sleeper registers holding both locks (so that no waker, whichever lock it holds,
    /// claims between its last check and its registration): a one-sided hold is first
    /// upgraded, and the caller checks its condition once more before the sleep.
    #[inline]
    pub(super) fn wait_turn<'a>(
        &'a self,
        held: Held<'a>,
        spun: &mut bool,
        counter: &AtomicU64,
        list: &Waitlist,
        wait: Wait,
        poll: Option<std::time::Duration>,
    ) -> Result<Held<'a>, Fail> {
        if self.refresh(&held) {
            // This handle's reading of the other side was old: check again, without waiting.
            return Ok(held);
        }
        if !*spun && !matches!(wait, Wait::No) {
            *spun = true;
            return self.spin(held, counter, wait);
        }
        if !held.both() && !matches!(wait, Wait::No) {
            return self.upgrade(held, wait);
        }
        *spun = false;
        self.sleep(held, list, wait, poll)
    }

    /// Sleeps on `list` until woken or `wait` passes. Called with the lock held; returns with
    /// it held again.
    /// With `poll`, wakes after at most that long even if no one wakes it.
    pub(super) fn sleep<'a>(
        &'a self,
        held: Held<'a>,
        list: &Waitlist,
        wait: Wait,
        poll: Option<std::time::Duration>,
    ) -> Result<Held<'a>, Fail> {
        let timeout = match wait {
            Wait::No => return Err(Fail::WouldBlock),
            Wait::Until(t) => match t.checked_duration_since(Instant::now()) {
                Some(d) if !d.is_zero() => Some(d),
                _ => return Err(Fail::Timeout),
            },
            Wait::Forever => None,
        };
        if !held.both() {
            // Registering under one lock could miss a wake-up from the other side.
            return self.upgrade(held, wait);
        }
        self.not_claiming()?;
        let timeout = match (timeout, poll) {
            (Some(t), Some(p)) => Some(t.min(p)),
            (t, p) => t.or(p),
        };
        list.enter();
        let seq = list.seq();
        let fast = held.fast;
        drop(held);
        list.sleep(seq, timeout);
        // Both locks again to leave, as to enter: a list's counts are changed under a lock its
        // every waker holds (the put lock for `not_empty`, the get lock for `not_full`).
        let held = self.lock_both(fast, wait)?;
        list.leave();
        // Take back one wake-up, meant for us or not: either way a sleeper has left.
        list.take_signal();
        Ok(held)
    }

    /// Puts one item whose serialised form is the concatenation of `parts`.
    pub(crate) fn put(&self, parts: &[&[u8]], wait: Wait) -> Result<(), Fail> {
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let size = ring::frame_size(len);
        let inline_ok = len <= u64::from(u32::MAX) && size <= self.cap;
        let ctl = self.ctl();
        let maxsize = ctl.maxsize.load(Ordering::Relaxed);
        // An item that does not fit in the ring's free space goes to a segment of its own,
        // written outside the lock; the ring then carries a reference to it.
        let mut spilled: Option<(SpillRef, Segment)> = None;
        let mut spun = false;
        let mut held = self.lock_put(wait)?;
        loop {
            if ctl.closed.load(Ordering::Relaxed) != 0 {
                return Err(Fail::Closed); // dropping `spilled` removes its segment
            }
            let (head, tail, puts, gets) = self.state(&held)?;
            if self.tail_claimed(&held)? {
                // Another put is copying its item into the space at `tail` outside the lock:
                // wait for its commit, checking now and then that it lives (see `claim.rs`).
                held = self.wait_behind_claim(held, &mut spun, &ctl.puts, &ctl.not_full, wait)?;
                continue;
            }
            if maxsize == 0 || puts - gets < maxsize {
                if spilled.is_none()
                    && inline_ok
                    && let Some(pl) = ring::place(head, tail, self.cap, size)
                {
                    if len >= OUTSIDE_MIN {
                        return self.put_outside(held, tail, pl, puts, len, |mut space| {
                            for part in parts {
                                let (to, rest) = space.split_at_mut(part.len());
                                to.copy_from_slice(part);
                                space = rest;
                            }
                        });
                    }
                    self.write_frame(&held, tail, pl, puts, INLINE, parts);
                    // SYNC: commit-put. The lock's release publishes the frame.
                    ctl.tail.store(pl.new_tail(tail, size), Ordering::Release);
                    ctl.puts.store(puts + 1, Ordering::Release);
                    break;
                }
                if spilled.is_none() && inline_ok && self.refresh(&held) {
                    continue; // gets since this handle last looked may have made room
                }
                match &spilled {
                    None if !held.both() => {
                        // Looking at the spills the ring names needs both locks.
                        held = self.upgrade(held, wait)?;
                        continue;
                    }
                    None => {
                        let referenced = self.spill_refs_now_and_then(&held);
                        drop(held);
                        if let Some(referenced) = referenced {
                            self.reclaim_spills(None, &referenced);
                        }
                        spilled = Some(spill::write(&self.name, parts)?);
                        held = self.lock_put(wait)?;
                        continue;
                    }
                    Some((sref, _)) => {
                        let sref = *sref;
                        let ref_size = ring::frame_size(SPILL_REF_LEN);
                        if let Some(pl) = ring::place(head, tail, self.cap, ref_size) {
                            // The queue owns the spill from here: let go before the frame
                            // names it, so that a signal ending this producer between the
                            // two cannot unlink an item the queue holds.
                            if let Some((_, mut seg)) = spilled.take() {
                                seg.disown();
                            }
                            self.write_frame(
                                &held,
                                tail,
                                pl,
                                puts,
                                SPILL,
                                &[bytemuck::bytes_of(&sref)],
                            );
                            // SYNC: commit-put.
                            ctl.tail
                                .store(pl.new_tail(tail, ref_size), Ordering::Release);
                            ctl.puts.store(puts + 1, Ordering::Release);
                            break;
                        }
                    }
                }
            }
            held = self.wait_turn(held, &mut spun, &ctl.gets, &ctl.not_full, wait, None)?;
        }
        let getters = ctl.not_empty.claim(1);
        drop(held);
        ctl.not_empty.wake(getters);
        Ok(())
    }

    pub(super) fn write_frame(
        &self,
        held: &Held<'_>,
        tail: u64,
        pl: ring::Placement,
        seq: u64,
        kind: u32,
        parts: &[&[u8]],
    ) {
        let mut at = pl.at + HEADER;
        for part in parts {
            self.write(held, at, part);
            at += part.len() as u64;
        }
        self.write_headers(held, tail, pl, seq, kind, at - pl.at - HEADER);
    }

    /// Writes the headers of a frame of `len` payload bytes placed at `pl` after `tail`: the
    /// PAD frame before it, if there is room for one, and its own. Under the lock.
    pub(super) fn write_headers(
        &self,
        held: &Held<'_>,
        tail: u64,
        pl: ring::Placement,
        seq: u64,
        kind: u32,
        len: u64,
    ) {
        if pl.pad >= HEADER {
            let pad = FrameHeader {
                seq: 0,
                len: (pl.pad - HEADER) as u32,
                kind: PAD,
            };
            self.write(held, tail % self.cap, bytemuck::bytes_of(&pad));
        }
        let header = FrameHeader {
            seq,
            len: len as u32,
            kind,
        };
        self.write(held, pl.at, bytemuck::bytes_of(&header));
    }

    /// The `len` ring bytes at offset `at`, which lie in the free space beyond `tail`, to be
    /// written in place before a commit. Under the lock; `at + len <= cap`.
    pub(super) fn free_space<'h>(
        &'h self,
        held: &'h mut Held<'_>,
        at: u64,
        len: usize,
    ) -> &'h mut [u8] {
        assert!(held.puts() && at + len as u64 <= self.cap);
        // SAFETY: in bounds (asserted). We hold the put lock (asserted) and the region lies
        // beyond `tail`, where no shmkit process reads or writes until a put-lock holder
        // commits; the borrow is tied to an exclusive borrow of the held lock, so it is the
        // only reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.ring.add(at as usize).as_ptr(), len) }
    }

    /// As [`write_frame`](Self::write_frame) for an INLINE frame of `prefix` and `len` bytes
    /// that `fill` writes in place. Under the lock.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_frame_with(
        &self,
        held: &mut Held<'_>,
        tail: u64,
        pl: ring::Placement,
        seq: u64,
        prefix: &[u8],
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) {
        self.write(held, pl.at + HEADER, prefix);
        fill(self.free_space(held, pl.at + HEADER + prefix.len() as u64, len));
        let total = prefix.len() as u64 + len as u64;
        self.write_headers(held, tail, pl, seq, INLINE, total);
    }

    /// Takes the oldest item and passes its serialised bytes to `read`, exactly once: under the
    /// lock for an item in the ring or a slot, after it for a spilled one. Items whose lease
    /// was returned come first (see `queue/slots.rs`).
    pub(crate) fn get<R>(&self, wait: Wait, read: impl FnOnce(&[u8]) -> R) -> Result<R, Fail> {
        let ctl = self.ctl();
        let Some((held, pos)) = self.wait_for_item(wait)? else {
            return self.get_general(wait, read);
        };
        let found = self.oldest_frame(pos.head, pos.tail, pos.puts, pos.gets)?;
        if found.header.kind == INLINE && u64::from(found.header.len) >= OUTSIDE_MIN {
            return self.take_outside(held, found, pos, read);
        }
        let outcome = self.take_frame(&held, found, pos.head, pos.gets, read);
        // Room for one big item may be room for several small ones: wake every putter.
        let putters = ctl.not_full.claim(u32::MAX);
        drop(held);
        ctl.not_full.wake(putters);
        match outcome {
            Ok(r) => Ok(r),
            Err((seg, read)) => Ok(spill::take(&seg?, read)?),
        }
    }

    /// The fast path of a get, while no lease is out: waits until the ring holds an item and
    /// returns with the lock held and the positions, in one tight loop (`take_next`'s general
    /// path costs a plain get about half again as much). `None` (unlocked) if leases are out:
    /// the caller takes the general path, where returned items come first.
    #[inline(always)]
    pub(super) fn wait_for_item(&self, wait: Wait) -> Result<Option<(Held<'_>, Positions)>, Fail> {
        let ctl = self.ctl();
        let mut spun = false;
        let mut held = self.lock_get(wait)?;
        loop {
            if ctl.held.load(Ordering::Relaxed) != 0 || ctl.returned.load(Ordering::Relaxed) != 0 {
                return Ok(None);
            }
            let (head, tail, puts, gets) = self.state(&held)?;
            if puts > gets {
                if !self.head_claimed(&held)? {
                    return Ok(Some((
                        held,
                        Positions {
                            head,
                            tail,
                            puts,
                            gets,
                        },
                    )));
                }
                // Another get is reading the oldest item outside the lock: wait for its
                // commit, checking now and then that its reader lives (see `claim.rs`).
                held = self.wait_behind_claim(held, &mut spun, &ctl.gets, &ctl.not_empty, wait)?;
                continue;
            }
            if self.refresh(&held) {
                continue; // items came since this handle last looked
            }
            if ctl.closed.load(Ordering::Relaxed) != 0 {
                return Err(Fail::Closed);
            }
            held = self.wait_turn(held, &mut spun, &ctl.puts, &ctl.not_empty, wait, None)?;
        }
    }

    /// Under the lock: passes the item of the ring's oldest frame to `read` (or opens its
    /// spill, for the caller to read after unlocking) and commits the get.
    #[inline]
    #[allow(clippy::type_complexity)]
    pub(super) fn take_frame<R, F: FnOnce(&[u8]) -> R>(
        &self,
        held: &Held<'_>,
        found: ring::Found,
        head: u64,
        gets: u64,
        read: F,
    ) -> Result<R, (Result<Segment>, F)> {
        let ctl = self.ctl();
        let payload = self.payload(held, found.at, found.header.len);
        // A spill is opened before its reference leaves the ring (see `spill::abandoned`).
        let outcome = match found.header.kind {
            INLINE => Ok(read(payload)),
            _ => Err((
                spill::open(
                    &self.name,
                    &bytemuck::pod_read_unaligned::<SpillRef>(payload),
                ),
                read,
            )),
        };
        // SYNC: commit-get. The item has been copied out (or its reference has).
        ctl.head.store(head + found.advance, Ordering::Release);
        ctl.gets.store(gets + 1, Ordering::Release);
        outcome
    }

    /// A get while leases are out: returned items first (see `queue/slots.rs`).
    #[cold]
    fn get_general<R>(&self, wait: Wait, read: impl FnOnce(&[u8]) -> R) -> Result<R, Fail> {
        let ctl = self.ctl();
        let (held, next) = self.take_next(wait, false)?;
        let (outcome, putters, slot_waiters) = match next {
            Next::Ring {
                found, head, gets, ..
            } => {
                let outcome = self.take_frame(&held, found, head, gets, read);
                (outcome, ctl.not_full.claim(u32::MAX), 0)
            }
            Next::Slot(i) => {
                let outcome = match self.slot_item(&held, i)? {
                    slots::Item::Inline(bytes) => Ok(read(bytes)),
                    slots::Item::Spilled(sref) => Err((spill::open(&self.name, &sref), read)),
                };
                // SYNC: commit-get of a returned item: its slot is freed.
                self.free_slot(&held, i, slots::RETURNED);
                (outcome, 0, ctl.slot_free.claim(1))
            }
            Next::Nothing { .. } => return Err(self.corrupt("internal: a get with no item")),
        };
        drop(held);
        ctl.not_full.wake(putters);
        ctl.slot_free.wake(slot_waiters);
        match outcome {
            Ok(r) => Ok(r),
            Err((seg, read)) => Ok(spill::take(&seg?, read)?),
        }
    }

    /// Under the lock: the ring's oldest frame, which must be item `gets`.
    #[inline(always)]
    pub(super) fn oldest_frame(
        &self,
        head: u64,
        tail: u64,
        puts: u64,
        gets: u64,
    ) -> Result<ring::Found, Fail> {
        let found = ring::oldest(head, tail, self.cap, |at| self.read_header(at))
            .map_err(|e| self.corrupt(e))?;
        match found {
            Some(f) if f.header.seq == gets => Ok(f),
            Some(f) => Err(self.corrupt(format!(
                "item {} found where item {gets} belongs",
                f.header.seq
            ))),
            None => Err(self.corrupt(format!("{} items counted in an empty ring", puts - gets))),
        }
    }

    /// Waits until a get (`lease`: a leased get, which needs a free slot too) can take an item,
    /// and returns with the lock held and what to take.
    #[inline]
    pub(super) fn take_next(&self, wait: Wait, lease: bool) -> Result<(Held<'_>, Next), Fail> {
        let ctl = self.ctl();
        let mut spun = false;
        let mut held = self.lock(wait)?;
        loop {
            // A lease whose holder died comes back, ahead of the items in the ring.
            if ctl.held.load(Ordering::Relaxed) > 0 {
                self.return_dead_leases(&held)?;
            }
            let (no_slot, claimed) = match self.next(&held, lease)? {
                Next::Nothing { no_slot, claimed } => (no_slot, claimed),
                next => return Ok((held, next)),
            };
            let out = self.leases_out(&held)?;
            if !no_slot && !claimed && !out && ctl.closed.load(Ordering::Relaxed) != 0 {
                return Err(Fail::Closed);
            }
            // Waiting for a slot, watching the ring's counts would not help: sleep at once.
            let list = if no_slot {
                spun = true;
                &ctl.slot_free
            } else {
                &ctl.not_empty
            };
            // While leases are out, or another get reads the oldest item outside the lock
            // (see `claim.rs`), wake now and then to see whether their holders live.
            let poll = match (out, claimed) {
                (true, _) => Some(slots::HOLDER_POLL),
                (false, true) => Some(CLAIM_POLL),
                (false, false) => None,
            };
            held = self.wait_turn(held, &mut spun, &ctl.puts, list, wait, poll)?;
        }
    }

    /// Under the lock: what a get takes next. Returned items come first (oldest first); one
    /// past its last delivery is dead-lettered on the way. Then the ring's oldest frame, for
    /// a leased get only with a free slot to move it to.
    #[inline]
    fn next(&self, held: &Held<'_>, lease: bool) -> Result<Next, Fail> {
        if self.ctl().returned.load(Ordering::Relaxed) != 0
            && let Some(i) = self.next_returned(held)?
        {
            return Ok(Next::Slot(i));
        }
        let (head, tail, puts, gets) = self.state(held)?;
        if puts == gets {
            return Ok(Next::Nothing {
                no_slot: false,
                claimed: false,
            });
        }
        if self.head_claimed(held)? {
            return Ok(Next::Nothing {
                no_slot: false,
                claimed: true,
            });
        }
        let found = self.oldest_frame(head, tail, puts, gets)?;
        let slot = if lease {
            match self.free_slot_index(held)? {
                Some(i) => Some(i),
                None => {
                    return Ok(Next::Nothing {
                        no_slot: true,
                        claimed: false,
                    });
                }
            }
        } else {
            None
        };
        Ok(Next::Ring {
            found,
            head,
            gets,
            slot,
        })
    }

    /// Items waiting in the queue now, returned ones included (a snapshot).
    pub(crate) fn len(&self) -> u64 {
        let c = self.ctl();
        c.puts
            .load(Ordering::Relaxed)
            .saturating_sub(c.gets.load(Ordering::Relaxed))
            .saturating_add(u64::from(c.returned.load(Ordering::Relaxed)))
    }

    /// Closes the queue: puts fail from now on, gets drain what is left. Wakes every waiter.
    pub(crate) fn close(&self) -> Result<(), Fail> {
        let ctl = self.ctl();
        let held = self.lock(Wait::Forever)?;
        ctl.closed.store(1, Ordering::Relaxed);
        let (getters, putters) = (ctl.not_empty.claim(u32::MAX), ctl.not_full.claim(u32::MAX));
        drop(held);
        ctl.not_empty.wake(getters);
        ctl.not_full.wake(putters);
        Ok(())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.ctl().closed.load(Ordering::Relaxed) != 0
    }

    /// Marks one taken item done. `Ok(false)` if every item taken by a plain get was already
    /// marked done (a leased item is marked done by its `ack`).
    pub(crate) fn task_done(&self) -> Result<bool, Fail> {
        let ctl = self.ctl();
        let held = self.lock(Wait::Forever)?;
        let (_, _, _, gets) = self.state(&held)?;
        let done = ctl.done.load(Ordering::Relaxed);
        let leased = u64::from(self.slots_in_use(&held)?);
        if done.saturating_add(leased) >= gets {
            return Ok(false);
        }
        let joiners = self.mark_done(&held)?;
        drop(held);
        ctl.joined.wake(joiners);
        Ok(true)
    }

    /// Under the lock: counts one more task done; returns the joiners to wake after unlocking.
    pub(super) fn mark_done(&self, held: &Held<'_>) -> Result<u32, Fail> {
        let ctl = self.ctl();
        let (_, _, puts, gets) = self.state(held)?;
        let done = ctl.done.load(Ordering::Relaxed);
        if done >= gets {
            return Ok(0);
        }
        ctl.done.store(done + 1, Ordering::Relaxed);
        Ok(if done + 1 == puts {
            ctl.joined.claim(u32::MAX)
        } else {
            0
        })
    }

    /// Waits until every item ever put has been marked done.
    pub(crate) fn join(&self, wait: Wait) -> Result<(), Fail> {
        let ctl = self.ctl();
        let mut held = self.lock(wait)?;
        loop {
            let (_, _, puts, _) = self.state(&held)?;
            if ctl.done.load(Ordering::Relaxed) >= puts {
                return Ok(());
            }
            held = self.sleep(held, &ctl.joined, wait, None)?;
        }
    }
}

impl std::fmt::Debug for QueueCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueCore")
            .field("name", &self.name())
            .finish()
    }
}

impl crate::shm::by_name::OneSegment for QueueCore {
    fn segment(&self) -> &Segment {
        &self.seg
    }
}

impl Drop for QueueCore {
    fn drop(&mut self) {
        if self.seg.will_unlink() {
            // The queue is being destroyed: so are the items it spilled. (With hand-overs in
            // flight it lives on for its receivers, spills included.)
            spill::remove_all(self.name());
        }
    }
}

/// Whether positions and counts read from shared memory are consistent. Besides their
/// relations, checks that the largest step a holder may add to each (one item, one ring's
/// worth of bytes) cannot overflow, so the arithmetic on them never wraps or panics.
#[inline(always)]
fn valid(head: u64, tail: u64, puts: u64, gets: u64, cap: u64) -> bool {
    tail >= head
        && tail - head <= cap
        && puts >= gets
        && head.is_multiple_of(8)
        && tail.is_multiple_of(8)
        && puts != u64::MAX
        && tail <= u64::MAX - 2 * cap
}

/// Stores `now` in `seen` (a handle's reading of a counter, under the lock that guards its
/// reading); whether it differs from what was there.
#[inline(always)]
fn remember(seen: &AtomicU64, now: u64) -> bool {
    let moved = seen.load(Ordering::Relaxed) != now;
    if moved {
        seen.store(now, Ordering::Relaxed);
    }
    moved
}

/// Takes one of the queue's locks, waiting as `wait` says (see [`QueueCore::lock`]).
#[inline]
fn lock_one(lock: &RawLock, wait: Wait) -> Result<Acquired, Fail> {
    let outcome = match wait {
        Wait::Forever => lock.lock().map_err(|_| LockFailure::Deadlock),
        Wait::No => lock.try_lock_for(TRY_LOCK_PATIENCE),
        Wait::Until(t) => lock.try_lock_for(t.saturating_duration_since(Instant::now())),
    };
    match outcome {
        Ok(acquired) => Ok(acquired),
        Err(LockFailure::Busy) if matches!(wait, Wait::No) => Err(Fail::WouldBlock),
        Err(LockFailure::Busy) => Err(Fail::Timeout),
        Err(LockFailure::Deadlock) => Err(Fail::Error(Error::Op(Box::new(
            crate::sync::LockError::<()>::Deadlock,
        )))),
    }
}

/// The ring's positions and counts, as read and checked under the lock.
#[derive(Debug, Clone, Copy)]
pub(super) struct Positions {
    pub(super) head: u64,
    pub(super) tail: u64,
    pub(super) puts: u64,
    pub(super) gets: u64,
}

/// What a get takes next (see `QueueCore::take_next`).
pub(super) enum Next {
    /// The ring's oldest frame, and for a leased get the free slot it moves to.
    Ring {
        found: ring::Found,
        head: u64,
        gets: u64,
        slot: Option<u32>,
    },
    /// A returned item, in this slot.
    Slot(u32),
    /// Nothing can be taken now; `no_slot`: items wait, but every lease slot is in use;
    /// `claimed`: the oldest item is being read by another get (see `claim.rs`).
    Nothing { no_slot: bool, claimed: bool },
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::shm::{Kind, SegmentName, TypeInfo};

    fn queue(maxsize: usize) -> QueueCore {
        let name = SegmentName::anonymous().unwrap();
        QueueCore::create(name, Kind::Queue, TypeInfo::of::<u8>(), maxsize, 4096).unwrap()
    }

    fn other_handle(q: &QueueCore) -> QueueCore {
        let name = SegmentName::new(q.name()).unwrap();
        QueueCore::open(name, Kind::Queue, TypeInfo::of::<u8>(), Duration::ZERO).unwrap()
    }

    fn within(secs: u64) -> Wait {
        Wait::Until(Instant::now() + Duration::from_secs(secs))
    }

    fn take(q: &QueueCore, wait: Wait) -> std::result::Result<Vec<u8>, Fail> {
        q.get(wait, <[u8]>::to_vec)
    }

    #[test]
    fn a_handle_whose_reading_of_the_other_side_is_old_reads_it_again() {
        let a = queue(3);
        let a2 = other_handle(&a);
        for i in 0..3 {
            a.put(&[&[i]], Wait::No).unwrap();
        }
        // a2 reads the put side (3 items) and takes one; a takes the other two.
        assert_eq!(take(&a2, Wait::No).unwrap(), [0]);
        assert_eq!(take(&a, Wait::No).unwrap(), [1]);
        assert_eq!(take(&a, Wait::No).unwrap(), [2]);
        // a2's reading (3 puts) is now behind the gets (3): the queue looks empty, and is.
        assert!(matches!(take(&a2, Wait::No), Err(Fail::WouldBlock)));
        a.put(&[&[3]], Wait::No).unwrap();
        assert_eq!(
            take(&a2, Wait::No).unwrap(),
            [3],
            "an item put since is seen"
        );
        // The put side: a2 last read 1 get; the queue is full by a's reading, not by a2's.
        for i in 4..7 {
            a.put(&[&[i]], Wait::No).unwrap();
        }
        assert!(matches!(a2.put(&[&[9]], Wait::No), Err(Fail::WouldBlock)));
        assert_eq!(take(&a, Wait::No).unwrap(), [4]);
        a2.put(&[&[7]], Wait::No).unwrap();
        let rest: Vec<_> = (0..3).map(|_| take(&a, Wait::No).unwrap()[0]).collect();
        assert_eq!(rest, [5, 6, 7]);
    }

    /// A thread that takes one side's lock, runs `work` under it, and exits without unlocking,
    /// as a killed process would.
    fn die_holding(q: &'static QueueCore, side: Side, work: impl FnOnce(&Held<'_>) + Send) {
        std::thread::scope(|s| {
            s.spawn(|| {
                let held = q.lock_side(side, Wait::No).unwrap();
                assert_eq!(held.side, side);
                work(&held);
                std::mem::forget(held);
            });
        });
    }

    #[test]
    fn a_getter_waiting_beside_a_dead_putters_lock_gets_the_item_it_committed() {
        let q: &'static QueueCore = Box::leak(Box::new(queue(0)));
        q.put(&[b"first"], Wait::No).unwrap();
        // The putter dies after its commit point (`tail`) and before it counts the item.
        die_holding(q, Side::Put, |held| {
            let (head, tail, puts, _) = q.state(held).unwrap();
            let size = ring::frame_size(6);
            let pl = ring::place(head, tail, q.cap, size).unwrap();
            q.write_frame(held, tail, pl, puts, INLINE, &[b"second"]);
            q.ctl()
                .tail
                .store(pl.new_tail(tail, size), Ordering::Release);
        });
        assert_eq!(take(q, within(5)).unwrap(), b"first");
        // The get lock alone shows no second item; the getter finds the dead holder when it
        // takes both locks to sleep, and the repair counts the item.
        assert_eq!(take(q, within(5)).unwrap(), b"second");
        assert!(matches!(take(q, Wait::No), Err(Fail::WouldBlock)));
        q.put(&[b"third"], Wait::No).unwrap();
        assert_eq!(take(q, Wait::No).unwrap(), b"third");
    }

    #[test]
    fn a_getter_that_dies_after_its_commit_took_its_item() {
        let q: &'static QueueCore = Box::leak(Box::new(queue(2)));
        for item in [b"one", b"two"] {
            q.put(&[item], Wait::No).unwrap();
        }
        // The getter dies after its commit point (`head`) and before it counts the get.
        die_holding(q, Side::Get, |held| {
            q.refresh(held); // this handle has not looked at the put side yet
            let (head, tail, puts, gets) = q.state(held).unwrap();
            let found = q.oldest_frame(head, tail, puts, gets).unwrap();
            q.ctl().head.store(head + found.advance, Ordering::Release);
        });
        // The queue looks full to the put lock alone (2 puts, 0 gets counted) until the next
        // getter repairs it; the get takes the second item, not the first again.
        assert!(matches!(
            q.put(&[b"three"], Wait::No),
            Err(Fail::WouldBlock)
        ));
        assert_eq!(take(q, within(5)).unwrap(), b"two");
        q.put(&[b"three"], Wait::No).unwrap();
        q.put(&[b"four"], Wait::No).unwrap();
        assert_eq!(take(q, Wait::No).unwrap(), b"three");
        assert_eq!(take(q, Wait::No).unwrap(), b"four");
    }

    #[test]
    fn putters_and_getters_on_many_threads_lose_and_repeat_nothing() {
        let q: &'static QueueCore = Box::leak(Box::new(queue(8)));
        const PER: u32 = 20_000;
        let sums: Vec<u64> = std::thread::scope(|s| {
            for t in 0..3u32 {
                s.spawn(move || {
                    for i in 0..PER {
                        q.put(&[&(t * PER + i).to_le_bytes()], within(20)).unwrap();
                    }
                });
            }
            let getters: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let mut sum = 0u64;
                        for _ in 0..PER {
                            let item = take(q, within(20)).unwrap();
                            sum += u64::from(u32::from_le_bytes(item.try_into().unwrap()));
                        }
                        sum
                    })
                })
                .collect();
            getters.into_iter().map(|g| g.join().unwrap()).collect()
        });
        let n = u64::from(3 * PER);
        assert_eq!(sums.iter().sum::<u64>(), n * (n - 1) / 2);
        assert!(matches!(take(q, Wait::No), Err(Fail::WouldBlock)));
    }
}
