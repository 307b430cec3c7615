//! `CellCore<T>`: the segment behind a `Value`/`Array` (locked) or `RawValue`/`RawArray`
//! (lock-free), with its validated lock and payload pointers. With `words`, the only modules of
//! `cell/` with `unsafe`: it turns validated pointers into guards and atomic word copies.

use std::ptr::NonNull;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Error, Result};
use crate::shm::{Expect, Kind, Segment, SegmentName, Spec, TypeInfo};
use crate::sync::{LockError, LockGuard, LockTimeoutError, RawLock, TryLockError};
use crate::sys;

pub(crate) struct CellCore<T> {
    /// The lock, for the locked kinds. Points into `seg`'s control block.
    lock: Option<NonNull<RawLock>>,
    /// The payload: `seg.len()` elements. Points into `seg`.
    data: NonNull<[T]>,
    /// Owns the mapping the pointers above point into; dropped last.
    seg: Segment,
}

// SAFETY: the pointers point into a shared mapping owned by `seg`, which lives as long as the
// core. The data is `Pod` and is accessed only under the process-shared lock (locked kinds) or
// with atomic word copies (raw kinds), both of which are valid from any thread.
unsafe impl<T: Pod> Send for CellCore<T> {}
// SAFETY: as for Send: every access through `&CellCore` is synchronised by the shared lock or
// is an atomic word copy of `Pod` data.
unsafe impl<T: Pod> Sync for CellCore<T> {}

fn has_lock(kind: Kind) -> bool {
    matches!(kind, Kind::Value | Kind::Array)
}

impl<T: Pod> crate::shm::by_name::OneSegment for CellCore<T> {
    fn segment(&self) -> &Segment {
        &self.seg
    }
}

impl<T: Pod> CellCore<T> {
    /// Creates a segment for `len` elements, initialised from `init` (or zeroed).
    pub(crate) fn create(
        name: SegmentName,
        kind: Kind,
        len: usize,
        init: Option<&[T]>,
    ) -> Result<Self> {
        debug_assert!(init.is_none_or(|s| s.len() == len));
        let spec = Spec::new(
            kind,
            TypeInfo::of::<T>(),
            len as u64,
            sys::page_size() as u64,
        )?;
        let seg = Segment::create(name, &spec, |seg| {
            if has_lock(kind) {
                let lock: *const RawLock = seg.control::<RawLock>()?;
                // SAFETY: `control` checked that the lock fits in the mapping and is aligned;
                // the segment is not published yet, so no one else can see it.
                unsafe { RawLock::init(lock.cast_mut()) };
            }
            if let Some(values) = init {
                let data = seg.payload::<T>()?;
                // SAFETY: `payload` checked that `len` elements fit; `values` has `len`
                // elements and is private memory, so the two do not overlap; nobody else
                // sees the segment before it is published.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        values.as_ptr(),
                        data.as_ptr().cast::<T>(),
                        values.len(),
                    )
                };
            }
            Ok(())
        })?;
        Self::from_segment(seg, kind)
    }

    /// Opens and validates a segment of `kind` with elements of `T` (and `len` of them, if given).
    pub(crate) fn open(
        name: SegmentName,
        kind: Kind,
        len: Option<usize>,
        wait: Duration,
    ) -> Result<Self> {
        let expect = Expect {
            kind,
            ty: TypeInfo::of::<T>(),
            len: len.map(|n| n as u64),
        };
        Self::from_segment(Segment::open(name, &expect, wait)?, kind)
    }

    /// Creates the segment, or opens it if it exists (retrying if it vanishes in between).
    pub(crate) fn open_or_create(
        name: SegmentName,
        kind: Kind,
        len: usize,
        init: Option<&[T]>,
    ) -> Result<Self> {
        loop {
            match Self::create(name.clone(), kind, len, init) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            match Self::open(name.clone(), kind, Some(len), crate::shm::DEFAULT_OPEN_WAIT) {
                Err(Error::NotFound { .. }) => {}
                other => return other,
            }
        }
    }

    fn from_segment(seg: Segment, kind: Kind) -> Result<Self> {
        let lock = if has_lock(kind) {
            // Any bits are a valid lock: garbage reads as a lock whose holder died.
            Some(NonNull::from(seg.control::<RawLock>()?))
        } else {
            None
        };
        let data = seg.payload::<T>()?;
        Ok(CellCore { lock, data, seg })
    }

    pub(crate) fn name(&self) -> &str {
        self.seg.name()
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    fn raw_lock(&self) -> &RawLock {
        let lock = self
            .lock
            .expect("only locked kinds are asked for their lock");
        // SAFETY: points into the control block of `self.seg`, validated in `from_segment`, and
        // lives as long as `self`. `RawLock` is `ShmShared`.
        unsafe { lock.as_ref() }
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.raw_lock().is_poisoned()
    }

    // SAFETY (for the six lock methods below): `data` is this cell's payload (or its first
    // element), valid while `self` lives, and every `Value`/`Array` in every process touches it
    // only under this lock (the raw kinds have another `Kind`, so they cannot open this segment).

    fn first(&self) -> NonNull<T> {
        self.data.cast::<T>()
    }

    #[inline]
    pub(crate) fn lock_all(&self) -> Result<LockGuard<'_, [T]>, LockError<LockGuard<'_, [T]>>> {
        // SAFETY: see above.
        unsafe { LockGuard::lock(self.raw_lock(), self.data) }
    }

    pub(crate) fn try_lock_all(
        &self,
    ) -> Result<LockGuard<'_, [T]>, TryLockError<LockGuard<'_, [T]>>> {
        let raw = self.raw_lock();
        // SAFETY: see above; the outcome is of locking `raw` on this thread.
        unsafe { LockGuard::from_attempt(raw, self.data, raw.try_lock()) }
    }

    pub(crate) fn lock_all_timeout(
        &self,
        d: Duration,
    ) -> Result<LockGuard<'_, [T]>, LockTimeoutError<LockGuard<'_, [T]>>> {
        let raw = self.raw_lock();
        // SAFETY: see above; the outcome is of locking `raw` on this thread.
        unsafe { LockGuard::from_attempt(raw, self.data, raw.try_lock_for(d)) }
            .map_err(TryLockError::into_timeout)
    }

    #[inline]
    pub(crate) fn lock_one(&self) -> Result<LockGuard<'_, T>, LockError<LockGuard<'_, T>>> {
        // SAFETY: see above.
        unsafe { LockGuard::lock(self.raw_lock(), self.first()) }
    }

    pub(crate) fn try_lock_one(&self) -> Result<LockGuard<'_, T>, TryLockError<LockGuard<'_, T>>> {
        let raw = self.raw_lock();
        // SAFETY: see above; the outcome is of locking `raw` on this thread.
        unsafe { LockGuard::from_attempt(raw, self.first(), raw.try_lock()) }
    }

    pub(crate) fn lock_one_timeout(
        &self,
        d: Duration,
    ) -> Result<LockGuard<'_, T>, LockTimeoutError<LockGuard<'_, T>>> {
        let raw = self.raw_lock();
        // SAFETY: see above; the outcome is of locking `raw` on this thread.
        unsafe { LockGuard::from_attempt(raw, self.first(), raw.try_lock_for(d)) }
            .map_err(TryLockError::into_timeout)
    }

    /// Reads element `i` (raw kinds) in atomic words; see `words`. `None` if out of range.
    pub(crate) fn read(&self, i: usize) -> Option<T> {
        (i < self.len()).then(|| {
            // SAFETY: `i < len`, so the element is inside the validated payload, which is
            // aligned for `T`. The raw kinds (the only callers) access their payload only
            // through `words`, in every process (a locked kind has another `Kind` and cannot
            // open this segment).
            unsafe { super::words::read(self.first().add(i)) }
        })
    }

    /// Writes element `i` (raw kinds) in atomic words. `false` if out of range.
    pub(crate) fn write(&self, i: usize, v: T) -> bool {
        if i >= self.len() {
            return false;
        }
        // SAFETY: as in `read`.
        unsafe { super::words::write(self.first().add(i), v) };
        true
    }

    /// Copies all elements out (raw kinds), element by element.
    pub(crate) fn read_all(&self) -> Vec<T> {
        (0..self.len()).filter_map(|i| self.read(i)).collect()
    }
}
