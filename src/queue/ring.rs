//! The ring's frame format and index arithmetic, apart from shared memory: pure functions,
//! unit-tested here and fuzzed through the consumer path.
//!
//! The ring is `cap` bytes. `head` and `tail` are byte positions that only grow (the physical
//! offset is `pos % cap`); `tail - head` bytes are in use. A frame is a 16-byte header and its
//! payload rounded up to 8 bytes, and never wraps: a frame that would cross the end of the ring
//! starts at offset 0 instead, after a PAD frame (or, when fewer than 16 bytes are left, after
//! an implicit gap both sides agree on). Every item frame carries its sequence number: the
//! number of items put before it. That is what lets a lock holder's death be repaired: walking
//! the frames between `head` and `tail` gives back the counts a dead holder did not finish
//! updating.

use bytemuck::{Pod, Zeroable};

/// Bytes of a frame header.
pub(crate) const HEADER: u64 = 16;
/// The smallest and largest ring, in bytes.
pub(crate) const MIN_CAPACITY: u64 = 256;
pub(crate) const MAX_CAPACITY: u64 = 1 << 31;

/// A frame holding a serialised item.
pub(crate) const INLINE: u32 = 0x4c4e_4931;
/// A frame holding a [`SpillRef`] to an item stored in a segment of its own.
pub(crate) const SPILL: u32 = 0x4c50_5331;
/// Filler up to the end of the ring.
pub(crate) const PAD: u32 = 0x4441_5031;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct FrameHeader {
    /// The item's sequence number (0 in a PAD frame).
    pub(crate) seq: u64,
    /// Payload bytes (not counting the header or the rounding).
    pub(crate) len: u32,
    pub(crate) kind: u32,
}

/// The payload of a SPILL frame: which spill segment holds the item, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct SpillRef {
    pub(crate) id: [u64; 2],
    pub(crate) len: u64,
}

impl SpillRef {
    pub(crate) fn new(id: u128, len: u64) -> SpillRef {
        SpillRef {
            id: [id as u64, (id >> 64) as u64],
            len,
        }
    }

    /// The spill segment's id (its name is `<queue>.spill-<id>`).
    pub(crate) fn id(&self) -> u128 {
        u128::from(self.id[0]) | u128::from(self.id[1]) << 64
    }
}

pub(crate) const SPILL_REF_LEN: u64 = std::mem::size_of::<SpillRef>() as u64;

/// The ring bytes a frame with `payload` bytes takes.
pub(crate) fn frame_size(payload: u64) -> u64 {
    HEADER + payload.div_ceil(8) * 8
}

/// A ring capacity as the queue stores it: rounded up to 8, within the limits.
pub(crate) fn capacity_for(requested: u64) -> Option<u64> {
    let cap = requested.checked_next_multiple_of(8)?;
    (MIN_CAPACITY..=MAX_CAPACITY).contains(&cap).then_some(cap)
}

/// Where a new frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Bytes skipped before it, up to the end of the ring (a PAD frame if at least `HEADER`).
    pub(crate) pad: u64,
    /// Its physical offset.
    pub(crate) at: u64,
}

impl Placement {
    /// The tail after writing a frame of `size` bytes here.
    pub(crate) fn new_tail(&self, tail: u64, size: u64) -> u64 {
        tail + self.pad + size
    }
}

/// Where a frame of `size` bytes goes when appended at `tail`, if it fits in the free space.
/// The caller has checked `head <= tail <= head + cap`.
pub(crate) fn place(head: u64, tail: u64, cap: u64, size: u64) -> Option<Placement> {
    let free = cap - (tail - head);
    let p = tail % cap;
    let pad = if p + size <= cap { 0 } else { cap - p };
    (pad + size <= free).then_some(Placement {
        pad,
        at: (p + pad) % cap,
    })
}

/// A frame found at `head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    /// Physical offset of its header.
    pub(crate) at: u64,
    /// How far `head` moves when it is taken (padding before it included).
    pub(crate) advance: u64,
    pub(crate) header: FrameHeader,
}

/// Finds the oldest frame, reading headers with `read_header(offset)`. `Ok(None)` if the ring
/// is empty; `Err` with the reason if what is there is not a well-formed frame (a broken or
/// hostile writer): every length is checked before anything is read through it.
///
/// Inlined: returned through memory, its result is read back with wider loads than the stores
/// that wrote it, a store-forwarding stall that cost a get a third of its time.
#[inline(always)]
pub(crate) fn oldest(
    head: u64,
    tail: u64,
    cap: u64,
    read_header: impl Fn(u64) -> FrameHeader,
) -> Result<Option<Found>, &'static str> {
    if tail < head || tail - head > cap {
        return Err("head and tail are inconsistent");
    }
    if !head.is_multiple_of(8) || !tail.is_multiple_of(8) || !cap.is_multiple_of(8) {
        return Err("head or tail is not 8-aligned");
    }
    if head == tail {
        return Ok(None);
    }
    let used = tail - head;
    let mut p = head % cap;
    let mut skip = 0;
    if cap - p < HEADER {
        skip = cap - p;
        p = 0;
    }
    let mut header = read_header(p);
    if header.kind == PAD {
        if p == 0 || skip != 0 {
            return Err("a PAD frame at the start of the ring");
        }
        skip = cap - p;
        p = 0;
        header = read_header(p);
    }
    let size = match header.kind {
        INLINE => frame_size(u64::from(header.len)),
        SPILL if u64::from(header.len) == SPILL_REF_LEN => frame_size(SPILL_REF_LEN),
        SPILL => return Err("a SPILL frame of the wrong length"),
        _ => return Err("an unknown frame kind"),
    };
    if p + size > cap {
        return Err("a frame that runs past the end of the ring");
    }
    if skip + size > used {
        return Err("a frame that runs past the tail");
    }
    Ok(Some(Found {
        at: p,
        advance: skip + size,
        header,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A ring simulated in a Vec, using only this module's functions.
    struct Sim {
        bytes: Vec<u8>,
        head: u64,
        tail: u64,
        seq: u64,
    }

    impl Sim {
        fn new(cap: u64) -> Sim {
            Sim {
                bytes: vec![0; cap as usize],
                head: 0,
                tail: 0,
                seq: 0,
            }
        }
        fn cap(&self) -> u64 {
            self.bytes.len() as u64
        }
        fn write_header(&mut self, at: u64, h: FrameHeader) {
            self.bytes[at as usize..(at + HEADER) as usize].copy_from_slice(bytemuck::bytes_of(&h));
        }
        fn put(&mut self, payload: &[u8]) -> bool {
            let size = frame_size(payload.len() as u64);
            let Some(pl) = place(self.head, self.tail, self.cap(), size) else {
                return false;
            };
            if pl.pad >= HEADER {
                let at = self.tail % self.cap();
                self.write_header(
                    at,
                    FrameHeader {
                        seq: 0,
                        len: (pl.pad - HEADER) as u32,
                        kind: PAD,
                    },
                );
            }
            self.write_header(
                pl.at,
                FrameHeader {
                    seq: self.seq,
                    len: payload.len() as u32,
                    kind: INLINE,
                },
            );
            let start = (pl.at + HEADER) as usize;
            self.bytes[start..start + payload.len()].copy_from_slice(payload);
            self.tail = pl.new_tail(self.tail, size);
            self.seq += 1;
            true
        }
        fn get(&mut self) -> Option<Vec<u8>> {
            let bytes = &self.bytes;
            let read =
                |at: u64| bytemuck::pod_read_unaligned(&bytes[at as usize..(at + HEADER) as usize]);
            let f = oldest(self.head, self.tail, self.cap(), read).unwrap()?;
            let start = (f.at + HEADER) as usize;
            let out = self.bytes[start..start + f.header.len as usize].to_vec();
            self.head += f.advance;
            Some(out)
        }
    }

    #[test]
    fn frames_round_to_eight_bytes_after_a_sixteen_byte_header() {
        assert_eq!(frame_size(0), 16);
        assert_eq!(frame_size(1), 24);
        assert_eq!(frame_size(8), 24);
        assert_eq!(frame_size(64), 80);
        assert_eq!(capacity_for(1000), Some(1000));
        assert_eq!(capacity_for(1001), Some(1008));
        assert_eq!(capacity_for(10), None);
        assert_eq!(capacity_for(u64::MAX), None);
    }

    #[test]
    fn a_frame_that_would_cross_the_end_starts_at_zero() {
        assert_eq!(place(0, 0, 256, 80), Some(Placement { pad: 0, at: 0 }));
        assert_eq!(place(200, 200, 256, 80), Some(Placement { pad: 56, at: 0 }));
        assert_eq!(
            place(100, 200, 256, 80),
            Some(Placement { pad: 56, at: 0 }),
            "56 + 80 <= 156 free"
        );
        assert_eq!(
            place(44, 200, 256, 80),
            None,
            "56 + 80 > 100 free, though 80 alone would fit"
        );
        assert_eq!(place(0, 240, 256, 16), Some(Placement { pad: 0, at: 240 }));
    }

    #[test]
    fn wrapping_traffic_of_mixed_sizes_comes_out_in_order() {
        for cap in [256u64, 264, 1000, 4096] {
            let mut sim = Sim::new(cap);
            let mut model = VecDeque::new();
            let mut x = 7u64;
            for _ in 0..5000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let len = (x % 90) as usize;
                if !x.is_multiple_of(3) {
                    let item: Vec<u8> = (0..len).map(|i| (i as u64 ^ x) as u8).collect();
                    if sim.put(&item) {
                        model.push_back(item);
                    } else {
                        assert!(
                            !model.is_empty(),
                            "an empty ring of {cap} refused {len} bytes"
                        );
                    }
                } else {
                    assert_eq!(sim.get(), model.pop_front());
                }
            }
            while let Some(item) = model.pop_front() {
                assert_eq!(sim.get(), Some(item));
            }
            assert_eq!(sim.get(), None);
        }
    }

    #[test]
    fn malformed_frames_are_reported_not_followed() {
        let h = |kind, len| move |_| FrameHeader { seq: 0, len, kind };
        assert!(oldest(0, 0, 256, h(INLINE, 0)).unwrap().is_none());
        assert!(oldest(10, 5, 256, h(INLINE, 0)).is_err());
        assert!(oldest(0, 300, 256, h(INLINE, 0)).is_err());
        assert!(oldest(3, 67, 256, h(INLINE, 8)).is_err(), "unaligned head");
        assert!(oldest(0, 64, 256, h(0xdead, 8)).is_err());
        assert!(
            oldest(0, 64, 256, h(INLINE, 1000)).is_err(),
            "past the tail"
        );
        assert!(
            oldest(0, 256, 256, h(INLINE, u32::MAX)).is_err(),
            "past the end"
        );
        assert!(oldest(0, 64, 256, h(SPILL, 3)).is_err());
        assert!(oldest(0, 64, 256, h(PAD, 0)).is_err(), "PAD at offset 0");
        let ok = oldest(0, 64, 256, h(SPILL, SPILL_REF_LEN as u32))
            .unwrap()
            .unwrap();
        assert_eq!(ok.advance, 16 + 24);
    }
}
