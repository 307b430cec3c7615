//! `Shared<C>`: a one-page segment whose control block is a synchronisation primitive's state
//! `C` (a `Lock`, an `Event`, a `Barrier`...). Its kind and the type `C` are checked on open.

use std::ptr::NonNull;
use std::sync::Arc;

use super::{DEFAULT_OPEN_WAIT, Expect, Kind, Segment, SegmentName, ShmShared, Spec, TypeInfo};
use crate::error::Result;
use crate::sys;

pub(crate) struct Shared<C> {
    ctl: NonNull<C>,
    /// Owns the mapping `ctl` points into.
    seg: Segment,
}

// SAFETY: `ctl` points into the shared mapping owned by `seg`, alive as long as `self`; `C` is
// `ShmShared` (atomics only), so it may be used from any thread.
unsafe impl<C: ShmShared> Send for Shared<C> {}
// SAFETY: as for Send.
unsafe impl<C: ShmShared> Sync for Shared<C> {}

impl<C: ShmShared + Send> super::by_name::OneSegment for Shared<C> {
    fn segment(&self) -> &Segment {
        &self.seg
    }
}

impl<C: ShmShared> Shared<C> {
    /// Creates the segment `name` (an anonymous one if `None`) holding `init`.
    pub(crate) fn create(name: Option<&str>, kind: Kind, init: C) -> Result<Arc<Self>> {
        Self::create_typed(name, kind, init, TypeInfo::of_control::<C>())
    }

    /// As [`create`](Self::create), with the fingerprint `ty` (a `C` that also carries the
    /// types of what travels through it, as a typed pipe's state does).
    pub(crate) fn create_typed(
        name: Option<&str>,
        kind: Kind,
        init: C,
        ty: TypeInfo,
    ) -> Result<Arc<Self>> {
        let name = match name {
            Some(n) => SegmentName::new(n)?,
            None => SegmentName::anonymous()?,
        };
        let spec = Spec::new(kind, ty, 0, sys::page_size() as u64)?;
        let seg = Segment::create(name, &spec, |seg| {
            let ctl: *const C = seg.control::<C>()?;
            // SAFETY: `control` checked that `C` fits in the mapping and is aligned; the segment
            // is not published yet, so nobody else can see it.
            unsafe { ctl.cast_mut().write(init) };
            Ok(())
        })?;
        Self::wrap(seg)
    }

    /// Opens the segment `name`, which must hold a `C` of `kind`.
    pub(crate) fn open(name: &str, kind: Kind) -> Result<Arc<Self>> {
        Self::open_typed(name, kind, TypeInfo::of_control::<C>())
    }

    /// As [`open`](Self::open), expecting the fingerprint `ty` (see
    /// [`create_typed`](Self::create_typed)).
    pub(crate) fn open_typed(name: &str, kind: Kind, ty: TypeInfo) -> Result<Arc<Self>> {
        let expect = Expect {
            kind,
            ty,
            len: None,
        };
        Self::wrap(Segment::open(
            SegmentName::new(name)?,
            &expect,
            DEFAULT_OPEN_WAIT,
        )?)
    }

    fn wrap(seg: Segment) -> Result<Arc<Self>> {
        let ctl = NonNull::from(seg.control::<C>()?);
        Ok(Arc::new(Shared { ctl, seg }))
    }

    pub(crate) fn get(&self) -> &C {
        // SAFETY: points into the control block of `self.seg`, validated by `control`, alive as
        // long as `self`; `C` is `ShmShared`.
        unsafe { self.ctl.as_ref() }
    }

    pub(crate) fn name(&self) -> &str {
        self.seg.name()
    }
}
