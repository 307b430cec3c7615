//! `Kind`: what kind of object a segment holds, as its header records it.

use std::fmt;

/// What kind of object a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[repr(u32)]
#[non_exhaustive]
pub enum Kind {
    /// A [`Value`](crate::Value): one element with a lock.
    Value = 1,
    /// An [`Array`](crate::Array): `len` elements with one lock.
    Array = 2,
    /// A [`RawValue`](crate::RawValue): one element, no lock.
    RawValue = 3,
    /// A [`RawArray`](crate::RawArray): `len` elements, no lock.
    RawArray = 4,
    /// A [`Queue`](crate::Queue): a ring of `len` bytes of serialised items.
    Queue = 5,
    /// A [`JoinableQueue`](crate::JoinableQueue).
    JoinableQueue = 6,
    /// One item of a queue too large for its ring, or one storage generation of a `Dict` or
    /// `List`: a segment named after the one it belongs to, and removed with it.
    Spill = 7,
    /// A [`Lock`](crate::Lock).
    Lock = 8,
    /// An [`RLock`](crate::RLock).
    RLock = 9,
    /// A [`Semaphore`](crate::Semaphore) (bounded or not).
    Semaphore = 10,
    /// An [`Event`](crate::Event).
    Event = 11,
    /// A [`Condition`](crate::Condition).
    Condition = 12,
    /// A [`Barrier`](crate::Barrier).
    Barrier = 13,
    /// The shared state of a [`Pipe`](crate::Pipe)'s two ends.
    Pipe = 14,
    /// A [`Dict`](crate::Dict): its lock and current storage generation.
    Dict = 15,
    /// A [`List`](crate::List): its lock and current storage generation.
    List = 16,
}

impl Kind {
    /// Whether segments of this kind spill large items into segments of their own, named
    /// after theirs, that go with them.
    pub(crate) fn has_spills(self) -> bool {
        matches!(
            self,
            Kind::Queue | Kind::JoinableQueue | Kind::Dict | Kind::List
        )
    }

    /// The kind stored as `n`, if this build knows it.
    pub(crate) fn from_u32(n: u32) -> Option<Kind> {
        Some(match n {
            1 => Kind::Value,
            2 => Kind::Array,
            3 => Kind::RawValue,
            4 => Kind::RawArray,
            5 => Kind::Queue,
            6 => Kind::JoinableQueue,
            7 => Kind::Spill,
            8 => Kind::Lock,
            9 => Kind::RLock,
            10 => Kind::Semaphore,
            11 => Kind::Event,
            12 => Kind::Condition,
            13 => Kind::Barrier,
            14 => Kind::Pipe,
            15 => Kind::Dict,
            16 => Kind::List,
            _ => return None,
        })
    }

    pub(crate) fn describe(n: u32) -> String {
        Kind::from_u32(n).map_or_else(
            || format!("an unknown kind of object (#{n})"),
            |k| format!("a {k}"),
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Value => "Value",
            Kind::Array => "Array",
            Kind::RawValue => "RawValue",
            Kind::RawArray => "RawArray",
            Kind::Queue => "Queue",
            Kind::JoinableQueue => "JoinableQueue",
            Kind::Spill => "spill",
            Kind::Lock => "Lock",
            Kind::RLock => "RLock",
            Kind::Semaphore => "Semaphore",
            Kind::Event => "Event",
            Kind::Condition => "Condition",
            Kind::Barrier => "Barrier",
            Kind::Pipe => "Pipe",
            Kind::Dict => "Dict",
            Kind::List => "List",
        })
    }
}
