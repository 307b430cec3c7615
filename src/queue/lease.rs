//! Leased gets: [`Queue::get_leased`] and the [`Lease`] it returns. The slots behind them, and
//! what happens when a holder dies, are in `slots.rs`.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec;
use super::core::{Fail, QueueCore, Wait};
use super::error::{AckError, GetError, GetTimeoutError, TryGetError};
use super::slots::SettleFail;
use super::typed::{Queue, deadline, fail_error};
use crate::error::{Error, Result};
use crate::sys;

/// An item taken from a [`Queue`] under a lease: it stays the queue's until [`ack`](Self::ack)
/// finishes it. Until then, if the lease is [released](Self::release), dropped, or its holder
/// process dies (even by SIGKILL), the item goes back to the queue and is delivered again,
/// ahead of every item put after it.
///
/// The item is reached through `Deref`. [`deliveries`](Self::deliveries) says how many times it
/// was handed out, this time included; after the queue's
/// [`max_deliveries`](Queue::set_max_deliveries) it goes to the dead-letter queue instead of
/// being delivered again. On a [`JoinableQueue`](crate::JoinableQueue), `ack` is the item's
/// `task_done`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let q = shmkit::Queue::<String>::new(0)?;
/// q.put("job 1".into())?;
/// q.put("job 2".into())?;
///
/// let lease = q.get_leased()?;
/// assert_eq!(*lease, "job 1");
/// drop(lease); // not acked: back in the queue, ahead of job 2
///
/// let lease = q.get_leased()?;
/// assert_eq!((lease.as_str(), lease.deliveries()), ("job 1", 2));
/// lease.ack()?; // done: it leaves the queue
/// assert_eq!(q.get()?, "job 2");
/// # Ok(()) }
/// ```
#[must_use = "a lease that is dropped hands its item back to the queue; call ack() once done"]
pub struct Lease<T> {
    ticket: Ticket,
    item: T,
}

/// The lease itself, apart from the item: settles it, or hands it back when dropped.
struct Ticket {
    core: Arc<QueueCore>,
    slot: u32,
    id: u64,
    deliveries: u32,
    /// The process that took it: a forked child's copy neither acks nor releases it.
    pid: u32,
    settled: bool,
}

impl Ticket {
    fn settle(
        &mut self,
        how: fn(&QueueCore, u32, u64) -> Result<(), SettleFail>,
    ) -> Result<(), AckError> {
        self.settled = true;
        if sys::current_pid() != self.pid {
            return Err(AckError::Lost);
        }
        how(&self.core, self.slot, self.id).map_err(|f| match f {
            SettleFail::Lost => AckError::Lost,
            SettleFail::Error(e) => AckError::Failed(e),
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled
            && let Err(e) = self.settle(QueueCore::release)
        {
            log::debug!(
                "queue {}: a dropped lease was not handed back: {e}",
                self.core.name()
            );
        }
    }
}

impl<T> Lease<T> {
    /// How many times the item has been handed out, this time included (1 the first time).
    pub fn deliveries(&self) -> u32 {
        self.ticket.deliveries
    }

    /// Finishes the item: it leaves the queue for good (and counts as a task done on a
    /// [`JoinableQueue`](crate::JoinableQueue)). Returns the item.
    ///
    /// # Errors
    /// [`AckError::Lost`] if the queue no longer counts the lease as held (its item is, or
    /// was, delivered again); [`AckError::Failed`].
    pub fn ack(self) -> Result<T, AckError> {
        let Lease { mut ticket, item } = self;
        ticket.settle(QueueCore::ack)?;
        Ok(item)
    }

    /// Hands the item back now, unfinished: it is delivered again, ahead of newer items (as
    /// when the lease is dropped, but reporting errors).
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub fn release(self) -> Result<(), AckError> {
        let Lease { mut ticket, .. } = self;
        ticket.settle(QueueCore::release)
    }
}

impl<T> Deref for Lease<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.item
    }
}

impl<T> DerefMut for Lease<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.item
    }
}

impl<T: fmt::Debug> fmt::Debug for Lease<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("item", &self.item)
            .field("deliveries", &self.ticket.deliveries)
            .field("queue", &self.ticket.core.name())
            .finish()
    }
}

/// Lease counts of a queue (a snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LeaseCounts {
    /// Items held under a lease now.
    pub held: usize,
    /// Items handed back and waiting to be delivered again (counted in [`Queue::len`] too).
    pub returned: usize,
    /// Items moved to the dead-letter queue, ever.
    pub dead_lettered: u64,
    /// Items dropped after their last delivery with no dead-letter queue to take them, ever.
    pub discarded: u64,
}

impl<T: Serialize + DeserializeOwned + 'static> Queue<T> {
    fn get_leased_with<E>(
        &self,
        wait: Wait,
        fail: fn(Fail) -> E,
        de: fn(String) -> E,
    ) -> Result<Lease<T>, E> {
        let core = self.core_arc();
        let leased = core.get_leased(wait, codec::decode::<T>).map_err(fail)?;
        let ticket = Ticket {
            core: Arc::clone(core),
            slot: leased.slot,
            id: leased.id,
            deliveries: leased.deliveries,
            pid: sys::current_pid(),
            settled: false,
        };
        match leased.value {
            Ok(item) => Ok(Lease { ticket, item }),
            Err(reason) => {
                // Not a `T`: delivering it again would fail the same way.
                let mut ticket = ticket;
                ticket.settled = true;
                if let Err(e) = core.reject(ticket.slot, ticket.id) {
                    log::error!(
                        "queue {}: an undecodable item stays leased: {e:?}",
                        core.name()
                    );
                }
                Err(de(reason))
            }
        }
    }

    /// Takes the oldest item under a [`Lease`], waiting while there is none. Items handed
    /// back by other leases come first (oldest first), then the ring's.
    ///
    /// A queue has [`max_leases`](Self::max_leases) slots for leased items; while all are in
    /// use, this waits for one even if items are waiting. After [`close`](Self::close), it
    /// waits while leases are out (their items may come back) and fails with
    /// [`GetError::Closed`] once the queue is empty and no lease is out.
    ///
    /// # Errors
    /// [`GetError::Closed`]; [`GetError::Deserialize`] for an item whose bytes are not a `T`
    /// (it goes to the dead-letter queue, or is discarded); [`GetError::Failed`].
    pub fn get_leased(&self) -> Result<Lease<T>, GetError> {
        self.get_leased_with(Wait::Forever, GetError::from_fail, GetError::Deserialize)
    }

    /// Takes the oldest item under a [`Lease`] if one can be taken now.
    ///
    /// # Errors
    /// [`TryGetError::Empty`] if no item is waiting or every lease slot is in use; or as
    /// [`get_leased`](Self::get_leased).
    pub fn try_get_leased(&self) -> Result<Lease<T>, TryGetError> {
        self.get_leased_with(Wait::No, TryGetError::from_fail, TryGetError::Deserialize)
    }

    /// Takes the oldest item under a [`Lease`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`GetTimeoutError::Timeout`], or as [`get_leased`](Self::get_leased).
    pub fn get_leased_timeout(&self, timeout: Duration) -> Result<Lease<T>, GetTimeoutError> {
        self.get_leased_with(
            deadline(timeout),
            GetTimeoutError::from_fail,
            GetTimeoutError::Deserialize,
        )
    }

    /// Sets, for every process, the queue that takes items past their last delivery (see
    /// [`set_max_deliveries`](Self::set_max_deliveries)); `None` discards them instead
    /// (logged at error level, and counted in [`lease_counts`](Self::lease_counts)). An item
    /// goes there at least once: a process killed between putting it there and freeing its
    /// slot leaves the next getter to put it again. If the dead-letter queue is full, the
    /// item waits in its slot for a later get to try again.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `dlq` is this queue; [`Error::Corrupt`].
    pub fn set_dead_letter(&self, dlq: Option<&Queue<T>>) -> Result<()> {
        self.core()
            .set_dead_letter(dlq.map(Queue::core))
            .map_err(fail_error)
    }
}

impl<T> Queue<T> {
    /// Sets, for every process, how many times a leased item is handed out before it goes to
    /// the dead-letter queue instead (`None`: no limit). The default is 20.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `Some(0)`.
    pub fn set_max_deliveries(&self, max: Option<u32>) -> Result<()> {
        match max {
            Some(0) => Err(Error::InvalidArgument {
                what: "max_deliveries must be at least 1 (None: no limit)".into(),
            }),
            _ => {
                self.core().set_max_deliveries(max.unwrap_or(0));
                Ok(())
            }
        }
    }

    /// The deliveries after which an item is dead-lettered (`None`: no limit).
    pub fn max_deliveries(&self) -> Option<u32> {
        Some(self.core().max_deliveries()).filter(|&n| n != 0)
    }

    /// How many leases can be out at once (fixed when the queue is made: one per 16 KiB of
    /// ring, 8 to 64). Items of up to 448 bytes are kept in their lease slot; bigger ones in a
    /// segment of their own until acked.
    pub fn max_leases(&self) -> usize {
        self.core().slots as usize
    }

    /// Lease counts (a snapshot).
    pub fn lease_counts(&self) -> LeaseCounts {
        let c = self.core().lease_counts();
        LeaseCounts {
            held: c.held as usize,
            returned: c.returned as usize,
            dead_lettered: c.dead_lettered,
            discarded: c.discarded,
        }
    }
}
