//! How a handle travels to another process, and who owns a segment once it has.
//!
//! # The rules, in one place
//! - Every handle to a shared object (`Value`, `Array`, `Queue`, `Lock`, a pipe's
//!   `Connection`, ...) implements serde by serialising its segment name. Deserialising *opens*
//!   the segment by that name, with all the checks of `open` (kind, element type, length), so
//!   the receiver gets a handle of its own to the same memory.
//! - The process that creates a segment owns its name and unlinks it when its last handle
//!   goes. Once a process has opened a segment its mapping stays valid whatever the owner does;
//!   only opening *by name* needs the name.
//! - When shmkit itself delivers a handle to another process (as the argument or result of a
//!   [`Process`](crate::Process) or a pool task, through a [`Queue`](crate::Queue) or a
//!   [`Connection`](crate::Connection)), each segment it names counts one *hand-over* in flight
//!   in its header, and the receiver's open claims it. While hand-overs are in flight the
//!   owner's last handle does not unlink the name: it marks the segment orphaned instead, and
//!   the receiver that claims the last hand-over adopts it and unlinks the name when its own
//!   last handle goes. A receiver also adopts a segment whose creator has died. So a handle
//!   sent to another process stays valid for it whatever the sender does with its own copies
//!   once the send has returned, including exiting.
//! - A pipe end delivered to another process belongs to the receiver: the sender's copies no
//!   longer close it when dropped, and `close()` in the sender ends only the sender's use of
//!   it, as closing a copied file descriptor does in Python.
//! - A hand-over that never arrives (its receiver died before opening it, or a queue was
//!   destroyed with the message in it) leaves the name in `/dev/shm` after every handle is
//!   gone; [`shm::remove_stale`](crate::shm::remove_stale) removes it once its creator has
//!   ended. A handle serialised by other means (`serde_json` into an environment variable, say)
//!   counts no hand-over: keep a handle in the sender until the receiver has opened its own.
//!
//! [`serde_by_name!`] writes the serde impls, once for every handle type.

use std::cell::RefCell;
use std::sync::Arc;

/// What a handle keeps alive, and whose segments can be handed over to another process.
pub(crate) trait HandOver: Send + Sync {
    /// Counts a hand-over in flight for every segment; for a pipe end, gives the end up to
    /// whoever claims it.
    fn send_out(&self);
    /// Takes back a hand-over counted by `send_out` that will not arrive.
    fn unsend(&self);
    /// Claims a hand-over on the receiving side, after opening.
    fn claim(&self);
}

/// Shared state that owns one segment: its hand-overs are the segment's.
pub(crate) trait OneSegment: Send + Sync {
    /// The segment.
    fn segment(&self) -> &super::Segment;
}

impl<T: OneSegment> HandOver for T {
    fn send_out(&self) {
        self.segment().send_out();
    }
    fn unsend(&self) {
        self.segment().unsend();
    }
    fn claim(&self) {
        self.segment().claim();
    }
}

/// A handle type: how its serde impls reach what it keeps alive.
pub(crate) trait Handle {
    /// The shared state behind this handle.
    fn hand_over(&self) -> Arc<dyn HandOver>;
}

/// The handles serialised inside one [`capture`], and which of them were sent out.
#[derive(Default)]
struct Frame {
    noted: Vec<Arc<dyn HandOver>>,
    sent: Vec<Arc<dyn HandOver>>,
}

thread_local! {
    /// The captures active on this thread, innermost last.
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    /// Why the last handle that failed to open on this thread failed: postcard keeps no
    /// message for a custom deserialisation error, so the caller asks here.
    static OPEN_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Called by a handle's `Serialize`: remembers it if a send is being prepared.
pub(crate) fn note(handle: &dyn Handle) {
    FRAMES.with(|f| {
        if let Some(frame) = f.borrow_mut().last_mut() {
            frame.noted.push(handle.hand_over());
        }
    });
}

/// Runs `f` (which serialises a message and, on success, calls [`send_noted`] just before
/// making it visible to its receiver), and returns what the message sent out.
pub(crate) fn capture<R>(f: impl FnOnce() -> R) -> (R, SentOut) {
    FRAMES.with(|fr| fr.borrow_mut().push(Frame::default()));
    let r = f();
    let frame = FRAMES.with(|fr| fr.borrow_mut().pop()).unwrap_or_default();
    (r, SentOut(frame.sent))
}

/// Counts the hand-overs of every handle serialised so far in the innermost [`capture`]:
/// called after the message is encoded and before its receiver can see it.
pub(crate) fn send_noted() {
    FRAMES.with(|fr| {
        if let Some(frame) = fr.borrow_mut().last_mut() {
            for h in frame.noted.drain(..) {
                h.send_out();
                frame.sent.push(h);
            }
        }
    });
}

/// Forgets the handles noted so far in the innermost [`capture`], none of them sent: for an
/// attempt to encode a message that was given up, before encoding it again.
pub(crate) fn forget_noted() {
    FRAMES.with(|fr| {
        if let Some(frame) = fr.borrow_mut().last_mut() {
            frame.noted.clear();
        }
    });
}

/// The hand-overs one message counted: [`abandon`](Self::abandon) them if the message will
/// never be delivered, drop them otherwise.
#[derive(Default)]
pub(crate) struct SentOut(Vec<Arc<dyn HandOver>>);

impl SentOut {
    /// The message was not delivered: takes its hand-overs back.
    pub(crate) fn abandon(self) {
        for h in self.0 {
            h.unsend();
        }
    }
}

impl std::fmt::Debug for SentOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SentOut({} handles)", self.0.len())
    }
}

/// Records why a handle could not be opened while deserialising.
pub(crate) fn set_open_error(why: String) {
    OPEN_ERROR.with(|e| *e.borrow_mut() = Some(why));
}

/// Why the last handle that failed to open on this thread failed, if one did since the last
/// call: what a deserialisation error should say instead of postcard's bare message.
pub(crate) fn take_open_error() -> Option<String> {
    OPEN_ERROR.with(|e| e.borrow_mut().take())
}

/// Implements `Serialize` (as `self.name()`) and `Deserialize` (as `<$ty>::open(name)`, then a
/// claim of the hand-over) for a handle type that implements [`Handle`]:
/// `serde_by_name!(impl[T: Pod] Value<T>)`, or `serde_by_name!(impl[] Lock)`.
macro_rules! serde_by_name {
    (impl[$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                crate::shm::by_name::note(self);
                s.serialize_str(self.name())
            }
        }

        impl<'de, $($generics)*> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                match <$ty>::open(&name) {
                    Ok(handle) => {
                        crate::shm::by_name::Handle::hand_over(&handle).claim();
                        Ok(handle)
                    }
                    Err(e) => {
                        let why = format!("cannot open the handle it holds: {e}");
                        crate::shm::by_name::set_open_error(why.clone());
                        Err(serde::de::Error::custom(why))
                    }
                }
            }
        }
    };
}
pub(crate) use serde_by_name;
