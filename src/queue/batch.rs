//! Many items per lock round trip (`put_many`, `get_many`), and items written or read in place
//! in the ring (`put_with`, `get_with`, and serde items serialised straight into it).
//!
//! A batch commits with one store, as a single operation does: a put batch writes every frame
//! that fits and then stores `tail` once (a holder killed before that store put none of the
//! batch's frames, after it all of them); a get batch reads every frame it takes and then stores
//! `head` once. The repair after a death is the same as for single operations.

use std::sync::atomic::Ordering;

use super::claim::OUTSIDE_MIN;
use super::core::{Fail, QueueCore, Wait};
use super::ring::{self, FrameHeader, HEADER, INLINE, SPILL};

/// The most ring space an item may be serialised into in place, under the lock (see
/// [`QueueCore::put_serialized`]): it bounds how long a user's `Serialize` runs while other
/// processes wait for the queue, and how much work a miss wastes. Beyond it, an item is
/// serialised into a buffer outside the lock and copied in, where the copy is cheap beside the
/// serialising.
pub(crate) const IN_PLACE_MAX: u64 = 4096;

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
            let held = self.lock_put(wait).map_err(|f| (done, f))?;
            if ctl.closed.load(Ordering::Relaxed) != 0 {
                return Err((done, Fail::Closed));
            }
            let (head, tail, puts, gets) = self.state(&held).map_err(|f| (done, f))?;
            if self.tail_claimed(&held).map_err(|f| (done, f))? {
                // Another put is copying into the space at `tail` (see `claim.rs`).
                let held = self
                    .wait_behind_claim(held, &mut spun, &ctl.puts, &ctl.not_full, wait)
                    .map_err(|f| (done, f))?;
                drop(held);
                continue;
            }
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
                ctl.tail.store(at_tail, Ordering::Release);
                ctl.puts.store(puts + n, Ordering::Release);
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
        ctl.head.store(head, Ordering::Release);
        ctl.gets.store(pos.gets + n, Ordering::Release);
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
        let mut held = self.lock_put(wait)?;
        loop {
            if ctl.closed.load(Ordering::Relaxed) != 0 {
                return Err(Fail::Closed);
            }
            let (head, tail, puts, gets) = self.state(&held)?;
            if self.tail_claimed(&held)? {
                // Another put is copying into the space at `tail` (see `claim.rs`).
                held = self.wait_behind_claim(held, &mut spun, &ctl.puts, &ctl.not_full, wait)?;
                continue;
            }
            if (maxsize == 0 || puts - gets < maxsize)
                && let Some(pl) = ring::place(head, tail, self.cap, size)
            {
                if total >= OUTSIDE_MIN {
                    return self.put_outside(held, tail, pl, puts, total, |space| {
                        let (to, rest) = space.split_at_mut(prefix.len());
                        to.copy_from_slice(prefix);
                        fill(rest);
                    });
                }
                self.write_frame_with(&mut held, tail, pl, puts, prefix, len, fill);
                // SYNC: commit-put.
                ctl.tail.store(pl.new_tail(tail, size), Ordering::Release);
                ctl.puts.store(puts + 1, Ordering::Release);
                break;
            }
            held = self.wait_turn(held, &mut spun, &ctl.gets, &ctl.not_full, wait, None)?;
        }
        let getters = ctl.not_empty.claim(1);
        drop(held);
        ctl.not_empty.wake(getters);
        Ok(())
    }

    /// Puts one item that `serialize` writes straight into the ring, under the lock: into the
    /// free space at the tail, up to the end of the ring and at most [`IN_PLACE_MAX`] bytes.
    /// `serialize` returns how many bytes it wrote (at most its buffer's length), after which
    /// the item is put, or `None` if the item did not fit there or did not serialise.
    ///
    /// `Ok(false)` when nothing was put and the queue is unchanged: no room right now (by
    /// count or bytes), the item did not fit, or it did not serialise. The caller then puts it
    /// the general way, which waits for room, wraps, spills and reports the error. Bytes
    /// written beyond `tail` by a miss are never read: only the commit makes a frame visible.
    pub(crate) fn put_serialized(
        &self,
        wait: Wait,
        serialize: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Result<bool, Fail> {
        let ctl = self.ctl();
        let mut held = self.lock_put(wait)?;
        if ctl.closed.load(Ordering::Relaxed) != 0 {
            return Err(Fail::Closed);
        }
        let maxsize = ctl.maxsize.load(Ordering::Relaxed);
        // The frame never wraps here: its space runs from the tail to the end of the ring or
        // of the free space, whichever comes first (both are multiples of 8). No room by this
        // handle's reading of the get side may be room by a fresh one: look once more.
        let mut fresh = false;
        let (head, tail, puts, at, room) = loop {
            let (head, tail, puts, gets) = self.state(&held)?;
            let at = tail % self.cap;
            let room = (self.cap - at).min(self.cap - (tail - head));
            if (maxsize == 0 || puts - gets < maxsize) && room >= HEADER + 8 {
                break (head, tail, puts, at, room);
            }
            if fresh || !self.refresh(&held) {
                return Ok(false);
            }
            fresh = true;
        };
        if self.tail_claimed(&held)? {
            return Ok(false);
        }
        let window = (room - HEADER).min(IN_PLACE_MAX);
        let Some(len) = serialize(self.free_space(&mut held, at + HEADER, window as usize)) else {
            return Ok(false);
        };
        if len as u64 > window {
            return Err(self.corrupt("internal: an item serialised beyond its space"));
        }
        // Within the window, the frame ends by the end of the ring and of the free space
        // (`window` and `room` are multiples of 8): where `ring::place` puts it, unpadded.
        let size = ring::frame_size(len as u64);
        let pl = ring::Placement { pad: 0, at };
        debug_assert_eq!(ring::place(head, tail, self.cap, size), Some(pl));
        let header = FrameHeader {
            seq: puts,
            len: len as u32,
            kind: INLINE,
        };
        self.write(&held, at, bytemuck::bytes_of(&header));
        // SYNC: commit-put.
        ctl.tail.store(pl.new_tail(tail, size), Ordering::Release);
        ctl.puts.store(puts + 1, Ordering::Release);
        let getters = ctl.not_empty.claim(1);
        drop(held);
        ctl.not_empty.wake(getters);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::{Kind, SegmentName, TypeInfo};

    fn queue(maxsize: usize, capacity: usize) -> QueueCore {
        let name = SegmentName::anonymous().unwrap();
        QueueCore::create(name, Kind::Queue, TypeInfo::of::<u8>(), maxsize, capacity).unwrap()
    }

    fn take(q: &QueueCore) -> Vec<u8> {
        q.get(Wait::No, <[u8]>::to_vec).unwrap()
    }

    #[test]
    fn items_are_serialised_in_place_up_to_the_end_of_the_ring() {
        let q = queue(0, 256);
        let put = |n: usize, fill: u8, expect_window: usize| {
            q.put_serialized(Wait::No, |buf| {
                assert_eq!(buf.len(), expect_window);
                buf[..n].fill(fill);
                Some(n)
            })
        };
        assert!(matches!(put(100, 1, 240), Ok(true))); // a frame of 16 + 104 bytes
        assert!(matches!(put(120, 2, 120), Ok(true))); // to the ring's end
        let untouched = q.put_serialized(Wait::No, |_| panic!("no room: not called"));
        assert!(matches!(untouched, Ok(false)));
        assert_eq!(take(&q), vec![1; 100]);
        // The free space is now at the ring's start: 120 bytes, a window of 104.
        assert!(
            matches!(q.put_serialized(Wait::No, |_| None), Ok(false)),
            "a miss"
        );
        assert_eq!(q.len(), 1, "a miss puts nothing");
        assert!(matches!(
            q.put_serialized(Wait::No, |buf| Some(buf.len() + 1)),
            Err(Fail::Error(_))
        ));
        assert!(matches!(put(104, 3, 104), Ok(true)));
        assert_eq!(take(&q), vec![2; 120]);
        assert_eq!(take(&q), vec![3; 104]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn the_window_is_at_most_in_place_max_and_a_full_queue_is_left_to_the_caller() {
        let q = queue(2, 1 << 16);
        for i in 0..2u8 {
            let put = q.put_serialized(Wait::No, |buf| {
                assert_eq!(buf.len() as u64, IN_PLACE_MAX);
                buf[0] = i;
                Some(1)
            });
            assert!(matches!(put, Ok(true)));
        }
        let full = q.put_serialized(Wait::No, |_| panic!("maxsize reached: not called"));
        assert!(matches!(full, Ok(false)));
        assert_eq!((take(&q), take(&q)), (vec![0], vec![1]));
        // Claiming more than the window is an error, and puts nothing.
        assert!(matches!(
            q.put_serialized(Wait::No, |buf| Some(buf.len() + 8)),
            Err(Fail::Error(_))
        ));
        assert_eq!(q.len(), 0);
    }
}
