//! Finding and removing shmkit segments: `segments()`, `remove_stale()`, `remove()`.
//!
//! A segment whose creator died (SIGKILL, abort, power cut of the process) is never unlinked by
//! its owner. These functions let an operator or a supervisor list what is in `/dev/shm` and
//! remove what nobody will clean up.

use std::io;
use std::sync::atomic::Ordering;

use memmap2::MmapOptions;

use super::header::{HEADER_SIZE, Header, HeaderFields, Kind, MAGIC, ORPHANED, READY};

/// How many bytes of a control block `segments` copies out: enough for a queue's counters and
/// both its locks (asserted in `queue/core.rs`).
pub(crate) const CONTROL_PEEK: u64 = 320;
use super::name::{PREFIX, SegmentName};
use crate::error::{Error, Result};
use crate::sys;

/// What [`segments`] knows about one shmkit segment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The segment's name, as given to `create`/`open` (without the `shmkit-` prefix).
    pub name: String,
    /// The kind of object, if the header is published and this build knows the kind.
    pub kind: Option<Kind>,
    /// The size of the segment in bytes.
    pub size: u64,
    /// The pid of the process that created it, if the header says.
    pub creator_pid: Option<u32>,
    /// Whether that process is still running (checked with its start time, so a reused pid
    /// does not count). `false` also when the creator is unknown. For a queue's spilled item
    /// or a dict's or list's storage (kind [`Kind::Spill`]), whether the segment it belongs to
    /// still exists: it belongs to that, not to the process that wrote it.
    pub creator_alive: bool,
    /// Whether the creator finished and published the header.
    pub ready: bool,
    /// The element (or item) type the header names, as `std::any::type_name` spells it (cut
    /// at 96 bytes).
    pub type_name: Option<String>,
    /// Hand-overs of it in flight: handles sent to other processes and not yet opened there.
    pub hand_overs: u32,
    /// Whether its owner let go while hand-overs were in flight (the receiver will adopt it).
    pub orphaned: bool,
    /// The first bytes of its control block (a lock, a queue's counters), as found: for the
    /// layers above to describe (`shmkit inspect`). Untrusted.
    #[serde(skip)]
    pub(crate) control: Vec<u8>,
    /// Whether the process that wrote it is alive (for a spill, unlike `creator_alive`, the
    /// producer itself).
    #[serde(skip)]
    pub(crate) writer_alive: bool,
}

impl SegmentInfo {
    /// A segment is stale when its creator is known to be gone, or when it was never published
    /// and no creator is recorded: nobody will ever unlink it.
    pub fn is_stale(&self) -> bool {
        !self.creator_alive
    }
}

/// Lists the shmkit segments in `/dev/shm`, with their kind, size and creator.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) if `/dev/shm` cannot be read. Segments that vanish or cannot be opened while
/// listing are skipped.
pub fn segments() -> Result<Vec<SegmentInfo>> {
    let names = sys::shm_list(PREFIX).map_err(|e| Error::io("read /dev/shm", e))?;
    Ok(names
        .iter()
        .filter_map(|file| inspect(file).ok().flatten())
        .collect())
}

fn inspect(file_name: &str) -> io::Result<Option<SegmentInfo>> {
    let Some(name) = SegmentName::from_file_name(file_name) else {
        return Ok(None);
    };
    let file = sys::shm_open_existing(&name.os_name(), false)?;
    let size = sys::file_size(&file)?;
    let mut info = SegmentInfo {
        name: name.as_str().to_owned(),
        kind: None,
        size,
        creator_pid: None,
        creator_alive: false,
        ready: false,
        type_name: None,
        hand_overs: 0,
        orphaned: false,
        control: Vec::new(),
        writer_alive: false,
    };
    if size >= HEADER_SIZE {
        let mapped = size.min(HEADER_SIZE + CONTROL_PEEK);
        let map = MmapOptions::new()
            .len(mapped as usize)
            .map_raw_read_only(&file)?;
        let header = map.as_ptr().cast::<Header>();
        // SAFETY: the file holds at least HEADER_SIZE bytes, all mapped, and the mapping is
        // page-aligned; `state` is an atomic.
        info.ready = unsafe { (*header).state.load(Ordering::Acquire) } == READY; // SYNC: publish-header
        // SAFETY: as above; a volatile copy of plain data, believed only as far as checked.
        let fields: HeaderFields = unsafe { (&raw const (*header).fields).read_volatile() };
        // SAFETY: as above; `transit` is an atomic.
        let transit = unsafe { (*header).transit.load(Ordering::Acquire) };
        info.hand_overs = transit & !ORPHANED;
        info.orphaned = transit & ORPHANED != 0;
        if fields.magic == MAGIC && fields.creator_pid != 0 {
            info.kind = Kind::from_u32(fields.kind);
            info.creator_pid = Some(fields.creator_pid);
            let start = (fields.creator_start != 0).then_some(fields.creator_start);
            info.creator_alive = sys::process_alive(fields.creator_pid, start);
            let len = (fields.type_name_len as usize).min(fields.type_name.len());
            info.type_name = Some(String::from_utf8_lossy(&fields.type_name[..len]).into_owned());
        }
        let peek = (mapped - HEADER_SIZE) as usize;
        info.control = (0..peek)
            .map(|i| {
                // SAFETY: byte `HEADER_SIZE + i` is inside the mapping (`mapped` is at most the
                // file's size); a volatile copy of memory others may write, which is plain data
                // to the readers above.
                unsafe { map.as_ptr().add(HEADER_SIZE as usize + i).read_volatile() }
            })
            .collect();
    }
    info.writer_alive = info.creator_alive;
    // A spilled queue item (a dict's storage) outlives its writer by design: it lives as long
    // as its queue (its dict).
    if let Some(queue) = SegmentName::spill_parent(name.as_str()) {
        info.creator_alive = SegmentName::new(queue)
            .is_ok_and(|q| sys::shm_open_existing(&q.os_name(), false).is_ok());
    }
    Ok(Some(info))
}

/// Whether the process that wrote segment `file_name` (a name in `/dev/shm`) is alive, as its
/// header says; `None` if the header does not say (not written yet, or not ours).
pub(crate) fn writer_alive(file_name: &str) -> Option<bool> {
    let info = inspect(file_name).ok().flatten()?;
    info.creator_pid.map(|_| info.writer_alive)
}

/// Removes the name of one shmkit segment. Processes that have it open keep using it; nobody
/// can open it any more.
///
/// # Errors
/// [`Error::InvalidName`](crate::Error::InvalidName), [`Error::NotFound`](crate::Error::NotFound), or [`Error::Io`](crate::Error::Io).
pub fn remove(name: &str) -> Result<()> {
    let name = SegmentName::new(name)?;
    sys::shm_unlink(&name.os_name()).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            name: name.as_str().to_owned(),
        },
        _ => Error::io("shm_unlink", e),
    })
}

/// Removes every stale segment (see [`SegmentInfo::is_stale`]) and returns what it removed.
///
/// A segment whose creator has just called `create` and not yet written its header also has no
/// recorded creator; to leave such a segment alone, this only removes unpublished segments
/// that were found unpublished twice, 100 ms apart.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) if `/dev/shm` cannot be read.
pub fn remove_stale() -> Result<Vec<SegmentInfo>> {
    remove_stale_if(|_| true)
}

/// As [`remove_stale`], for the stale segments `chosen` picks only (those of one program, by
/// a name prefix, say): a program that cleans up after itself leaves other programs' stale
/// segments alone.
///
/// # Errors
/// As [`remove_stale`].
pub fn remove_stale_if(chosen: impl Fn(&SegmentInfo) -> bool) -> Result<Vec<SegmentInfo>> {
    let mut stale: Vec<SegmentInfo> = segments()?
        .into_iter()
        .filter(|s| s.is_stale() && chosen(s))
        .collect();
    if stale.iter().any(|s| s.creator_pid.is_none()) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let again = segments()?;
        stale.retain(|s| {
            s.creator_pid.is_some()
                || again
                    .iter()
                    .any(|a| a.name == s.name && a.creator_pid.is_none())
        });
    }
    stale.retain(|s| remove(&s.name).is_ok());
    for s in &stale {
        log::info!("removed stale segment {} (its creator has ended)", s.name);
    }
    // A removed queue's spilled items go with it.
    for s in &stale {
        for file in sys::shm_list(&SegmentName::spill_file_prefix(&s.name)).unwrap_or_default() {
            let _ = sys::shm_unlink(&format!("/{file}"));
        }
    }
    Ok(stale)
}
