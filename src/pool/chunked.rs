//! `Chunked`: a pool's map operations with a chunk size, and how they split their items into
//! tasks, encode them, and gather the results in order.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::core::Sink;
use super::error::TaskError;
use super::imap::Imap;
use super::pool::Pool;
use super::slot::{self, AsyncResult, Decode, Slot};
use super::task::{self, StarFn};

/// The default chunk size of `map`: Python's `ceil(len / (4 × workers))`.
fn default_chunksize(len: usize, processes: usize) -> usize {
    len.div_ceil(4 * processes).max(1)
}

/// A [`Pool`]'s map operations with an explicit chunk size: see [`Pool::chunksize`].
#[derive(Clone, Copy, Debug)]
pub struct Chunked<'p> {
    pub(super) pool: &'p Pool,
    pub(super) chunksize: Option<usize>,
}

impl<'p> Chunked<'p> {
    /// As [`Pool::map`].
    ///
    /// # Errors
    /// As [`Pool::map`].
    pub fn map<F, A, R, I>(self, f: F, items: I) -> std::result::Result<Vec<R>, TaskError>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        self.run_all(task::map_entry(f), items)
    }

    /// As [`Pool::map_async`].
    pub fn map_async<F, A, R, I>(self, f: F, items: I) -> AsyncResult<Vec<R>>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        let items: Vec<A> = items.into_iter().collect();
        self.submit_all(task::map_entry(f), &items, slot::decode_all::<R>)
    }

    /// As [`Pool::starmap`].
    ///
    /// # Errors
    /// As [`Pool::map`].
    pub fn starmap<F, Args, R, I>(self, f: F, items: I) -> std::result::Result<Vec<R>, TaskError>
    where
        F: StarFn<Args, Output = R>,
        Args: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = Args>,
    {
        self.run_all(task::star_entry(f), items)
    }

    /// As [`Pool::starmap_async`].
    pub fn starmap_async<F, Args, R, I>(self, f: F, items: I) -> AsyncResult<Vec<R>>
    where
        F: StarFn<Args, Output = R>,
        Args: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = Args>,
    {
        let items: Vec<Args> = items.into_iter().collect();
        self.submit_all(task::star_entry(f), &items, slot::decode_all::<R>)
    }

    /// As [`Pool::imap`].
    pub fn imap<F, A, R, I>(self, f: F, items: I) -> Imap<'p, R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        self.imap_in(f, items, true)
    }

    /// As [`Pool::imap_unordered`].
    pub fn imap_unordered<F, A, R, I>(self, f: F, items: I) -> Imap<'p, R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        self.imap_in(f, items, false)
    }

    fn imap_in<F, A, R, I>(self, f: F, items: I, ordered: bool) -> Imap<'p, R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        let chunksize = self.chunksize.unwrap_or(1);
        Imap::new(
            &self.pool.core,
            task::map_entry(f),
            chunksize,
            items,
            ordered,
        )
    }

    fn size(self, len: usize) -> usize {
        self.chunksize
            .unwrap_or_else(|| default_chunksize(len, self.pool.processes()))
    }

    /// Runs `items` in chunks and waits for all, decoding each chunk as it arrives (while the
    /// workers run the others). An iterator that knows its length is encoded as it goes,
    /// without being collected first.
    fn run_all<A: Serialize, R: DeserializeOwned>(
        self,
        entry: i64,
        items: impl IntoIterator<Item = A>,
    ) -> std::result::Result<Vec<R>, TaskError> {
        self.run_all_with(entry, items, task::decode_outcome::<R>)
    }

    /// As [`run_all`](Self::run_all), decoding each outcome with `decode`.
    pub(super) fn run_all_with<A: Serialize, R>(
        self,
        entry: i64,
        items: impl IntoIterator<Item = A>,
        decode: task::DecodeOutcome<R>,
    ) -> std::result::Result<Vec<R>, TaskError> {
        let items = items.into_iter();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut sizes = Vec::new();
        let mut total = 0;
        let mut submit = |chunk: &mut dyn Iterator<Item = A>, size: usize| {
            let (args, n, sent) = task::encode_chunk(chunk, size);
            if n > 0 {
                let sink = Sink::Stream(tx.clone(), sizes.len());
                sizes.push(n);
                total += n;
                self.pool.core.submit(entry, (args, sent), sink);
            }
            n == size
        };
        match items.size_hint() {
            (lo, Some(hi)) if lo == hi => {
                let size = self.size(lo);
                let mut items = items;
                while submit(&mut items, size) {}
            }
            _ => {
                let items: Vec<A> = items.collect();
                let size = self.size(items.len());
                let mut items = items.into_iter();
                while submit(&mut items, size) {}
            }
        }
        drop(tx);
        // Chunks are decoded straight into the result when they arrive in order (the usual
        // case), and parked until their turn otherwise.
        let mut values: Vec<R> = Vec::with_capacity(total);
        let mut parked: std::collections::BTreeMap<usize, Vec<R>> = Default::default();
        let mut next = 0;
        let mut first_err: Option<(usize, TaskError)> = None;
        // Every chunk gets exactly one outcome (a result, a dead worker's error, the pool's
        // refusal or termination), so this loop ends.
        while let Ok((i, outcome)) = rx.recv() {
            let mut err = None;
            let mut part = Vec::new();
            let out = if i == next { &mut values } else { &mut part };
            match outcome {
                Ok(bytes) => task::decode_chunk_with(&bytes, sizes[i], decode, |r| match r {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        err.get_or_insert(e);
                    }
                }),
                Err(e) => err = Some(e),
            }
            if let Some(e) = err
                && first_err.as_ref().is_none_or(|(at, _)| i < *at)
            {
                first_err = Some((i, e));
            }
            if i == next {
                next += 1;
                while let Some(part) = parked.remove(&next) {
                    values.extend(part);
                    next += 1;
                }
            } else {
                parked.insert(i, part);
            }
        }
        match first_err {
            Some((_, e)) => Err(e),
            None => Ok(values),
        }
    }

    /// Submits `items` in chunks, all landing in one slot.
    fn submit_all<A: Serialize, T: 'static>(
        self,
        entry: i64,
        items: &[A],
        decode: Decode<T>,
    ) -> AsyncResult<T> {
        let size = self.size(items.len());
        let slot = Slot::new(items.chunks(size).map(<[A]>::len).collect());
        for (i, chunk) in items.chunks(size).enumerate() {
            let chunk = task::encode_chunk(&mut chunk.iter(), size);
            self.pool
                .core
                .submit(entry, (chunk.0, chunk.2), Sink::Slot(slot.clone(), i));
        }
        AsyncResult::new(slot, decode)
    }
}
