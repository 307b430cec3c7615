//! Repair after a queue's lock holder died: the counts are rebuilt from the frames.
//!
//! Every frame carries its item's sequence number, and a put commits with one store of `tail`,
//! a get with one store of `head`. So the frames between `head` and `tail` are exactly the
//! committed items, whatever moment the holder died at, and their sequence numbers give back
//! the counts it may not have finished updating.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::core::{Fail, Held, QueueCore, Wait};
use super::ring::{self, SPILL, SpillRef};
use super::spill;

impl QueueCore {
    /// After a holder died: recompute `puts` and `gets` from the frames between `head` and
    /// `tail`, which are exactly the committed items.
    pub(super) fn repair(&self, held: &Held<'_>) -> Result<(), Fail> {
        let c = self.ctl();
        let (head, tail) = (
            c.head.load(Ordering::Relaxed),
            c.tail.load(Ordering::Relaxed),
        );
        let mut pos = head;
        let (mut first, mut last) = (None, None);
        while pos != tail {
            let f = ring::oldest(pos, tail, self.cap, |at| self.read_header(at))
                .map_err(|e| self.corrupt(format!("repair: {e}")))?
                .ok_or_else(|| self.corrupt("repair: ring ended early"))?;
            if let Some(prev) = last
                && f.header.seq != prev + 1
            {
                return Err(self.corrupt("repair: sequence numbers out of order"));
            }
            first.get_or_insert(f.header.seq);
            last = Some(f.header.seq);
            pos += f.advance;
        }
        let (puts, gets) = match (first, last) {
            (Some(f), Some(l)) => (
                l.checked_add(1)
                    .ok_or_else(|| self.corrupt("repair: sequence number at its limit"))?,
                f,
            ),
            _ => {
                let m = c
                    .puts
                    .load(Ordering::Relaxed)
                    .max(c.gets.load(Ordering::Relaxed));
                (m, m)
            }
        };
        c.puts.store(puts, Ordering::Release);
        c.gets.store(gets, Ordering::Release);
        // A consumer may have died between moving an item to a lease slot and taking it from
        // the ring (see `queue/slots.rs`), or between a slot's commit and its counts.
        self.repair_slots(held, first)?;
        if c.done.load(Ordering::Relaxed) > gets {
            c.done.store(gets, Ordering::Relaxed);
        }
        log::warn!(
            "queue {}: repaired after a process died holding its lock ({} items in it)",
            self.name(),
            puts.saturating_sub(gets)
        );
        // A producer may have died with its spill written and not committed.
        if let Some(referenced) = self.spill_refs(held) {
            self.reclaim_spills(Some(held), &referenced);
        }
        Ok(())
    }
}

impl QueueCore {
    /// The spill ids the ring refers to, at most once a second through this handle (`None` the
    /// other times): a putter about to spill pays for a look at `/dev/shm` rarely, and does it
    /// after releasing the lock ([`reclaim_spills`](Self::reclaim_spills)).
    pub(super) fn spill_refs_now_and_then(&self, held: &Held<'_>) -> Option<HashSet<u128>> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.spills_checked.load(Ordering::Relaxed);
        let due = now != last
            && self
                .spills_checked
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if due { self.spill_refs(held) } else { None }
    }

    /// The spill ids the frames between `head` and `tail` and the lease slots refer to; `None`
    /// if the frames or slots cannot be read (a corrupt ring is reported by the operations themselves).
    pub(super) fn spill_refs(&self, held: &Held<'_>) -> Option<HashSet<u128>> {
        let c = self.ctl();
        let (head, tail) = (
            c.head.load(Ordering::Relaxed),
            c.tail.load(Ordering::Relaxed),
        );
        let mut referenced = HashSet::new();
        let mut pos = head;
        while pos != tail {
            let f = ring::oldest(pos, tail, self.cap, |at| self.read_header(at)).ok()??;
            if f.header.kind == SPILL {
                let r: SpillRef =
                    bytemuck::pod_read_unaligned(self.payload(held, f.at, f.header.len));
                referenced.insert(r.id());
            }
            pos += f.advance;
        }
        self.slot_spill_refs(held, &mut referenced)?;
        Some(referenced)
    }

    /// Removes the spills that none of `referenced` names and whose writer died before
    /// committing its reference (see [`spill::abandoned`]). Without the lock (`held` is
    /// `None`), `referenced` may be stale: a writer may have committed a reference since, and
    /// died. So what looks abandoned is checked again under the lock before it is removed;
    /// a dead writer names nothing more, and only a spill's writer ever names it.
    pub(super) fn reclaim_spills(&self, held: Option<&Held<'_>>, referenced: &HashSet<u128>) {
        let candidates = spill::abandoned(&self.name, referenced);
        if candidates.is_empty() {
            return;
        }
        let relock;
        let current;
        let still_named = match held {
            // Taken under this same hold: current.
            Some(_) => referenced,
            None => {
                // A side job: if the lock is busy, another sweep will come.
                let Ok(h) = self.lock(Wait::No) else {
                    return;
                };
                relock = h;
                let Some(refs) = self.spill_refs(&relock) else {
                    return;
                };
                current = refs;
                &current
            }
        };
        let mut removed = 0;
        for id in candidates {
            if !still_named.contains(&id) && spill::remove(&self.name, id) {
                removed += 1;
            }
        }
        if removed > 0 {
            log::info!(
                "queue {}: removed {removed} spilled items no frame or lease refers to (their writers died)",
                self.name()
            );
        }
    }
}
