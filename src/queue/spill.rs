//! Spilled items: an item that does not fit in a queue's free ring space goes to a segment of
//! its own, `<queue>.spill-<id>`, and the ring carries a [`SpillRef`] to it.
//!
//! The producer writes the segment and owns it until its reference is committed to the ring;
//! then the queue owns it (the producer may exit). The consumer that takes the reference reads
//! the segment and removes it. A producer that dies between writing a spill and committing its
//! reference leaves it behind: the queue removes it while it lives (see [`abandoned`]).
//! Destroying the queue removes every spill left.

use std::collections::HashSet;

use super::ring::SpillRef;
use crate::error::{Error, Result};
use crate::shm::{self, Expect, Kind, Segment, SegmentName, Spec, TypeInfo};
use crate::sys;

/// Writes `parts` (one item) into a new spill segment of `queue`. The returned segment still
/// owns its name: dropping it before the reference is committed removes it.
pub(crate) fn write(queue: &SegmentName, parts: &[&[u8]]) -> Result<(SpillRef, Segment)> {
    let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
    // 96 random bits, and the producer's pid in the low 32: a spill whose producer died
    // before writing its header can still be told to be abandoned (see `reclaim`).
    let random = sys::random_u128().map_err(|e| Error::io("getrandom", e))?;
    let id = (random & !u128::from(u32::MAX)) | u128::from(sys::current_pid());
    let spec = Spec::new(
        Kind::Spill,
        TypeInfo::of::<u8>(),
        len,
        sys::page_size() as u64,
    )?;
    let seg = Segment::create(SegmentName::spill_of(queue, id), &spec, |seg| {
        let mut at = seg.payload::<u8>()?.cast::<u8>();
        for part in parts {
            // SAFETY: the payload holds `len` bytes, the sum of the parts' lengths, so each copy
            // stays inside it; the segment is not published, so no one else can see it, and
            // the parts are private memory, so nothing overlaps.
            unsafe {
                std::ptr::copy_nonoverlapping(part.as_ptr(), at.as_ptr(), part.len());
                at = at.add(part.len());
            }
        }
        Ok(())
    })?;
    let sref = SpillRef::new(id, len);
    Ok((sref, seg))
}

/// Opens the spilled item `sref` of `queue`. Called under the queue's lock before the
/// reference leaves the ring, so that a spill is always named by a frame, open in its
/// consumer, or being written by a live producer: [`abandoned`] relies on it. The name stays
/// until [`take`]: a consumer that dies before its get commits leaves the item in the queue,
/// spill included.
pub(crate) fn open(queue: &SegmentName, sref: &SpillRef) -> Result<Segment> {
    let name = SegmentName::spill_of(queue, sref.id());
    let expect = Expect {
        kind: Kind::Spill,
        ty: TypeInfo::of::<u8>(),
        len: Some(sref.len),
    };
    Segment::open(name, &expect, std::time::Duration::ZERO)
}

/// Once the get has committed: removes the name of a spill opened by [`open`] and passes its
/// bytes to `read`.
pub(crate) fn take<R>(seg: &Segment, read: impl FnOnce(&[u8]) -> R) -> Result<R> {
    let _ = shm::remove(seg.name());
    let bytes = seg.payload::<u8>()?;
    // SAFETY: `payload` checked the bounds. Once its reference was taken from the ring (under
    // the queue's lock), this consumer is the only process that touches the spill: producers
    // never write a spill after committing its reference, and its name is removed.
    Ok(read(unsafe { bytes.as_ref() }))
}

/// The spills of `queue` that none of `referenced` names (the ids the ring and the lease slots
/// name) and whose writer has died: written by a producer killed before it committed the
/// reference (for example while it waited for room), or by a consumer killed before its lease
/// committed. `referenced` may be older than the listing: a writer can commit a reference
/// and then die in between, so the caller removes these only after checking, under the
/// queue's lock, that they are still not named (a dead writer names nothing any more).
pub(crate) fn abandoned(queue: &SegmentName, referenced: &HashSet<u128>) -> Vec<u128> {
    let prefix = SegmentName::spill_file_prefix(queue.as_str());
    let mut found = Vec::new();
    for file in sys::shm_list(&prefix).unwrap_or_default() {
        let id = u128::from_str_radix(&file[prefix.len()..], 16);
        let Ok(id) = id else { continue };
        if referenced.contains(&id) {
            continue;
        }
        // The header names the writer (with its start time); before it is written, the
        // name does (a pid only: a reused pid keeps the spill, never the other way round).
        let writer_alive =
            shm::writer_alive(&file).unwrap_or_else(|| sys::process_alive(id as u32, None));
        if !writer_alive {
            found.push(id);
        }
    }
    found
}

/// Removes the spill `id` of `queue`; whether it was there.
pub(crate) fn remove(queue: &SegmentName, id: u128) -> bool {
    sys::shm_unlink(&SegmentName::spill_of(queue, id).os_name()).is_ok()
}

/// Removes every spill of `queue` (when the queue is destroyed).
pub(crate) fn remove_all(queue: &str) {
    let prefix = SegmentName::spill_file_prefix(queue);
    for file in sys::shm_list(&prefix).unwrap_or_default() {
        let _ = sys::shm_unlink(&format!("/{file}"));
    }
}
