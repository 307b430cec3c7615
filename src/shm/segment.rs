//! `Segment`: a named POSIX shared memory object, mapped, with a validated header.
//!
//! # Ownership
//! The process that *creates* a segment owns its name: when the last handle to it in that
//! process is dropped, the name is unlinked from `/dev/shm`. Processes that had already opened
//! it keep a valid mapping until they drop their handles (POSIX keeps the memory while anyone
//! maps it); new `open`s fail with [`Error::NotFound`](crate::Error::NotFound). Openers never unlink. Before unlinking,
//! the owner checks that the name still refers to *its* segment, so it never removes a newer
//! segment someone created under the same name. A creator that dies cannot unlink: its
//! segment stays until [`remove_stale`](crate::shm::remove_stale) or [`remove`](crate::shm::remove)
//! takes it away.

use std::fs::File;
use std::io;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use super::header::{
    CONTROL_OFFSET, Expect, HEADER_SIZE, Header, HeaderFields, Kind, Layout, ORPHANED, READY, Spec,
};
use super::name::SegmentName;
use super::owned::{self, OwnedName};
use super::shared::ShmShared;
use crate::error::{Error, Result};
use crate::sys;

/// How long `open` waits, by default, for a creator to publish a segment's header.
pub(crate) const DEFAULT_OPEN_WAIT: Duration = Duration::from_secs(2);

/// A mapped shared segment whose header has been published (by us) or validated (by us).
pub(crate) struct Segment {
    name: SegmentName,
    file: File,
    map: MmapRaw,
    kind: Kind,
    len: u64,
    layout: Layout,
    /// Whether this handle unlinks the name when dropped: the creator, or a receiver that
    /// adopted an orphaned segment (see [`claim`](Self::claim)).
    owner: AtomicBool,
    /// The name in the table a signal handler unlinks from, while this handle owns it.
    owned: OnceLock<OwnedName>,
    /// The creator, from the validated header (pid and start time; 0 if unknown).
    creator: (u32, u64),
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name.as_str())
            .field("kind", &self.kind)
            .field("len", &self.len)
            .field("size", &self.layout.total_size)
            .field("owner", &self.is_owner())
            .finish()
    }
}

fn map(file: &File, len: u64) -> io::Result<MmapRaw> {
    MmapOptions::new().len(len as usize).map_raw(file)
}

/// Unlinks a freshly created name if creation fails part-way. The name is in the table of
/// owned names from the start, so a signal during creation removes it too.
struct UnlinkOnError<'a> {
    name: Option<&'a str>,
    owned: Option<OwnedName>,
}

impl Drop for UnlinkOnError<'_> {
    fn drop(&mut self) {
        self.owned = None;
        if let Some(name) = self.name {
            let _ = sys::shm_unlink(name);
        }
    }
}

impl Segment {
    /// Creates a new segment exclusively, fills in its header, lets `init` set up the control
    /// block and payload, and then publishes the header. On any error the name is removed.
    pub(crate) fn create(
        name: SegmentName,
        spec: &Spec,
        init: impl FnOnce(&Segment) -> Result<()>,
    ) -> Result<Segment> {
        let os_name = name.os_name();
        // Everything the header needs is ready before the name exists: a creator killed in
        // between leaves a segment no one can attribute.
        let (pid, start, ns) = sys::own_identity();
        let fields = spec.fields(pid, start, ns);
        // From the moment the name exists until it is in the table of owned names, a signal
        // handler must not miss it: this thread blocks the cleanup signals, and a handler
        // running on another thread waits for the count of such creations to drop.
        let creating = owned::Creating::start();
        let file = sys::shm_create_exclusive(&os_name).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                name: name.as_str().to_owned(),
            },
            _ => Error::io("shm_open(create)", e),
        })?;
        let mut cleanup = UnlinkOnError {
            name: Some(&os_name),
            owned: owned::register(&os_name, &file, spec.kind.has_spills()),
        };
        drop(creating);
        sys::shm_reserve(&file, spec.layout.total_size).map_err(|e| match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge => Error::NoSpace {
                name: name.as_str().to_owned(),
                size: spec.layout.total_size,
            },
            _ => Error::io("fallocate", e),
        })?;
        let map = map(&file, spec.layout.total_size).map_err(|e| Error::io("mmap", e))?;
        let mut seg = Segment {
            name,
            file,
            map,
            kind: spec.kind,
            len: spec.len,
            layout: spec.layout,
            owner: AtomicBool::new(false),
            owned: OnceLock::new(),
            creator: (pid, start),
        };
        let header = seg.header();
        // SAFETY: the mapping is at least HEADER_SIZE bytes and page-aligned, so `fields` is in
        // bounds and aligned; no other process reads the fields before the state word says
        // READY (they wait for it with an Acquire load), so this write races with nothing.
        unsafe { (&raw mut (*header).fields).write(fields) };
        init(&seg)?;
        // SAFETY: `header` points into our live mapping; `state` is an atomic.
        let state = unsafe { &(*header).state };
        state.store(READY, Ordering::Release); // SYNC: publish-header
        cleanup.name = None;
        if let Some(name) = cleanup.owned.take() {
            // SAFETY: `name` is kept in `seg.owned`, which `seg`'s drop empties before the
            // mapping that holds the transit word is unmapped.
            unsafe { name.set_transit(seg.transit()) };
            let _ = seg.owned.set(name);
        }
        seg.owner = AtomicBool::new(true);
        Ok(seg)
    }

    /// Opens an existing segment and validates its header against `expect`, waiting up to
    /// `wait` for its creator to publish it.
    pub(crate) fn open(name: SegmentName, expect: &Expect, wait: Duration) -> Result<Segment> {
        let user = || name.as_str().to_owned();
        let file = sys::shm_open_existing(&name.os_name(), true).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound { name: user() },
            _ => Error::io("shm_open", e),
        })?;
        // Only a segment of this user's own, which no one else may write, is believed: another
        // user could otherwise plant one with a valid header and rewrite or truncate it later.
        let (owner_uid, mode) = sys::file_owner(&file).map_err(|e| Error::io("fstat", e))?;
        if owner_uid != sys::current_uid() || mode & 0o077 != 0 {
            return Err(Error::ForeignOwner {
                name: user(),
                owner_uid,
                mode,
            });
        }
        let start = Instant::now();
        let mut pause = Duration::from_micros(50);
        let fields = loop {
            if let Some(fields) = Self::published_fields(&file, &name)? {
                break fields;
            }
            if start.elapsed() >= wait {
                return Err(Error::Uninitialized {
                    name: user(),
                    waited: wait,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        };
        fields.check_pid_namespace(name.as_str(), sys::pid_namespace())?;
        let size = sys::file_size(&file).map_err(|e| Error::io("fstat", e))?;
        let (layout, len) =
            fields.validate(name.as_str(), expect, size, sys::page_size() as u64)?;
        let map = map(&file, layout.total_size).map_err(|e| Error::io("mmap", e))?;
        Ok(Segment {
            name,
            file,
            map,
            kind: expect.kind,
            len,
            layout,
            owner: AtomicBool::new(false),
            owned: OnceLock::new(),
            creator: (fields.creator_pid, fields.creator_start),
        })
    }

    /// A copy of the header fields if the header has been published, `None` if not yet.
    fn published_fields(file: &File, name: &SegmentName) -> Result<Option<HeaderFields>> {
        let size = sys::file_size(file).map_err(|e| Error::io("fstat", e))?;
        if size == 0 {
            return Ok(None); // created, not yet sized
        }
        if size < HEADER_SIZE {
            return Err(Error::Truncated {
                name: name.as_str().to_owned(),
                actual: size,
                needed: HEADER_SIZE,
            });
        }
        let map = map(file, HEADER_SIZE).map_err(|e| Error::io("mmap", e))?;
        let header = map.as_mut_ptr().cast::<Header>();
        // SAFETY: the file is at least HEADER_SIZE bytes, so the whole header is mapped and
        // backed (no SIGBUS); the mapping is page-aligned; `state` is an atomic.
        let state = unsafe { (*header).state.load(Ordering::Acquire) }; // SYNC: publish-header
        match state {
            READY => {}
            0 => return Ok(None),
            _ => {
                return Err(Error::Corrupt {
                    name: name.as_str().to_owned(),
                    reason: format!("header state word is {state:#x}"),
                });
            }
        }
        // SAFETY: in bounds and aligned as above. A volatile read copies the fields out once;
        // the copy is plain data (any bits are a valid `HeaderFields`) and is validated next.
        Ok(Some(unsafe {
            (&raw const (*header).fields).read_volatile()
        }))
    }

    fn header(&self) -> *mut Header {
        self.map.as_mut_ptr().cast()
    }

    /// Gives up ownership of the name: dropping this handle no longer unlinks it. Used for a
    /// spilled queue item, which belongs to the queue once its producer has put it.
    pub(crate) fn disown(&mut self) {
        *self.owner.get_mut() = false;
        self.owned.take();
    }

    fn transit(&self) -> &AtomicU32 {
        // SAFETY: the mapping is at least HEADER_SIZE bytes, page-aligned, and lives as long as
        // `self`; `transit` is an atomic, valid for any bits another process wrote.
        unsafe { &(*self.header()).transit }
    }

    /// Counts one hand-over of this segment in flight: a handle naming it is about to reach
    /// another process. Until that process opens it ([`claim`](Self::claim)), the owner's last
    /// handle does not unlink the name.
    pub(crate) fn send_out(&self) {
        // SYNC: hand-over. Release: the count is visible before the message naming the segment.
        self.transit().fetch_add(1, Ordering::Release);
    }

    /// Takes back a hand-over that will not arrive (its message was never delivered).
    pub(crate) fn unsend(&self) {
        self.claim();
    }

    /// Claims one hand-over on the receiving side, after opening the segment. The receiver
    /// that claims the last hand-over of a segment whose owner let go meanwhile (or whose
    /// creator has died) becomes its owner: it unlinks the name when its own last handle goes.
    pub(crate) fn claim(&self) {
        let word = self.transit();
        // SYNC: hand-over. Acquire pairs with the owner's Release in `drop`.
        let mut cur = word.load(Ordering::Acquire);
        loop {
            let count = cur & !ORPHANED;
            if count == 0 {
                return; // not a counted hand-over (a handle passed by other means)
            }
            let last = count == 1;
            let creator_gone = !self.creator_alive();
            // The last claim of an orphaned segment adopts it, and clears the mark with it.
            let adopt = last && (cur & ORPHANED != 0 || creator_gone);
            let new = if adopt { 0 } else { cur - 1 };
            match word.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if adopt {
                        self.owner.store(true, Ordering::Relaxed);
                        let spills = self.kind.has_spills();
                        if let Some(name) =
                            owned::register(&self.name.os_name(), &self.file, spills)
                        {
                            // SAFETY: as in `create`: kept in `self.owned`, emptied by
                            // drop before the mapping goes.
                            unsafe { name.set_transit(self.transit()) };
                            let _ = self.owned.set(name);
                        }
                        log::debug!(
                            "adopted segment {} from its owner, which let go",
                            self.name()
                        );
                    }
                    return;
                }
                Err(now) => cur = now,
            }
        }
    }

    fn creator_alive(&self) -> bool {
        let (pid, start) = self.creator;
        pid == 0 || sys::process_alive(pid, (start != 0).then_some(start))
    }

    /// The number of elements (bytes, for a queue's ring), as validated.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether this handle unlinks the name when dropped.
    pub(crate) fn is_owner(&self) -> bool {
        self.owner.load(Ordering::Relaxed)
    }

    /// Whether dropping this handle now would unlink the name: it owns it, and no hand-over
    /// of it is in flight (which would leave the segment to its receivers).
    pub(crate) fn will_unlink(&self) -> bool {
        self.is_owner() && self.transit().load(Ordering::Acquire) & !ORPHANED == 0
    }

    /// The name the user gave (or the generated anonymous one).
    pub(crate) fn name(&self) -> &str {
        self.name.as_str()
    }

    /// A shared reference to the control block, which starts at `CONTROL_OFFSET`.
    /// Errors if `T` does not fit between the header and the payload.
    pub(crate) fn control<T: ShmShared>(&self) -> Result<&T> {
        let room = self.layout.payload_offset - CONTROL_OFFSET;
        if std::mem::size_of::<T>() as u64 > room
            || !CONTROL_OFFSET.is_multiple_of(std::mem::align_of::<T>() as u64)
        {
            return Err(Error::Corrupt {
                name: self.name().to_owned(),
                reason: "control block does not fit".into(),
            });
        }
        // SAFETY: CONTROL_OFFSET + size_of::<T>() <= payload_offset <= total_size, the mapped
        // length (validated on open, set on create), and the offset is aligned for T. `T:
        // ShmShared` is valid for any bits and mutated only through interior mutability, so a
        // shared reference to memory other processes write is sound. The reference borrows
        // `self`, which keeps the mapping alive.
        Ok(unsafe {
            &*self
                .map
                .as_mut_ptr()
                .add(CONTROL_OFFSET as usize)
                .cast::<T>()
        })
    }

    /// A pointer to the payload, viewed as `len` elements of `T`.
    /// Errors if the payload is not big enough or not aligned for `T`.
    pub(crate) fn payload<T: bytemuck::Pod>(&self) -> Result<NonNull<[T]>> {
        let bytes = (std::mem::size_of::<T>() as u64).checked_mul(self.len);
        let fits = bytes
            .and_then(|b| b.checked_add(self.layout.payload_offset))
            .is_some_and(|end| end <= self.layout.total_size);
        if !fits
            || !self
                .layout
                .payload_offset
                .is_multiple_of(std::mem::align_of::<T>() as u64)
        {
            return Err(Error::Corrupt {
                name: self.name().to_owned(),
                reason: "payload does not fit".into(),
            });
        }
        // SAFETY: payload_offset + len * size_of::<T>() <= total_size (checked above), the mapped
        // length, so the offset pointer stays inside the mapping.
        let start = unsafe {
            self.map
                .as_mut_ptr()
                .add(self.layout.payload_offset as usize)
        };
        let slice = std::ptr::slice_from_raw_parts_mut(start.cast::<T>(), self.len as usize);
        NonNull::new(slice).ok_or_else(|| Error::Corrupt {
            name: self.name().to_owned(),
            reason: "null mapping".into(),
        })
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.is_owner() {
            self.let_go();
        }
        // Out of the signal handler's table last: a signal before this point finds the name
        // there and removes it, if this drop has not. The mapping it may read is still alive.
        self.owned.take();
    }
}

impl Segment {
    /// The owner's last handle: unlink the name, or leave it to hand-overs in flight.
    fn let_go(&self) {
        // Hand-overs in flight: leave the name for their receivers, and mark the segment
        // orphaned so that the receiver claiming the last one adopts it.
        let word = self.transit();
        let mut cur = word.load(Ordering::Acquire);
        while cur & !ORPHANED != 0 {
            // SYNC: hand-over.
            match word.compare_exchange_weak(
                cur,
                cur | ORPHANED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
        // Unlink only if the name still refers to our object: it may have been removed and
        // re-created by someone else in the meantime.
        let os_name = self.name.os_name();
        if let Ok(current) = sys::shm_open_existing(&os_name, false)
            && sys::same_file(&current, &self.file).unwrap_or(false)
        {
            let _ = sys::shm_unlink(&os_name);
        }
    }
}
