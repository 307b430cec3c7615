//! The typed faces of `batch.rs`: many items per lock round trip, and bytes written and read
//! in place.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec;
use super::core::{Fail, Wait};
use super::error::{GetError, GetTimeoutError, PutError, PutManyError, TryGetError};
use super::typed::{Queue, deadline};
use crate::shm::by_name;

impl<T: Serialize + DeserializeOwned + 'static> Queue<T> {
    /// Puts every item of `items`, in order, as many per lock round trip as the ring has room
    /// for (faster-fifo's `put_many`): the batch becomes visible to getters at once, and one
    /// wake-up serves it. Waits for room as [`put`](Self::put) does. Handles inside the items
    /// are handed over as `put` hands them.
    ///
    /// # Errors
    /// [`PutManyError`], which says how many items were put before the failure (those are in
    /// the queue; the rest are not).
    pub fn put_many(&self, items: &[T]) -> Result<(), PutManyError> {
        let (mut buf, mut ends, mut sent) =
            (Vec::new(), Vec::with_capacity(items.len()), Vec::new());
        for (i, item) in items.iter().enumerate() {
            let (encoded, out) = by_name::capture(|| {
                codec::encode(item, |parts| {
                    parts.iter().for_each(|p| buf.extend_from_slice(p));
                    by_name::send_noted();
                })
            });
            sent.push(out);
            if let Err(reason) = encoded {
                sent.into_iter().for_each(by_name::SentOut::abandon);
                return Err(PutManyError {
                    put: 0,
                    error: PutError::Serialize {
                        item: (),
                        reason: format!("item {i}: {reason}"),
                    },
                });
            }
            ends.push(buf.len());
        }
        let slices: Vec<&[u8]> = ends
            .iter()
            .scan(0, |start, &end| {
                let s = &buf[*start..end];
                *start = end;
                Some(s)
            })
            .collect();
        self.core()
            .put_batch(&slices, Wait::Forever)
            .map_err(|(put, f)| {
                sent.drain(put.min(sent.len())..)
                    .for_each(by_name::SentOut::abandon);
                PutManyError {
                    put,
                    error: PutError::from_fail(f, ()),
                }
            })
    }

    fn get_many_with<E>(
        &self,
        max: usize,
        wait: Wait,
        fail: fn(Fail) -> E,
        de: fn(String) -> E,
    ) -> Result<Vec<T>, E> {
        let mut out = Vec::new();
        let mut bad = None;
        self.core()
            .get_batch(max, wait, |bytes| match codec::decode::<T>(bytes) {
                Ok(item) => {
                    out.push(item);
                    true
                }
                // Taken (and reported) only if it is the first: otherwise it stays for the
                // next get, which reports it.
                Err(reason) if out.is_empty() => {
                    bad = Some(reason);
                    true
                }
                Err(_) => false,
            })
            .map_err(fail)?;
        match bad {
            Some(reason) => Err(de(reason)),
            None => Ok(out),
        }
    }

    /// Takes up to `max` items in one lock round trip, waiting while the queue is empty: at
    /// least one, then as many as are there (faster-fifo's `get_many`).
    ///
    /// # Errors
    /// As [`get`](Self::get). An item that does not deserialise ends the batch before it; it
    /// is reported (and dropped) by the get that finds it first.
    pub fn get_many(&self, max: usize) -> Result<Vec<T>, GetError> {
        self.get_many_with(
            max,
            Wait::Forever,
            GetError::from_fail,
            GetError::Deserialize,
        )
    }

    /// As [`get_many`](Self::get_many), without waiting.
    ///
    /// # Errors
    /// [`TryGetError::Empty`], or as [`get_many`](Self::get_many).
    pub fn try_get_many(&self, max: usize) -> Result<Vec<T>, TryGetError> {
        self.get_many_with(
            max,
            Wait::No,
            TryGetError::from_fail,
            TryGetError::Deserialize,
        )
    }

    /// As [`get_many`](Self::get_many), waiting at most `timeout` for the first item.
    ///
    /// # Errors
    /// [`GetTimeoutError::Timeout`], or as [`get_many`](Self::get_many).
    pub fn get_many_timeout(
        &self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<T>, GetTimeoutError> {
        self.get_many_with(
            max,
            deadline(timeout),
            GetTimeoutError::from_fail,
            GetTimeoutError::Deserialize,
        )
    }
}

impl Queue<Vec<u8>> {
    /// Puts a byte string of `len` bytes that `fill` writes in place, in the ring: no copy
    /// (iceoryx2's loan). The item is visible once `fill` returns. For an item under 64 KiB,
    /// `fill` runs under the queue's lock, so keep it short; for a bigger one it runs outside
    /// the lock, in space reserved for it, while gets go on (other puts wait for it). A `fill`
    /// that panics puts nothing. An item too big for the ring is filled into a buffer first
    /// and spilled as usual.
    ///
    /// `fill` must not wait on the same queue (a `get`, or a `put` that waits for room): that
    /// is a deadlock, reported as [`PutError::Failed`] by the inner call.
    ///
    /// # Errors
    /// As [`put_bytes`](Self::put_bytes).
    pub fn put_with(&self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), PutError<()>> {
        let mut prefix = [0u8; 10];
        let n = codec::varint(len as u64, &mut prefix);
        self.core()
            .put_in_place(&prefix[..n], len, fill, Wait::Forever)
            .map_err(|f| PutError::from_fail(f, ()))
    }

    /// Takes the oldest byte string and passes it to `read` in place, in the ring (or in its
    /// spill segment): no copy. For an item in the ring under 64 KiB, `read` runs under the
    /// queue's lock; for a bigger one it runs outside the lock while the item is claimed for
    /// this get (puts go on; other gets wait for it), and the item is taken once `read`
    /// returns. A `read` that panics leaves the item in the queue.
    ///
    /// `read` must not wait on the same queue: a `get` there is a deadlock, reported as
    /// [`GetError::Failed`] by the inner call.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn get_with<R>(&self, read: impl FnOnce(&[u8]) -> R) -> Result<R, GetError> {
        self.core()
            .get(Wait::Forever, |bytes| codec::unprefix(bytes).map(read))
            .map_err(GetError::from_fail)?
            .map_err(GetError::Deserialize)
    }

    /// As [`get_with`](Self::get_with), waiting at most `timeout` for an item.
    ///
    /// # Errors
    /// [`GetTimeoutError::Timeout`], or as [`get_with`](Self::get_with).
    pub fn get_with_timeout<R>(
        &self,
        timeout: Duration,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, GetTimeoutError> {
        self.core()
            .get(deadline(timeout), |bytes| codec::unprefix(bytes).map(read))
            .map_err(GetTimeoutError::from_fail)?
            .map_err(GetTimeoutError::Deserialize)
    }
}
