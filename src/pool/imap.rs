//! `Imap`: the lazy iterator of `Pool::imap` and `Pool::imap_unordered`.

use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::core::{Core, Sink};
use super::error::{ResultTimeoutError, TaskError};
use super::slot::ChunkOutcome;
use super::task;
use crate::shm::by_name::SentOut;

/// Encodes the next chunk of the input: the chunk, how many items it holds, its hand-overs.
type NextChunk<'p> = Box<dyn FnMut() -> (Vec<u8>, usize, SentOut) + 'p>;

/// The results of [`Pool::imap`](crate::Pool::imap) (in order) or
/// [`Pool::imap_unordered`](crate::Pool::imap_unordered) (as they finish), one
/// `Result` per item: a failing item yields its error and the iteration goes on.
///
/// The input is read lazily: at most a few chunks per worker are in flight, so an endless
/// input works, and a slow consumer holds back the producer instead of filling memory.
pub struct Imap<'p, R> {
    core: &'p Core,
    entry: i64,
    next_chunk: NextChunk<'p>,
    exhausted: bool,
    ordered: bool,
    window: usize,
    tx: mpsc::Sender<(usize, ChunkOutcome)>,
    rx: mpsc::Receiver<(usize, ChunkOutcome)>,
    sizes: Vec<usize>,
    received: usize,
    next_index: usize,
    waiting: BTreeMap<usize, ChunkOutcome>,
    ready: VecDeque<Result<R, TaskError>>,
    _r: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for Imap<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imap")
            .field("ordered", &self.ordered)
            .field("received", &self.received)
            .field("exhausted", &self.exhausted)
            .finish_non_exhaustive()
    }
}

impl<'p, R: DeserializeOwned> Imap<'p, R> {
    pub(crate) fn new<A, I>(
        core: &'p Core,
        entry: i64,
        chunksize: usize,
        items: I,
        ordered: bool,
    ) -> Self
    where
        A: Serialize + 'p,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        let mut items = items.into_iter();
        let next_chunk: NextChunk<'p> = Box::new(move || task::encode_chunk(&mut items, chunksize));
        let (tx, rx) = mpsc::channel();
        Imap {
            window: 3 * core.processes() + 2,
            core,
            entry,
            next_chunk,
            exhausted: false,
            ordered,
            tx,
            rx,
            sizes: Vec::new(),
            received: 0,
            next_index: 0,
            waiting: BTreeMap::new(),
            ready: VecDeque::new(),
            _r: PhantomData,
        }
    }

    /// Submits chunks until `window` are in flight or the input ends.
    fn top_up(&mut self) {
        while !self.exhausted && self.sizes.len() - self.received < self.window {
            let (args, n, sent) = (self.next_chunk)();
            if n == 0 {
                self.exhausted = true;
                break;
            }
            let index = self.sizes.len();
            self.sizes.push(n);
            let sink = Sink::Stream(self.tx.clone(), index);
            self.core.submit(self.entry, (args, sent), sink);
        }
    }

    fn unpack(&mut self, index: usize, outcome: ChunkOutcome) {
        let size = self.sizes[index];
        match outcome {
            Ok(bytes) => task::decode_chunk(&bytes, size, |r| self.ready.push_back(r)),
            Err(e) => self.ready.extend((0..size).map(|_| Err(e.clone()))),
        }
    }
}

impl<R: DeserializeOwned> Imap<'_, R> {
    /// The next result, waiting at most `timeout` for it (Python's `next(timeout)` on an
    /// `imap` iterator): `None` once every item has been yielded, `Some(Err(Timeout))` if the
    /// next result did not come in time (nothing is lost: ask again).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R, ResultTimeoutError>> {
        let deadline = Instant::now().checked_add(timeout);
        match self.next_until(deadline) {
            Next::Item(r) => Some(r.map_err(ResultTimeoutError::Task)),
            Next::End => None,
            Next::Timeout => Some(Err(ResultTimeoutError::Timeout)),
        }
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Next<R> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Next::Item(item);
            }
            self.top_up();
            if self.ordered
                && let Some(outcome) = self.waiting.remove(&self.next_index)
            {
                self.next_index += 1;
                self.unpack(self.next_index - 1, outcome);
                continue;
            }
            if self.received == self.sizes.len() {
                return Next::End; // the input is exhausted and everything has been yielded
            }
            // Every submitted chunk gets exactly one outcome: a result, a worker's death, the
            // pool's refusal or termination. So a wait without a deadline ends.
            let got = match deadline {
                None => self.rx.recv().map_err(|_| false),
                Some(d) => self
                    .rx
                    .recv_timeout(d.saturating_duration_since(Instant::now()))
                    .map_err(|e| e == mpsc::RecvTimeoutError::Timeout),
            };
            let (index, outcome) = match got {
                Ok(got) => got,
                Err(true) => return Next::Timeout,
                Err(false) => return Next::End,
            };
            self.received += 1;
            if self.ordered {
                self.waiting.insert(index, outcome);
            } else {
                self.unpack(index, outcome);
            }
        }
    }
}

/// What waiting for the next result gave.
enum Next<R> {
    Item(Result<R, TaskError>),
    End,
    Timeout,
}

impl<R: DeserializeOwned> Iterator for Imap<'_, R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_until(None) {
            Next::Item(r) => Some(r),
            Next::End | Next::Timeout => None,
        }
    }
}
