//! Spilled items: an item that does not fit in a queue's free ring space goes to a segment of
//! its own, `<queue>.spill-<id>`, and the ring carries a [`SpillRef`] to it.
//!
//! The producer writes the segment and owns it until its reference is committed to the ring;
//! then the queue owns it (the producer may exit). The consumer that takes the reference reads
//! the segment and removes it. Destroying the queue removes every spill left behind, including
//! one whose producer or consumer died between writing or taking the reference and the
//! segment's creation or removal.

use super::ring::SpillRef;
use crate::error::{Error, Result};
use crate::shm::{self, Expect, Kind, Segment, SegmentName, Spec, TypeInfo};
use crate::sys;

/// Writes `parts` (one item) into a new spill segment of `queue`. The returned segment still
/// owns its name: dropping it before the reference is committed removes it.
pub(crate) fn write(queue: &SegmentName, parts: &[&[u8]]) -> Result<(SpillRef, Segment)> {
    let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
    let id = sys::random_u128().map_err(|e| Error::io("getrandom", e))?;
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
    let sref = SpillRef {
        id: [id as u64, (id >> 64) as u64],
        len,
    };
    Ok((sref, seg))
}

/// Reads the spilled item `sref` of `queue`, passes its bytes to `read`, and removes it.
pub(crate) fn take<R>(
    queue: &SegmentName,
    sref: &SpillRef,
    read: impl FnOnce(&[u8]) -> R,
) -> Result<R> {
    let id = u128::from(sref.id[0]) | u128::from(sref.id[1]) << 64;
    let name = SegmentName::spill_of(queue, id);
    let expect = Expect {
        kind: Kind::Spill,
        ty: TypeInfo::of::<u8>(),
        len: Some(sref.len),
    };
    let seg = Segment::open(name.clone(), &expect, std::time::Duration::ZERO)?;
    let _ = shm::remove(name.as_str());
    let bytes = seg.payload::<u8>()?;
    // SAFETY: `payload` checked the bounds. Once its reference was taken from the ring (under
    // the queue's lock), this consumer is the only process that touches the spill: producers
    // never write a spill after committing its reference, and its name is now removed.
    Ok(read(unsafe { bytes.as_ref() }))
}

/// Removes every spill of `queue` (when the queue is destroyed).
pub(crate) fn remove_all(queue: &str) {
    let prefix = SegmentName::spill_file_prefix(queue);
    for file in sys::shm_list(&prefix).unwrap_or_default() {
        let _ = sys::shm_unlink(&format!("/{file}"));
    }
}
