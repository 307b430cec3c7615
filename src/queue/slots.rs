//! Leases: the slots after a queue's ring where items taken by a leased get wait for their
//! `ack`, and what happens to them when their holder lets go or dies.
//!
//! # Layout
//! `slots` fixed-size slots follow the ring in the payload. A slot is a 64-byte header of
//! atomics ([`Slot`]) and [`SLOT_INLINE`] bytes of item. An item too big for that travels as a
//! [`SpillRef`] to a spill segment (the one it already had in the ring, or one written when it
//! was leased). A slot is FREE, HELD by a consumer (its pid and start time) or RETURNED: let
//! go without an `ack` (`release`, a dropped lease, or a holder found dead).
//!
//! # Commit points
//! Everything happens under the queue's lock, and each change commits with one store of the
//! slot's `state`:
//! - a leased get of a ring item fills a FREE slot, stores HELD (commit-lease), then advances
//!   `head` (commit-get). A holder that dies between the two leaves the item both in the ring
//!   and in the slot; the repair sees the slot's sequence number still in the ring and frees
//!   the slot, so the item is delivered once more from the ring, never twice at once.
//! - re-leasing a RETURNED item stores its delivery count, holder and lease id, then HELD.
//!   Torn by a death, the slot names a dead holder (or a mix of two, which is no live process)
//!   and is returned again.
//! - `ack` stores FREE; `release` and the holder check store RETURNED.
//!
//! The `held` and `returned` counts in the control block are hints for the fast paths, stored
//! after the commit and rebuilt from the slots by the repair; a decision that must be exact
//! (is anything still leased? which returned item is oldest?) scans the slots.
//!
//! # Order
//! A get (leased or plain) takes returned items before anything in the ring, oldest (by the
//! sequence number its producer's put gave it) first: an item that comes back goes ahead of
//! every newer item, and behind none.
//!
//! # Dead holders
//! A lease lasts until its holder acks or releases it, drops it, or dies; there is no lease
//! timeout on one machine. While leases are out, every get checks their holders first (at
//! most every [`HOLDER_CHECK`] per handle: one `/proc` read per holder process), and a getter
//! with nothing to take wakes every [`HOLDER_POLL`] to check again: a slot whose holder is
//! gone (or a zombie) is RETURNED, and goes ahead of the ring's items from then on. So an
//! item whose holder died is delivered again ahead of every item put more than
//! [`HOLDER_CHECK`] after the death was noticed, not necessarily of items already waiting.
//!
//! # Dead letters
//! A returned item that was delivered `max_deliveries` times already is not delivered again:
//! it is put in the dead-letter queue if one is set (at least once: a process killed between
//! that put and freeing the slot leaves the next getter to put it again), or else discarded,
//! counted and logged. An item whose bytes do not decode as the queue's type goes the same way
//! at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::core::{Fail, Held, Next, QueueCore, Wait};
use super::ring::{INLINE, SPILL, SPILL_REF_LEN, SpillRef};
use super::spill;
use crate::error::Error;
use crate::shm::{Kind, MAX_NAME_LEN, SegmentName, shm_shared};
use crate::sys;

/// Bytes of a slot, and of its header; an item of up to `SLOT_INLINE` bytes is kept in it.
pub(crate) const SLOT_SIZE: u64 = 512;
const SLOT_HEADER: u64 = 64;
pub(crate) const SLOT_INLINE: u64 = SLOT_SIZE - SLOT_HEADER;
/// The most slots a queue may say it has.
pub(crate) const MAX_SLOTS: u32 = 1024;
/// Deliveries after which an item is dead-lettered, unless set otherwise (RabbitMQ's default).
pub(crate) const DEFAULT_MAX_DELIVERIES: u32 = 20;
/// At most how often a process checks whether lease holders are alive.
const HOLDER_CHECK: Duration = Duration::from_millis(20);
/// How long a getter sleeps at most while leases are out, before checking their holders.
pub(crate) const HOLDER_POLL: Duration = Duration::from_millis(50);

/// The delivery count of an item that did not decode, parked while the dead-letter queue is
/// full: never delivered again, whatever `max_deliveries` says.
const REJECTED: u32 = u32::MAX;

pub(crate) const FREE: u32 = 0;
pub(crate) const HELD: u32 = 1;
pub(crate) const RETURNED: u32 = 2;

/// The slots of a queue with a ring of `cap` bytes: one per 16 KiB of ring, 8 to 64.
pub(crate) fn slots_for(cap: u64) -> u32 {
    (cap / (16 << 10)).clamp(8, 64) as u32
}

shm_shared! {
/// A slot's header; the item's bytes follow it.
pub(crate) struct Slot {
    /// FREE, HELD or RETURNED. Commit point of every change to the slot.
    state: AtomicU32,
    /// Deliveries so far (1 after the first leased get).
    deliveries: AtomicU32,
    /// The holder's pid and start time.
    pid: AtomicU32,
    /// INLINE (the bytes follow) or SPILL (a `SpillRef` follows).
    kind: AtomicU32,
    start: AtomicU64,
    /// The item's sequence number (its put's).
    seq: AtomicU64,
    /// This lease's id: an `ack` of an older lease of the same slot is refused.
    lease: AtomicU64,
    len: AtomicU32,
    _pad: AtomicU32,
    _reserved: [AtomicU64; 2],
}
}

const _: () = assert!(std::mem::size_of::<Slot>() as u64 == SLOT_HEADER);

/// A slot as read under the lock, checked.
#[derive(Debug, Clone, Copy)]
struct View {
    state: u32,
    deliveries: u32,
    pid: u32,
    start: u64,
    seq: u64,
    lease: u64,
    kind: u32,
    len: u32,
}

/// A slot's item.
pub(crate) enum Item<'h> {
    Inline(&'h [u8]),
    Spilled(SpillRef),
}

/// What a leased get took: the slot, the lease's id, the delivery count, and what `read`
/// made of the item's bytes.
pub(crate) struct Leased<R> {
    pub(crate) slot: u32,
    pub(crate) id: u64,
    pub(crate) deliveries: u32,
    pub(crate) value: R,
}

/// Why an `ack`, `release` or reject did nothing.
#[derive(Debug)]
pub(crate) enum SettleFail {
    /// The slot no longer holds this lease (it was taken back, or the segment was changed).
    Lost,
    Error(Error),
}

impl From<Fail> for SettleFail {
    fn from(f: Fail) -> Self {
        SettleFail::Error(super::typed::fail_error(f))
    }
}

/// Lease counts, for `Queue::lease_counts` and `shmkit inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub(crate) held: u32,
    pub(crate) returned: u32,
    pub(crate) dead_lettered: u64,
    pub(crate) discarded: u64,
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl QueueCore {
    fn slot(&self, i: u32) -> &Slot {
        assert!(i < self.slots);
        // SAFETY: the payload holds the ring (`cap` bytes) and then `slots` slots of SLOT_SIZE
        // bytes (checked in `from_segment`), and `i < slots`, so the header is inside the
        // mapping, which lives as long as `self`. The payload starts page-aligned and `cap`
        // and SLOT_SIZE are multiples of 8, so it is aligned for `Slot`, which is `ShmShared`:
        // valid for any bytes, changed only atomically.
        unsafe {
            &*self
                .ring_ptr()
                .as_ptr()
                .add((self.cap + u64::from(i) * SLOT_SIZE) as usize)
                .cast::<Slot>()
        }
    }

    /// The item bytes of slot `i`. Under the lock; `len <= SLOT_INLINE`.
    fn slot_bytes<'h>(&'h self, held: &'h Held<'_>, i: u32, len: u32) -> &'h [u8] {
        assert!(held.both() && i < self.slots && u64::from(len) <= SLOT_INLINE);
        // SAFETY: inside slot `i` (as in `slot`, and `SLOT_HEADER + len <= SLOT_SIZE`). Slot
        // bytes are written only under both locks, which we hold for as long as the borrow.
        unsafe {
            std::slice::from_raw_parts(
                self.ring_ptr()
                    .as_ptr()
                    .add((self.cap + u64::from(i) * SLOT_SIZE + SLOT_HEADER) as usize),
                len as usize,
            )
        }
    }

    /// Writes `bytes` as the item of slot `i`, which is FREE. Under the lock.
    fn write_slot_bytes(&self, held: &Held<'_>, i: u32, bytes: &[u8]) {
        assert!(held.both() && i < self.slots && bytes.len() as u64 <= SLOT_INLINE);
        // SAFETY: inside slot `i` (as in `slot_bytes`); we hold both locks and the slot is FREE,
        // so no one reads it; `bytes` is private memory or the ring, never this slot.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.ring_ptr()
                    .as_ptr()
                    .add((self.cap + u64::from(i) * SLOT_SIZE + SLOT_HEADER) as usize),
                bytes.len(),
            )
        }
    }

    /// Reads and checks slot `i`. Under the lock.
    fn view(&self, _held: &Held<'_>, i: u32) -> Result<View, Fail> {
        let s = self.slot(i);
        let v = View {
            state: s.state.load(Ordering::Relaxed),
            deliveries: s.deliveries.load(Ordering::Relaxed),
            pid: s.pid.load(Ordering::Relaxed),
            start: s.start.load(Ordering::Relaxed),
            seq: s.seq.load(Ordering::Relaxed),
            lease: s.lease.load(Ordering::Relaxed),
            kind: s.kind.load(Ordering::Relaxed),
            len: s.len.load(Ordering::Relaxed),
        };
        let ok = match v.state {
            FREE => true,
            HELD | RETURNED => match v.kind {
                INLINE => u64::from(v.len) <= SLOT_INLINE,
                SPILL => u64::from(v.len) == SPILL_REF_LEN,
                _ => false,
            },
            _ => false,
        };
        if !ok {
            return Err(self.corrupt(format!(
                "lease slot {i}: state {}, kind {:#x}, length {}",
                v.state, v.kind, v.len
            )));
        }
        Ok(v)
    }

    /// The item in slot `i` (HELD or RETURNED, as checked by `view`). Under the lock.
    pub(super) fn slot_item<'h>(&'h self, held: &'h Held<'_>, i: u32) -> Result<Item<'h>, Fail> {
        let v = self.view(held, i)?;
        let bytes = self.slot_bytes(held, i, v.len);
        Ok(match v.kind {
            INLINE => Item::Inline(bytes),
            _ => Item::Spilled(bytemuck::pod_read_unaligned(bytes)),
        })
    }

    /// Frees slot `i`, which was `from` (HELD or RETURNED), and updates the hints.
    pub(super) fn free_slot(&self, _held: &Held<'_>, i: u32, from: u32) {
        let ctl = self.ctl();
        // SYNC: commit-ack (or the commit of a get that took a returned item).
        self.slot(i).state.store(FREE, Ordering::Relaxed);
        let count = if from == HELD {
            &ctl.held
        } else {
            &ctl.returned
        };
        count.store(
            count.load(Ordering::Relaxed).saturating_sub(1),
            Ordering::Relaxed,
        );
    }

    /// Marks slot `i` (HELD) RETURNED and updates the hints.
    fn return_slot(&self, _held: &Held<'_>, i: u32) {
        let ctl = self.ctl();
        // SYNC: commit-release.
        self.slot(i).state.store(RETURNED, Ordering::Relaxed);
        let h = ctl.held.load(Ordering::Relaxed);
        ctl.held.store(h.saturating_sub(1), Ordering::Relaxed);
        let r = ctl.returned.load(Ordering::Relaxed);
        ctl.returned.store(r.saturating_add(1), Ordering::Relaxed);
    }

    /// Under the lock: the returned item a get takes next, oldest first, dead-lettering the
    /// ones past their last delivery on the way. `None` if there is none.
    pub(super) fn next_returned(&self, held: &Held<'_>) -> Result<Option<u32>, Fail> {
        let ctl = self.ctl();
        if ctl.returned.load(Ordering::Relaxed) == 0 {
            return Ok(None);
        }
        let mut waiting = Vec::new();
        for i in 0..self.slots {
            let v = self.view(held, i)?;
            if v.state == RETURNED {
                waiting.push((v.seq, i, v));
            }
        }
        if waiting.is_empty() {
            ctl.returned.store(0, Ordering::Relaxed); // a stale hint
            return Ok(None);
        }
        waiting.sort_unstable_by_key(|w| w.0);
        let max = ctl.max_deliveries.load(Ordering::Relaxed);
        for (_, i, v) in waiting {
            if (max != 0 && v.deliveries >= max) || v.deliveries == REJECTED {
                // Dead-lettered, or left for later if the dead-letter queue is full.
                self.dead_letter(held, i, &v)?;
                continue;
            }
            return Ok(Some(i));
        }
        Ok(None)
    }

    /// Under the lock: a FREE slot, if there is one.
    pub(super) fn free_slot_index(&self, held: &Held<'_>) -> Result<Option<u32>, Fail> {
        for i in 0..self.slots {
            if self.view(held, i)?.state == FREE {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Under the lock: slots HELD or RETURNED (a scan, not the hints).
    pub(super) fn slots_in_use(&self, held: &Held<'_>) -> Result<u32, Fail> {
        let ctl = self.ctl();
        if ctl.held.load(Ordering::Relaxed) == 0 && ctl.returned.load(Ordering::Relaxed) == 0 {
            // The hints are stored after each commit and repaired after a death: both zero
            // means no slot is in use, unless a hostile peer wrote them, which costs it only
            // its own items' leases.
            return Ok(0);
        }
        let mut n = 0;
        for i in 0..self.slots {
            if self.view(held, i)?.state != FREE {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Under the lock: whether any item is leased or waiting to be redelivered.
    pub(super) fn leases_out(&self, held: &Held<'_>) -> Result<bool, Fail> {
        Ok(self.slots_in_use(held)? > 0)
    }

    /// Under the lock: returns the leases whose holder has died, at most once per
    /// [`HOLDER_CHECK`] through this handle. Returns how many came back.
    pub(super) fn return_dead_leases(&self, held: &Held<'_>) -> Result<u32, Fail> {
        let now = now_ms();
        let last = self.holders_checked.load(Ordering::Relaxed);
        if now.saturating_sub(last) < HOLDER_CHECK.as_millis() as u64
            || self
                .holders_checked
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(0);
        }
        self.return_dead_leases_now(held)
    }

    /// As [`return_dead_leases`](Self::return_dead_leases), whenever called.
    pub(super) fn return_dead_leases_now(&self, held: &Held<'_>) -> Result<u32, Fail> {
        let (me, my_start, _) = sys::own_identity();
        let mut verdicts: Vec<((u32, u64), bool)> = Vec::new();
        let mut back = 0;
        for i in 0..self.slots {
            let v = self.view(held, i)?;
            if v.state != HELD || (v.pid == me && v.start == my_start) {
                continue;
            }
            let alive = match verdicts.iter().find(|(who, _)| *who == (v.pid, v.start)) {
                Some(&(_, alive)) => alive,
                None => {
                    let alive = sys::process_alive(v.pid, (v.start != 0).then_some(v.start));
                    verdicts.push(((v.pid, v.start), alive));
                    alive
                }
            };
            if !alive {
                self.return_slot(held, i);
                back += 1;
                log::warn!(
                    "queue {}: item {} returned for redelivery: process {} died holding its lease (delivery {})",
                    self.name(),
                    v.seq,
                    v.pid,
                    v.deliveries
                );
            }
        }
        Ok(back)
    }

    /// Takes the next item under a lease and passes its bytes to `read` (under the lock, or
    /// for a spilled item after it).
    pub(crate) fn get_leased<R>(
        &self,
        wait: Wait,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<Leased<R>, Fail> {
        let ctl = self.ctl();
        let (held, next) = self.take_next(wait, true)?;
        let (me, my_start, _) = sys::own_identity();
        let id = ctl.lease_ids.load(Ordering::Relaxed).wrapping_add(1);
        ctl.lease_ids.store(id, Ordering::Relaxed);
        let (slot, deliveries, outcome, putters) = match next {
            Next::Slot(i) => {
                let v = self.view(&held, i)?;
                let outcome = match self.slot_item(&held, i)? {
                    Item::Inline(bytes) => Ok(read(bytes)),
                    Item::Spilled(sref) => Err((spill::open(&self.name, &sref), read)),
                };
                let s = self.slot(i);
                let deliveries = v.deliveries.saturating_add(1);
                s.deliveries.store(deliveries, Ordering::Relaxed);
                s.pid.store(me, Ordering::Relaxed);
                s.start.store(my_start, Ordering::Relaxed);
                s.lease.store(id, Ordering::Relaxed);
                // SYNC: commit-lease of a returned item.
                s.state.store(HELD, Ordering::Relaxed);
                let r = ctl.returned.load(Ordering::Relaxed);
                ctl.returned.store(r.saturating_sub(1), Ordering::Relaxed);
                let h = ctl.held.load(Ordering::Relaxed);
                ctl.held.store(h.saturating_add(1), Ordering::Relaxed);
                (i, deliveries, outcome, 0)
            }
            Next::Ring {
                found,
                head,
                gets,
                slot: Some(i),
            } => {
                let payload = self.payload(&held, found.at, found.header.len);
                let (kind, outcome) = match found.header.kind {
                    INLINE if u64::from(found.header.len) <= SLOT_INLINE => {
                        self.write_slot_bytes(&held, i, payload);
                        (INLINE, Ok(read(payload)))
                    }
                    INLINE => {
                        // Too big for the slot: it gets a spill of its own, written under the
                        // lock (a leased item this big is rare; its copy dwarfs the rest).
                        let (sref, mut seg) = spill::write(&self.name, &[payload])?;
                        seg.disown();
                        self.write_slot_bytes(&held, i, bytemuck::bytes_of(&sref));
                        (SPILL, Ok(read(payload)))
                    }
                    _ => {
                        let sref: SpillRef = bytemuck::pod_read_unaligned(payload);
                        self.write_slot_bytes(&held, i, payload);
                        (SPILL, Err((spill::open(&self.name, &sref), read)))
                    }
                };
                let s = self.slot(i);
                s.kind.store(kind, Ordering::Relaxed);
                s.len.store(
                    if kind == INLINE {
                        found.header.len
                    } else {
                        SPILL_REF_LEN as u32
                    },
                    Ordering::Relaxed,
                );
                s.seq.store(found.header.seq, Ordering::Relaxed);
                s.deliveries.store(1, Ordering::Relaxed);
                s.pid.store(me, Ordering::Relaxed);
                s.start.store(my_start, Ordering::Relaxed);
                s.lease.store(id, Ordering::Relaxed);
                // SYNC: commit-lease. The item is now in the slot and still in the ring; the
                // repair frees the slot if we die before the next store.
                s.state.store(HELD, Ordering::Relaxed);
                // SYNC: commit-get.
                ctl.head.store(head + found.advance, Ordering::Release);
                ctl.gets.store(gets + 1, Ordering::Release);
                let h = ctl.held.load(Ordering::Relaxed);
                ctl.held.store(h.saturating_add(1), Ordering::Relaxed);
                (i, 1, outcome, ctl.not_full.claim(u32::MAX))
            }
            Next::Ring { slot: None, .. } | Next::Nothing { .. } => {
                return Err(self.corrupt("internal: a leased get without a slot"));
            }
        };
        drop(held);
        ctl.not_full.wake(putters);
        let value = match outcome {
            Ok(r) => r,
            // The spill stays named: the slot refers to it until the lease is acked.
            Err((seg, read)) => {
                let seg = seg?;
                let bytes = seg.payload::<u8>()?;
                // SAFETY: `payload` checked the bounds. A spill is never written after its
                // reference is committed, and its name goes only with the slot that names it,
                // which this lease holds.
                read(unsafe { bytes.as_ref() })
            }
        };
        Ok(Leased {
            slot,
            id,
            deliveries,
            value,
        })
    }

    /// Checks that slot `i` holds lease `id` and returns it as read.
    fn held_lease(&self, held: &Held<'_>, i: u32, id: u64) -> Result<View, SettleFail> {
        if i >= self.slots {
            return Err(SettleFail::Lost);
        }
        let v = self.view(held, i)?;
        if v.state != HELD || v.lease != id {
            return Err(SettleFail::Lost);
        }
        Ok(v)
    }

    /// Finishes lease `id` of slot `i`: the item leaves the queue, and counts as a task done.
    pub(crate) fn ack(&self, i: u32, id: u64) -> Result<(), SettleFail> {
        let ctl = self.ctl();
        let held = self.lock(Wait::Forever)?;
        let v = self.held_lease(&held, i, id)?;
        let spilled = self.spilled_ref(&held, i, &v);
        self.free_slot(&held, i, HELD);
        let joiners = self.mark_done(&held)?;
        let waiters = ctl.slot_free.claim(1);
        drop(held);
        ctl.slot_free.wake(waiters);
        ctl.joined.wake(joiners);
        if let Some(sref) = spilled {
            let _ = sys::shm_unlink(&SegmentName::spill_of(&self.name, sref.id()).os_name());
        }
        Ok(())
    }

    /// Hands lease `id` of slot `i` back: the item is delivered again, ahead of newer ones.
    pub(crate) fn release(&self, i: u32, id: u64) -> Result<(), SettleFail> {
        let ctl = self.ctl();
        let held = self.lock(Wait::Forever)?;
        self.held_lease(&held, i, id)?;
        self.return_slot(&held, i);
        let getters = ctl.not_empty.claim(1);
        drop(held);
        ctl.not_empty.wake(getters);
        Ok(())
    }

    /// Dead-letters the item of lease `id` of slot `i` at once (its bytes are not an item of
    /// the queue's type).
    pub(crate) fn reject(&self, i: u32, id: u64) -> Result<(), SettleFail> {
        let held = self.lock(Wait::Forever)?;
        let v = self.held_lease(&held, i, id)?;
        if !self.dead_letter(&held, i, &v)? {
            // The dead-letter queue is full: park it, marked as rejected, so that later gets
            // try the dead-letter queue again instead of delivering it.
            self.slot(i).deliveries.store(REJECTED, Ordering::Relaxed);
            self.return_slot(&held, i);
        }
        Ok(())
    }

    fn spilled_ref(&self, held: &Held<'_>, i: u32, v: &View) -> Option<SpillRef> {
        (v.kind == SPILL).then(|| bytemuck::pod_read_unaligned(self.slot_bytes(held, i, v.len)))
    }

    /// Under the lock: moves the item of slot `i` (as `v`) to the dead-letter queue, or
    /// discards it if there is none (or it is closed or broken). If the dead-letter queue is
    /// full, leaves the item where it is, for a later get to try again.
    fn dead_letter(&self, held: &Held<'_>, i: u32, v: &View) -> Result<bool, Fail> {
        let ctl = self.ctl();
        let spilled = self.spilled_ref(held, i, v);
        let bytes: Result<Vec<u8>, Error> = match spilled {
            None => Ok(self.slot_bytes(held, i, v.len).to_vec()),
            Some(sref) => spill::open(&self.name, &sref).and_then(|seg| {
                let p = seg.payload::<u8>()?;
                // SAFETY: `payload` checked the bounds; the spill is immutable once named, and
                // named by this slot, which we hold under the lock.
                Ok(unsafe { p.as_ref() }.to_vec())
            }),
        };
        let dlq = self.dead_letter_queue(held);
        let moved = match (&bytes, &dlq) {
            (Ok(bytes), Some(q)) => q.put(&[bytes], Wait::No),
            (Err(e), _) => Err(Fail::Error(Error::Op(e.to_string().into()))),
            (Ok(_), None) => Err(Fail::Closed),
        };
        match moved {
            Ok(()) => {
                let n = ctl.dead_lettered.load(Ordering::Relaxed);
                ctl.dead_lettered
                    .store(n.wrapping_add(1), Ordering::Relaxed);
                log::warn!(
                    "queue {}: item {} moved to the dead-letter queue after {} deliveries",
                    self.name(),
                    v.seq,
                    v.deliveries
                );
            }
            Err(Fail::WouldBlock | Fail::Timeout) => {
                log::warn!(
                    "queue {}: item {} waits for room in the dead-letter queue",
                    self.name(),
                    v.seq
                );
                return Ok(false);
            }
            Err(why) => {
                let n = ctl.discarded.load(Ordering::Relaxed);
                ctl.discarded.store(n.wrapping_add(1), Ordering::Relaxed);
                let why = match why {
                    Fail::Error(e) => e.to_string(),
                    _ if dlq.is_some() => "the dead-letter queue is closed".into(),
                    _ => "no dead-letter queue is set".into(),
                };
                log::error!(
                    "queue {}: item {} discarded after {} deliveries: {why}",
                    self.name(),
                    v.seq,
                    v.deliveries
                );
            }
        }
        self.free_slot(held, i, v.state);
        let joiners = self.mark_done(held)?;
        // Woken now, under the lock: the sleepers wait for it to be released anyway.
        ctl.joined.wake(joiners);
        let waiters = ctl.slot_free.claim(1);
        ctl.slot_free.wake(waiters);
        if let Some(sref) = spilled {
            let _ = sys::shm_unlink(&SegmentName::spill_of(&self.name, sref.id()).os_name());
        }
        Ok(true)
    }

    /// The dead-letter queue named in the control block, opened once per process.
    fn dead_letter_queue(&self, _held: &Held<'_>) -> Option<Arc<QueueCore>> {
        let ctl = self.ctl();
        let kind = Kind::from_u32(ctl.dlq_kind.load(Ordering::Relaxed))?;
        let len = (ctl.dlq_len.load(Ordering::Relaxed) as usize).min(MAX_NAME_LEN);
        let name: Vec<u8> = ctl.dlq_name[..len]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let name = String::from_utf8(name).ok()?;
        let mut cache = self.dlq.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = cache.as_ref().filter(|q| q.name() == name) {
            return Some(Arc::clone(q));
        }
        let opened = SegmentName::new(&name)
            .and_then(|n| QueueCore::open(n, kind, self.ty, Duration::ZERO))
            .map_err(|e| {
                log::error!(
                    "queue {}: cannot open its dead-letter queue {name}: {e}",
                    self.name()
                )
            })
            .ok()
            .map(Arc::new)?;
        *cache = Some(Arc::clone(&opened));
        Some(opened)
    }

    /// Sets (or with `None` clears) the dead-letter queue, for every process.
    pub(crate) fn set_dead_letter(&self, dlq: Option<&QueueCore>) -> Result<(), Fail> {
        if let Some(q) = dlq
            && (q.name() == self.name() || q.ty != self.ty)
        {
            return Err(Fail::Error(Error::InvalidArgument {
                what: "a queue's dead-letter queue must be another queue of the same type".into(),
            }));
        }
        let ctl = self.ctl();
        let _held = self.lock(Wait::Forever)?;
        match dlq {
            None => ctl.dlq_kind.store(0, Ordering::Relaxed),
            Some(q) => {
                let name = q.name().as_bytes();
                for (cell, b) in ctl.dlq_name.iter().zip(name) {
                    cell.store(*b, Ordering::Relaxed);
                }
                ctl.dlq_len.store(name.len() as u32, Ordering::Relaxed);
                ctl.dlq_kind.store(q.kind as u32, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Sets the deliveries after which an item is dead-lettered (0: no limit).
    pub(crate) fn set_max_deliveries(&self, max: u32) {
        self.ctl().max_deliveries.store(max, Ordering::Relaxed);
    }

    pub(crate) fn max_deliveries(&self) -> u32 {
        self.ctl().max_deliveries.load(Ordering::Relaxed)
    }

    pub(crate) fn lease_counts(&self) -> Counts {
        let c = self.ctl();
        Counts {
            held: c.held.load(Ordering::Relaxed),
            returned: c.returned.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            discarded: c.discarded.load(Ordering::Relaxed),
        }
    }

    /// After a holder died: frees the slots whose item is still in the ring (`first` is the
    /// oldest sequence number there), rebuilds the hints, and checks every slot.
    pub(super) fn repair_slots(&self, held: &Held<'_>, first: Option<u64>) -> Result<(), Fail> {
        let ctl = self.ctl();
        let (mut n_held, mut n_returned) = (0u32, 0u32);
        for i in 0..self.slots {
            let v = self.view(held, i)?;
            if v.state == FREE {
                continue;
            }
            if first.is_some_and(|f| v.seq >= f) {
                // Leased, and the get that took it from the ring did not commit.
                self.slot(i).state.store(FREE, Ordering::Relaxed);
                continue;
            }
            if v.state == HELD {
                n_held += 1;
            } else {
                n_returned += 1;
            }
        }
        ctl.held.store(n_held, Ordering::Relaxed);
        ctl.returned.store(n_returned, Ordering::Relaxed);
        Ok(())
    }

    /// Adds the spill ids the slots refer to. Under the lock.
    pub(super) fn slot_spill_refs(&self, held: &Held<'_>, into: &mut HashSet<u128>) -> Option<()> {
        for i in 0..self.slots {
            let v = self.view(held, i).ok()?;
            if v.state != FREE
                && let Some(sref) = self.spilled_ref(held, i, &v)
            {
                into.insert(sref.id());
            }
        }
        Some(())
    }
}
