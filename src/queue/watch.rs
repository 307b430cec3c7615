//! What `shmkit::wait` needs of a queue: whether a get would wait, and a registration as a
//! sleeper on its items' wait list that does not steal a getter's wake-up.

use std::sync::atomic::AtomicU32;

use super::core::{QueueCore, Wait};

impl QueueCore {
    /// Whether a get would not wait now: an item is there, or the queue is closed and no
    /// lease is out (whose item could come back).
    pub(crate) fn readable(&self) -> bool {
        self.len() > 0 || (self.is_closed() && self.lease_counts().held == 0)
    }

    /// For a waiter on several objects: registers as a sleeper on `not_empty` and returns the
    /// futex word and the value to sleep on, or `None` if a get would not wait now (or the
    /// queue's state is broken, which the caller's get will report). Undo with [`unwatch`].
    ///
    /// [`unwatch`]: Self::unwatch
    pub(crate) fn watch(&self) -> Option<(&AtomicU32, u32)> {
        let held = self.lock(Wait::Forever).ok()?;
        if self.readable() {
            return None;
        }
        let list = &self.ctl().not_empty;
        list.enter();
        let seq = list.seq();
        drop(held);
        Some((list.word(), seq))
    }

    /// Ends a [`watch`](Self::watch). A wake-up that reached this watcher rather than a getter
    /// sleeping on the same queue is passed on, so no getter is left asleep beside an item.
    pub(crate) fn unwatch(&self) {
        let Ok(held) = self.lock(Wait::Forever) else {
            return;
        };
        let list = &self.ctl().not_empty;
        list.leave();
        let k = if list.take_signal() && self.readable() {
            list.claim(1)
        } else {
            0
        };
        drop(held);
        list.wake(k);
    }
}
