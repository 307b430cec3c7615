//! `Store`: the shared state behind a `Dict` or `List`. A one-page root segment holds the lock
//! and the number of the current storage generation; the generation itself is a segment of
//! its own, `<name>.spill-<gen>`, laid out as `table.rs` says.
//!
//! # Growing while in use
//! When the heap or the index is full, the lock holder writes every live entry into a new,
//! larger generation `gen + 1`, then stores the new number in the root (the commit point),
//! then removes the old generation's name. Every operation, under the lock, first compares
//! the root's number with the generation it has mapped and maps the current one if they
//! differ; processes that still map an old one never read it again. So the storage grows (and
//! drops the space of removed entries) while other processes hold handles and keep working.
//!
//! # Crash safety
//! A holder that dies leaves the lock poisoned; the next locker repairs: it recounts the
//! current generation's hints and removes every generation's name but the current one (a
//! rebuild that did not commit, or an old one not yet removed). Within a generation, see
//! `table.rs`: each change commits with one store.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::table::{self, Change, Mem};
use crate::error::{Error, Result};
use crate::shm::{Expect, Kind, Segment, SegmentName, Shared, Spec, TypeInfo, shm_shared};
use crate::sync::{Acquired, LockFailure, RawLock};
use crate::sys;

shm_shared! {
/// The root segment's control block.
pub(crate) struct Control {
    lock: RawLock,
    /// The current generation (0: none yet).
    generation: AtomicU64,
    /// Its size in bytes.
    size: AtomicU64,
    _reserved: [AtomicU64; 4],
}
}

/// Opens `name` with `open`, or creates it with `create` if there is none (and opens it if
/// another process created it in between).
pub(crate) fn open_or_create<H>(
    name: &str,
    open: impl Fn(&str) -> Result<H>,
    create: impl Fn(&str) -> Result<H>,
) -> Result<H> {
    match open(name) {
        Err(Error::NotFound { .. }) => match create(name) {
            Err(Error::AlreadyExists { .. }) => open(name),
            other => other,
        },
        other => other,
    }
}

/// The number after `n` (never 0, which means "none yet", even after a hostile `u64::MAX`).
fn next_number(n: u64) -> u64 {
    n.wrapping_add(1).max(1)
}

/// The smallest heap a generation gets.
const MIN_HEAP: u64 = 16 << 10;

/// A mapped generation.
struct Generation {
    number: u64,
    ptr: NonNull<u8>,
    len: u64,
    /// Owns the mapping `ptr` points into.
    _seg: Segment,
}

// SAFETY: `ptr` points into the mapping `_seg` owns; the bytes are only touched under the
// root's process-shared lock (see `Access`).
unsafe impl Send for Generation {}

impl Generation {
    fn map(seg: Segment, number: u64) -> Result<Generation> {
        let ptr = seg.payload::<u8>()?.cast::<u8>();
        Ok(Generation {
            number,
            ptr,
            len: seg.len(),
            _seg: seg,
        })
    }
}

/// A generation's bytes while the root's lock is held: checked access for `table.rs`.
pub(crate) struct Access<'g> {
    generation: &'g mut Generation,
}

impl Access<'_> {
    fn in_bounds(&self, at: u64, len: u64) -> bool {
        at.checked_add(len)
            .is_some_and(|end| end <= self.generation.len)
    }

    /// The word at `at`, if it is in bounds and 8-aligned.
    fn word(&self, at: u64) -> Option<&AtomicU64> {
        if !self.in_bounds(at, 8) || !at.is_multiple_of(8) {
            return None;
        }
        // SAFETY: in bounds and 8-aligned (the payload starts page-aligned); an `AtomicU64`
        // may alias memory other processes write, and the mapping outlives the borrow.
        Some(unsafe {
            &*self
                .generation
                .ptr
                .as_ptr()
                .add(at as usize)
                .cast::<AtomicU64>()
        })
    }
}

impl Mem for Access<'_> {
    fn len(&self) -> u64 {
        self.generation.len
    }

    fn load(&self, at: u64) -> Option<u64> {
        Some(self.word(at)?.load(Ordering::Relaxed))
    }

    fn store(&mut self, at: u64, v: u64) -> Option<()> {
        self.word(at)?.store(v, Ordering::Relaxed);
        Some(())
    }

    fn bytes(&self, at: u64, len: u64) -> Option<&[u8]> {
        if !self.in_bounds(at, len) {
            return None;
        }
        // SAFETY: in bounds (checked). We hold the root's lock, and every shmkit process
        // writes a generation only under it, so nothing changes these bytes while the borrow
        // (tied to this `Access`, which lives inside the locked section) lasts.
        Some(unsafe {
            std::slice::from_raw_parts(self.generation.ptr.as_ptr().add(at as usize), len as usize)
        })
    }

    fn write(&mut self, at: u64, bytes: &[u8]) -> Option<()> {
        if !self.in_bounds(at, bytes.len() as u64) {
            return None;
        }
        // SAFETY: in bounds (checked); under the root's lock, and `bytes` is private memory or
        // another generation's mapping, never this range.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.generation.ptr.as_ptr().add(at as usize),
                bytes.len(),
            )
        };
        Some(())
    }
}

/// Why a locked operation did not run.
#[derive(Debug)]
pub(crate) enum Fail {
    /// The lock was still busy at the deadline.
    Timeout,
    Error(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Error(e)
    }
}

/// The shared state of one dict or list, as this process maps it.
pub(crate) struct Store {
    root: Arc<Shared<Control>>,
    name: SegmentName,
    kind: u64,
    /// The generation this process has mapped; locked after the root's lock.
    current: Mutex<Option<Generation>>,
}

impl Store {
    /// Creates the root segment `name` (anonymous if `None`) of `kind`, for items `ty`.
    pub(crate) fn create(name: Option<&str>, kind: Kind, ty: TypeInfo) -> Result<Store> {
        let fresh = Control {
            lock: RawLock::new(),
            generation: AtomicU64::new(0),
            size: AtomicU64::new(0),
            _reserved: [const { AtomicU64::new(0) }; 4],
        };
        let root = Shared::create_typed(name, kind, fresh, ty)?;
        Self::wrap(root, kind)
    }

    /// Opens the root segment `name`, which must be of `kind` for items `ty`.
    pub(crate) fn open(name: &str, kind: Kind, ty: TypeInfo) -> Result<Store> {
        let root = Shared::<Control>::open_typed(name, kind, ty)?;
        Self::wrap(root, kind)
    }

    fn wrap(root: Arc<Shared<Control>>, kind: Kind) -> Result<Store> {
        let name = SegmentName::new(root.name())?;
        Ok(Store {
            root,
            name,
            kind: if kind == Kind::List {
                table::LIST
            } else {
                table::DICT
            },
            current: Mutex::new(None),
        })
    }

    pub(crate) fn name(&self) -> &str {
        self.name.as_str()
    }

    pub(crate) fn root(&self) -> &Arc<Shared<Control>> {
        &self.root
    }

    /// The index words a generation of this kind gets for `n` entries.
    fn cap_for(&self, n: u64) -> u64 {
        if self.kind == table::LIST {
            table::list_cap_for(n)
        } else {
            table::dict_cap_for(n)
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            name: self.name().to_owned(),
            reason: reason.into(),
        }
    }

    /// Runs `f` with the lock held (waiting at most until `deadline` for it) and the current
    /// generation mapped, after repairing what a dead holder left.
    fn locked<R>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&mut Option<Generation>) -> Result<R, Fail>,
    ) -> Result<R, Fail> {
        let ctl = self.root.get();
        let deadlock = || Fail::Error(Error::Op(Box::new(crate::sync::LockError::<()>::Deadlock)));
        let acquired = match deadline {
            None => ctl.lock.lock().map_err(|_| deadlock())?,
            Some(t) => match ctl
                .lock
                .try_lock_for(t.saturating_duration_since(Instant::now()))
            {
                Ok(a) => a,
                Err(LockFailure::Busy) => return Err(Fail::Timeout),
                Err(LockFailure::Deadlock) => return Err(deadlock()),
            },
        };
        let _held = Held(&ctl.lock);
        // Taken after the shared lock, which excludes every other thread already (and tells a
        // thread that locks again from inside a closure `Deadlock` instead of hanging).
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        self.follow(&mut current)?;
        if matches!(acquired, Acquired::Poisoned) {
            self.repair(&mut current)?;
            ctl.lock.set_poisoned(false);
        }
        f(&mut current)
    }

    /// Runs `f` on the current generation under the lock (waiting at most until `deadline`
    /// for it). `f` returns `Err(Change::Full)` to have the storage rebuilt bigger, after which
    /// it runs again.
    pub(crate) fn with<R>(
        &self,
        deadline: Option<Instant>,
        mut f: impl FnMut(&mut Access<'_>) -> Result<R, Change>,
    ) -> Result<R, Fail> {
        self.locked(deadline, |current| {
            let mut grown = false;
            loop {
                let generation = current
                    .as_mut()
                    .ok_or_else(|| self.corrupt("no storage generation"))?;
                match f(&mut Access { generation }) {
                    Ok(r) => return Ok(r),
                    Err(Change::Corrupt(reason)) => return Err(Fail::Error(self.corrupt(reason))),
                    Err(Change::Full { .. }) if grown => {
                        return Err(Fail::Error(self.corrupt("still full after growing")));
                    }
                    Err(Change::Full { bytes, entries }) => {
                        self.rebuild(current, (bytes, entries))?;
                        grown = true;
                    }
                }
            }
        })
    }

    /// Under the lock, replaces everything with what `f` makes of the current generation: the
    /// items of a list (a dict: nothing but an empty one), written into a new generation and
    /// committed with one store, so a list's `insert` and `remove` are all or nothing.
    pub(crate) fn replace<R>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&Access<'_>) -> Result<(Vec<Vec<u8>>, R), Change>,
    ) -> Result<R, Fail> {
        self.locked(deadline, |current| {
            let generation = current
                .as_mut()
                .ok_or_else(|| self.corrupt("no storage generation"))?;
            let number = next_number(generation.number);
            let (items, r) = match f(&Access { generation }) {
                Ok(x) => x,
                Err(Change::Corrupt(reason)) => return Err(Fail::Error(self.corrupt(reason))),
                Err(Change::Full { .. }) => {
                    return Err(Fail::Error(self.corrupt("internal: full")));
                }
            };
            let n = items.len() as u64;
            let bytes: u64 = items
                .iter()
                .map(|v| table::entry_size(0, v.len() as u64))
                .sum();
            let cap = self.cap_for(n);
            let mut fresh =
                self.new_generation(number, cap, bytes.saturating_mul(2).max(MIN_HEAP))?;
            let parts: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
            if self.kind == table::LIST {
                table::push(
                    &mut Access {
                        generation: &mut fresh,
                    },
                    &parts,
                )
                .map_err(|e| self.corrupt(format!("rewriting: {e:?}")))?;
            }
            self.commit(current, fresh)?;
            Ok(r)
        })
    }

    /// Under the lock: makes `fresh` the current generation (the commit point of a rebuild)
    /// and removes the old one's name.
    fn commit(&self, current: &mut Option<Generation>, fresh: Generation) -> Result<()> {
        let ctl = self.root.get();
        ctl.size.store(fresh.len, Ordering::Relaxed);
        // SYNC: commit of a rebuild: from here on every process maps the new generation.
        ctl.generation.store(fresh.number, Ordering::Relaxed);
        if let Some(old) = current.as_ref() {
            let old_name = SegmentName::spill_of(&self.name, u128::from(old.number));
            let _ = sys::shm_unlink(&old_name.os_name());
        }
        *current = Some(fresh);
        Ok(())
    }

    /// Under the lock: maps the current generation if this process maps another one (or
    /// none), creating the first one if there is none yet.
    fn follow(&self, current: &mut Option<Generation>) -> Result<()> {
        let ctl = self.root.get();
        let number = ctl.generation.load(Ordering::Relaxed);
        if number == 0 {
            let cap = self.cap_for(0);
            let generation = self.new_generation(1, cap, MIN_HEAP)?;
            ctl.size.store(generation.len, Ordering::Relaxed);
            // SYNC: commit of the first generation.
            ctl.generation.store(1, Ordering::Relaxed);
            *current = Some(generation);
            return Ok(());
        }
        if current.as_ref().is_some_and(|g| g.number == number) {
            return Ok(());
        }
        let expect = Expect {
            kind: Kind::Spill,
            ty: TypeInfo::of::<u8>(),
            len: Some(ctl.size.load(Ordering::Relaxed)),
        };
        let seg = Segment::open(
            SegmentName::spill_of(&self.name, u128::from(number)),
            &expect,
            Duration::ZERO,
        )?;
        *current = Some(Generation::map(seg, number)?);
        Ok(())
    }

    /// Creates generation `number` with `cap` index words and `heap` heap bytes, formatted
    /// empty (removing a leftover of that number a dead process may have left).
    fn new_generation(&self, number: u64, cap: u64, heap: u64) -> Result<Generation> {
        let size = table::size_for(cap, heap)
            .filter(|&s| s <= isize::MAX as u64)
            .ok_or_else(|| Error::InvalidArgument {
                what: "a dict or list too large for this machine".into(),
            })?;
        let name = SegmentName::spill_of(&self.name, u128::from(number));
        let _ = sys::shm_unlink(&name.os_name());
        let spec = Spec::new(
            Kind::Spill,
            TypeInfo::of::<u8>(),
            size,
            sys::page_size() as u64,
        )?;
        let mut seg = Segment::create(name, &spec, |_| Ok(()))?;
        // The root owns its generations: they go with it, whoever made them.
        seg.disown();
        let mut generation = Generation::map(seg, number)?;
        table::format(
            &mut Access {
                generation: &mut generation,
            },
            self.kind,
            cap,
        )
        .ok_or_else(|| self.corrupt("a new generation too small for its header"))?;
        Ok(generation)
    }

    /// Under the lock: writes the live entries into a new, bigger generation with room for
    /// `need` (more heap bytes, more entries), and commits it.
    fn rebuild(&self, current: &mut Option<Generation>, need: (u64, u64)) -> Result<()> {
        let old = current
            .as_mut()
            .ok_or_else(|| self.corrupt("no storage generation"))?;
        let number = next_number(old.number);
        let access = Access { generation: old };
        let entries = if self.kind == table::LIST {
            table::list_entries(&access)
        } else {
            table::dict_entries(&access)
        }
        .map_err(|r| self.corrupt(r))?;
        let n = entries.len() as u64 + need.1;
        let cap = self.cap_for(n);
        let heap = (table::live_bytes(&entries) + need.0)
            .saturating_mul(2)
            .max(MIN_HEAP);
        let mut fresh = self.new_generation(number, cap, heap)?;
        table::copy_into(
            &access,
            &entries,
            &mut Access {
                generation: &mut fresh,
            },
            self.kind,
        )
        .map_err(|r| self.corrupt(r))?;
        self.commit(current, fresh)
    }

    /// Under the lock, after a holder died: removes every generation's name but the current
    /// one, and recounts the current one's hints.
    fn repair(&self, current: &mut Option<Generation>) -> Result<()> {
        let number = self.root.get().generation.load(Ordering::Relaxed);
        let prefix = SegmentName::spill_file_prefix(self.name());
        let keep = SegmentName::spill_of(&self.name, u128::from(number)).os_name();
        for file in sys::shm_list(&prefix).unwrap_or_default() {
            if format!("/{file}") != keep {
                let _ = sys::shm_unlink(&format!("/{file}"));
            }
        }
        if let Some(generation) = current.as_mut()
            && self.kind == table::DICT
        {
            table::recount_dict(&mut Access { generation }).map_err(|r| self.corrupt(r))?;
        }
        log::warn!(
            "{} {}: repaired after a process died holding its lock",
            if self.kind == table::LIST {
                "list"
            } else {
                "dict"
            },
            self.name()
        );
        Ok(())
    }
}

/// The root's lock, held; released on drop (also when a user's closure panics: nothing was
/// committed then).
struct Held<'a>(&'a RawLock);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SAFETY: a `Held` exists only while this thread holds the lock.
        unsafe { self.0.unlock() }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        use crate::shm::by_name::OneSegment;
        if self.root.segment().will_unlink() {
            // The dict or list is being destroyed: so are its generations.
            let prefix = SegmentName::spill_file_prefix(self.name());
            for file in sys::shm_list(&prefix).unwrap_or_default() {
                let _ = sys::shm_unlink(&format!("/{file}"));
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("name", &self.name()).finish()
    }
}
