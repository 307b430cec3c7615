//! Many items per lock round trip (`put_many`, `get_many`), and items written or read in place
//! in the ring (`put_with`, `get_with`).
//!
//! A batch commits with one store, as a single operation does: a put batch writes every frame
//! that fits and then stores `tail` once (a holder killed before that store put none of the
//! batch's frames, after it all of them); a get batch reads every frame it takes and then stores
//! `head` once. The repair after a death is the same as for single operations.

use std::sync::atomic::Ordering;

use super::core::{Fail, QueueCore, Wait};
use super::ring::{self, INLINE, SPILL};

impl QueueCore {
    /// Puts `items` (each one item's serialised bytes) in order: under each lock hold, every
    /// one that fits in the ring's free space (and under `maxsize`), then waits for room as
    /// `put` does. An item too big for the free space of an empty ring goes through `put`
    /// alone (it spills). On failure, returns how many were put.
    pub(crate) fn put_batch(&self, items: &[&[u8]], wait: Wait) -> Result<(), (usize, Fail)> {
        let ctl = self.ctl();
        let maxsize = ctl.maxsize.load(Ordering::Relaxed);
        let mut done = 0;
        let mut spun = false;
        while done < items.len() {
            let held = self.lock(wait).map_err(|f| (done, f))?;
            if ctl.closed.load(Ordering::Relaxed) != 0 {
                return Err((done, Fail::Closed));
            }
            let (head, tail, puts, gets) = self.state(&held).map_err(|f| (done, f))?;
            let (mut at_tail, mut n) = (tail, 0u64);
            while let Some(item) = items.get(done + n as usize) {
                let len = item.len() as u64;
                let size = ring::frame_size(len);
                if (maxsize != 0 && puts + n - gets >= maxsize) || len > u64::from(u32::MAX) {
                    break;
                }
                let Some(pl) = ring::place(head, at_tail, self.cap, size) else {
                    break;
                };
                self.write_frame(&held, at_tail, pl, puts + n, INLINE, &[item]);
                at_tail = pl.new_tail(at_tail, size);
                n += 1;
            }
            if n > 0 {
                // SYNC: commit-put of the whole batch.
                ctl.tail.store(at_tail, Ordering::Relaxed);
                ctl.puts.store(puts + n, Ordering::Relaxed);
                done += n as usize;
                spun = false;
                let getters = ctl.not_empty.claim(n.min(u64::from(u32::MAX)) as u32);
                drop(held);
                ctl.not_empty.wake(getters);
                continue;
            }
            let next = items[done];
            let never_fits = ring::frame_size(next.len() as u64) > self.cap / 2;
            if never_fits && (maxsize == 0 || puts - gets < maxsize) {
                // A big item: the single put spills it, waiting for room for its reference.
                drop(held);
                self.put(&[next], wait).map_err(|f| (done, f))?;
                done += 1;
                continue;
            }
            let held = self
                .wait_turn(held, &mut spun, &ctl.gets, &ctl.not_full, wait, None)
                .map_err(|f| (done, f))?;
            drop(held);
        }
        Ok(())
    }

    /// Takes up to `max` items (at least one, waiting for it as `get` does), passing each one's
    /// bytes to `read` under the lock; `read` returns whether it took the item (`false` leaves
    /// it, and every later one, in the queue, and ends the batch). A spilled item, or a queue
    /// with leases out, is taken alone through `get`. Returns how many were taken.
    pub(crate) fn get_batch(
        &self,
        max: usize,
        wait: Wait,
        mut read: impl FnMut(&[u8]) -> bool,
    ) -> Result<usize, Fail> {
        if max == 0 {
            return Ok(0);
        }
        let ctl = self.ctl();
        let Some((held, pos)) = self.wait_for_item(wait)? else {
            return self.get(wait, read).map(usize::from);
        };
        let (mut head, mut n) = (pos.head, 0u64);
        while n < max as u64 && pos.gets + n < pos.puts {
            let found = self.oldest_frame(head, pos.tail, pos.puts, pos.gets + n)?;
            if found.header.kind == SPILL {
                break;
            }
            if !read(self.payload(&held, found.at, found.header.len)) {
                break;
            }
            head += found.advance;
            n += 1;
        }
        if n == 0 {
            // The oldest is spilled (or refused): take it the single way.
            drop(held);
            return self.get(wait, read).map(usize::from);
        }
        // SYNC: commit-get of the whole batch.
        ctl.head.store(head, Ordering::Relaxed);
        ctl.gets.store(pos.gets + n, Ordering::Relaxed);
        let putters = ctl.not_full.claim(u32::MAX);
        drop(held);
        ctl.not_full.wake(putters);
        Ok(n as usize)
    }

    /// Puts one item of `prefix` and `len` more bytes, which `fill` writes in place in the ring
    /// under the lock. An item too big for the ring is filled into a buffer and put as usual.
    pub(crate) fn put_in_place(
        &self,
        prefix: &[u8],
        len: usize,
        fill: impl FnOnce(&mut [u8]),
        wait: Wait,
    ) -> Result<(), Fail> {
        let total = prefix.len() as u64 + len as u64;
        let size = ring::frame_size(total);
        if size > self.cap / 2 || total > u64::from(u32::MAX) {
            let mut buf = vec![0; len];
            fill(&mut buf);
            return self.put(&[prefix, &buf], wait);
        }
        let ctl = self.ctl();
        let maxsize = ctl.maxsize.load(Ordering::Relaxed);
        let mut spun = false;
        let mut held = self.lock(wait)?;
        loop {
            if ctl.closed.load(Ordering::Relaxed) != 0 {
                return Err(Fail::Closed);
            }
            let (head, tail, puts, gets) = self.state(&held)?;
            if (maxsize == 0 || puts - gets < maxsize)
                && let Some(pl) = ring::place(head, tail, self.cap, size)
            {
                self.write_frame_with(&held, tail, pl, puts, prefix, len, fill);
                // SYNC: commit-put.
                ctl.tail.store(pl.new_tail(tail, size), Ordering::Relaxed);
                ctl.puts.store(puts + 1, Ordering::Relaxed);
                break;
            }
            held = self.wait_turn(held, &mut spun, &ctl.gets, &ctl.not_full, wait, None)?;
        }
        let getters = ctl.not_empty.claim(1);
        drop(held);
        ctl.not_empty.wake(getters);
        Ok(())
    }
}
