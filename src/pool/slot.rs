//! `Slot`: where the outcome of a submission (one task, or every chunk of a `map`) lands in the
//! parent, and `AsyncResult`, the typed handle on it.
//!
//! A slot moves Pending → Running → Completing → Done (or Pending → Cancelled). When its last
//! chunk lands, the collector thread runs the *before* callbacks (an `AsyncResult`'s success
//! and error callbacks, so they have run when `get` returns, as in Python), then marks it Done
//! and wakes the waiters, then runs the *after* callbacks (a future's done callbacks, which may
//! themselves ask the future for its result).

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::de::DeserializeOwned;

use super::error::{ResultTimeoutError, TaskError, TryResultError};
use super::task;

/// The outcome of one chunk: its encoded outcomes, or why it has none.
pub(crate) type ChunkOutcome = Result<Chunk, TaskError>;

/// A worker's results message, whose bytes from `start` are a chunk's encoded outcomes (the
/// message is handed on as it came off the queue, without a copy).
pub(crate) struct Chunk {
    buf: Vec<u8>,
    start: usize,
}

impl Chunk {
    pub(crate) fn new(buf: Vec<u8>, start: usize) -> Self {
        Chunk { buf, start }
    }
}

impl std::ops::Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

/// Decodes a slot's chunks into the handle's value.
pub(crate) type Decode<T> = fn(&[ChunkOutcome], &[usize]) -> Result<T, TaskError>;

type Before = Box<dyn FnOnce(&[ChunkOutcome]) + Send>;
type After = Box<dyn FnOnce() + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Running,
    Completing,
    Done,
    Cancelled,
}

struct State {
    chunks: Vec<Option<ChunkOutcome>>,
    remaining: usize,
    done: Option<Arc<[ChunkOutcome]>>,
    phase: Phase,
    before: Vec<Before>,
    after: Vec<After>,
}

/// The parent's end of a submission.
pub(crate) struct Slot {
    state: Mutex<State>,
    changed: Condvar,
    /// How many items each chunk holds.
    sizes: Vec<usize>,
}

impl Slot {
    pub(crate) fn new(sizes: Vec<usize>) -> Arc<Self> {
        let n = sizes.len();
        let slot = Arc::new(Slot {
            state: Mutex::new(State {
                chunks: (0..n).map(|_| None).collect(),
                remaining: n,
                done: None,
                phase: Phase::Pending,
                before: Vec::new(),
                after: Vec::new(),
            }),
            changed: Condvar::new(),
            sizes,
        });
        if n == 0 {
            slot.finish(Vec::new());
        }
        slot
    }

    pub(crate) fn phase(&self) -> Phase {
        self.state.lock().phase
    }

    /// A chunk went to a worker.
    pub(crate) fn set_running(&self) {
        let mut st = self.state.lock();
        if st.phase == Phase::Pending {
            st.phase = Phase::Running;
        }
    }

    /// Chunk `index` finished. Runs callbacks, so call it without holding pool locks.
    pub(crate) fn complete(&self, index: usize, outcome: ChunkOutcome) {
        let mut st = self.state.lock();
        if matches!(st.phase, Phase::Completing | Phase::Done | Phase::Cancelled) {
            return;
        }
        let Some(cell) = st.chunks.get_mut(index) else {
            return;
        };
        if cell.replace(outcome).is_none() {
            st.remaining -= 1;
        }
        if st.remaining > 0 {
            return;
        }
        let chunks = st.chunks.drain(..).flatten().collect();
        drop(st);
        self.finish(chunks);
    }

    fn finish(&self, chunks: Vec<ChunkOutcome>) {
        let chunks: Arc<[ChunkOutcome]> = chunks.into();
        let mut st = self.state.lock();
        st.phase = Phase::Completing;
        st.done = Some(chunks.clone());
        loop {
            let before = std::mem::take(&mut st.before);
            if before.is_empty() {
                break;
            }
            drop(st);
            for f in before {
                guarded(|| f(&chunks));
            }
            st = self.state.lock();
        }
        st.phase = Phase::Done;
        let after = std::mem::take(&mut st.after);
        drop(st);
        self.changed.notify_all();
        for f in after {
            guarded(f);
        }
    }

    /// Cancels a submission that has not started; false if it has.
    pub(crate) fn cancel(&self) -> bool {
        let mut st = self.state.lock();
        match st.phase {
            Phase::Cancelled => return true,
            Phase::Pending => {}
            _ => return false,
        }
        st.phase = Phase::Cancelled;
        st.done = Some(
            self.sizes
                .iter()
                .map(|_| Err(TaskError::Cancelled))
                .collect(),
        );
        let after = std::mem::take(&mut st.after);
        drop(st);
        self.changed.notify_all();
        for f in after {
            guarded(f);
        }
        true
    }

    /// Runs `f` with the outcomes before waiters are woken, or now if that has passed.
    fn add_before(&self, f: Before) {
        let mut st = self.state.lock();
        match (&st.done, st.phase) {
            (Some(done), Phase::Done | Phase::Cancelled) => {
                let done = done.clone();
                drop(st);
                guarded(|| f(&done));
            }
            _ => st.before.push(f),
        }
    }

    /// Runs `f` once the slot is done or cancelled, or now if it is.
    pub(crate) fn add_after(&self, f: After) {
        let mut st = self.state.lock();
        if matches!(st.phase, Phase::Done | Phase::Cancelled) {
            drop(st);
            guarded(f);
        } else {
            st.after.push(f);
        }
    }

    /// Waits until done or cancelled, at most until `deadline`; the outcomes if so.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Option<Arc<[ChunkOutcome]>> {
        let mut st = self.state.lock();
        loop {
            if matches!(st.phase, Phase::Done | Phase::Cancelled) {
                return st.done.clone();
            }
            match deadline {
                None => self.changed.wait(&mut st),
                Some(d) => {
                    if self.changed.wait_until(&mut st, d).timed_out()
                        && !matches!(st.phase, Phase::Done | Phase::Cancelled)
                    {
                        return None;
                    }
                }
            }
        }
    }

    pub(crate) fn sizes(&self) -> &[usize] {
        &self.sizes
    }
}

/// Runs a user callback; a panic in it is reported on stderr instead of unwinding into the
/// pool's collector thread, which must go on delivering every other result. (In Python, an
/// exception in a callback kills the result handler thread, and the pool hangs.)
fn guarded(f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        eprintln!(
            "shmkit: a pool callback panicked: {}",
            task::panic_message(&*panic)
        );
    }
}

/// Decodes the single item of a one-chunk slot.
pub(crate) fn decode_one<R: DeserializeOwned>(
    chunks: &[ChunkOutcome],
    sizes: &[usize],
) -> Result<R, TaskError> {
    decode_one_with(chunks, sizes, task::decode_outcome::<R>)
}

/// As [`decode_one`], for a fallible task: the value inside its `Ok`.
pub(crate) fn decode_one_ok<R: DeserializeOwned>(
    chunks: &[ChunkOutcome],
    sizes: &[usize],
) -> Result<R, TaskError> {
    decode_one_with(chunks, sizes, task::decode_outcome_ok::<R>)
}

fn decode_one_with<R>(
    chunks: &[ChunkOutcome],
    _: &[usize],
    decode: task::DecodeOutcome<R>,
) -> Result<R, TaskError> {
    match chunks.first() {
        Some(Ok(bytes)) => match task::Items(bytes).next() {
            Some(Ok((tag, bytes))) => decode(tag, bytes),
            Some(Err(why)) => Err(TaskError::Deserialize(why)),
            None => Err(TaskError::Deserialize("the worker sent no result".into())),
        },
        Some(Err(e)) => Err(e.clone()),
        None => Err(TaskError::Deserialize("no outcome".into())),
    }
}

/// Decodes every item of every chunk, in order; the first failure, if any, after all of them.
pub(crate) fn decode_all<R: DeserializeOwned>(
    chunks: &[ChunkOutcome],
    sizes: &[usize],
) -> Result<Vec<R>, TaskError> {
    let mut values = Vec::with_capacity(sizes.iter().sum());
    let mut first_err = None;
    for (chunk, &size) in chunks.iter().zip(sizes) {
        match chunk {
            Ok(bytes) => task::decode_chunk(bytes, size, |r| match r {
                Ok(v) if first_err.is_none() => values.push(v),
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }),
            Err(e) => {
                first_err.get_or_insert_with(|| e.clone());
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(values),
    }
}

/// The result of [`Pool::apply_async`](crate::Pool::apply_async) or
/// [`Pool::map_async`](crate::Pool::map_async): Python's `AsyncResult`.
///
/// [`on_success`](Self::on_success) and [`on_error`](Self::on_error) register Python's
/// `callback` and `error_callback`: they run in the parent, on the pool's collector thread, as
/// soon as the task finishes and before [`get`](Self::get) returns (or at once, on the calling
/// thread, if it has already finished). A callback should be quick and must not wait for
/// another task of the same pool: while it runs, no other result is delivered.
pub struct AsyncResult<T> {
    slot: Arc<Slot>,
    decode: Decode<T>,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for AsyncResult<T> {
    fn clone(&self) -> Self {
        AsyncResult {
            slot: self.slot.clone(),
            decode: self.decode,
            _value: PhantomData,
        }
    }
}

impl<T: 'static> AsyncResult<T> {
    pub(crate) fn new(slot: Arc<Slot>, decode: Decode<T>) -> Self {
        AsyncResult {
            slot,
            decode,
            _value: PhantomData,
        }
    }

    /// Waits for the task and returns its value (decoded afresh on each call).
    ///
    /// # Errors
    /// The task's [`TaskError`]; for a `map_async`, the first failing item's, once all chunks
    /// have finished.
    pub fn get(&self) -> Result<T, TaskError> {
        // Without a deadline the wait returns only once the task is done, with its outcome.
        match self.slot.wait(None) {
            Some(done) => (self.decode)(&done, self.slot.sizes()),
            None => Err(TaskError::Pool(
                "internal error: a task ended with no outcome".into(),
            )),
        }
    }

    /// The value, if the task has finished.
    ///
    /// # Errors
    /// [`TryResultError::NotReady`] if it has not; the task's error inside
    /// [`TryResultError::Task`].
    pub fn try_get(&self) -> Result<T, TryResultError> {
        if !self.is_ready() {
            return Err(TryResultError::NotReady);
        }
        Ok(self.get()?)
    }

    /// As [`get`](Self::get), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`ResultTimeoutError::Timeout`] if it has not finished by then (it keeps running; ask
    /// again); the task's error inside [`ResultTimeoutError::Task`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, ResultTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        let done = self
            .slot
            .wait(deadline)
            .ok_or(ResultTimeoutError::Timeout)?;
        Ok((self.decode)(&done, self.slot.sizes())?)
    }

    /// Waits until the task has finished.
    pub fn wait(&self) {
        self.slot.wait(None);
    }

    /// Waits at most `timeout`; whether the task has finished.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.slot
            .wait(Instant::now().checked_add(timeout))
            .is_some()
    }

    /// Whether the task has finished (and its callbacks have run): Python's `ready()`.
    #[doc(alias = "ready")]
    pub fn is_ready(&self) -> bool {
        matches!(self.slot.phase(), Phase::Done | Phase::Cancelled)
    }

    /// Whether the task finished with a value; `None` while it has not finished (Python's
    /// `successful()`, which raises `ValueError` there).
    #[doc(alias = "successful")]
    pub fn is_successful(&self) -> Option<bool> {
        self.is_ready().then(|| self.get().is_ok())
    }

    /// Registers a callback for the value (Python's `callback`).
    #[must_use = "the AsyncResult is how to get the value"]
    pub fn on_success(self, f: impl FnOnce(&T) + Send + 'static) -> Self {
        self.on_outcome(move |r| {
            if let Ok(value) = r {
                f(&value);
            }
        });
        self
    }

    /// Registers a callback for the error (Python's `error_callback`).
    #[must_use = "the AsyncResult is how to get the value"]
    pub fn on_error(self, f: impl FnOnce(&TaskError) + Send + 'static) -> Self {
        self.on_outcome(move |r| {
            if let Err(e) = r {
                f(&e);
            }
        });
        self
    }

    /// Runs `f` with the decoded outcome before waiters are woken (or now, if it is done).
    fn on_outcome(&self, f: impl FnOnce(Result<T, TaskError>) + Send + 'static) {
        let decode = self.decode;
        let sizes = self.slot.sizes().to_vec();
        self.slot
            .add_before(Box::new(move |chunks| f(decode(chunks, &sizes))));
    }
}

impl<T> AsyncResult<T> {
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl<T> std::fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("phase", &self.slot.phase())
            .finish()
    }
}
