//! `Process`: a Rust function running in a child process (Python's `multiprocessing.Process`).

use std::marker::PhantomData;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::child::{self, CHILD_ENV, Message, Spec};
use super::entry::{self, Key};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::pipe::{Connection, Pipe};
use crate::shm::by_name;
use crate::sys;

/// How long `start` waits for a child to reach `shmkit::init()`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a child's function gave no value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The function panicked, with this message.
    #[error("the child panicked: {0}")]
    Panicked(String),
    /// The argument or the result could not be (de)serialised.
    #[error("{0}")]
    Serde(String),
    /// The child exited (with this code, or was killed by this signal) before it sent a result.
    #[error("the child exited ({0}) without a result")]
    Exited(ExitStatus),
    /// An OS error waiting for the child.
    #[error(transparent)]
    Failed(#[from] Error),
}

/// Why [`Process::join_timeout`] gave no value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessTimeoutError {
    /// The child had not finished at the deadline (it keeps running; join again).
    #[error("the child had not finished at the deadline")]
    Timeout,
    /// The child finished without a value: see [`ProcessError`].
    #[error(transparent)]
    Process(#[from] ProcessError),
}

crate::error::failed_into_error!(ProcessError);

impl From<ProcessTimeoutError> for Error {
    fn from(e: ProcessTimeoutError) -> Error {
        match e {
            ProcessTimeoutError::Process(p) => p.into(),
            other => Error::Op(Box::new(other)),
        }
    }
}

/// A function running in a child process: Python's `multiprocessing.Process`, with the
/// function's return value (or its panic message) brought back by [`join`](Self::join).
///
/// The child is this executable started again; its `main` must begin with
/// [`shmkit::init()`](crate::init). Only fn items and closures that capture nothing can be
/// started (anything else fails to compile); the argument `A` and result `R` travel with serde,
/// and may contain shmkit handles (`Value`, `Array`, `Queue`, `Lock`, `Connection`...).
///
/// A *daemon* child is killed by the kernel when its parent exits. Other children keep running
/// if the parent exits without joining them (Python joins them at exit; Rust has no such hook).
///
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> shmkit::Result<()> {
///     shmkit::init(); // first in main: in the child, this runs `square` and exits
///     let mut p = shmkit::Process::start(square, 12)?;
///     assert_eq!(p.join()?, 144);
///     assert_eq!(p.exit_code(), Some(0));
///     Ok(())
/// }
/// ```
pub struct Process<R> {
    /// The child, and its exit status once reaped (queries take `&self`).
    child: Mutex<(Child, Option<ExitStatus>)>,
    pid: u32,
    conn: Connection<Vec<u8>, Message>,
    name: String,
    outcome: Option<std::result::Result<(Vec<u8>, bool), ProcessError>>,
    _result: PhantomData<fn() -> R>,
}

/// Options for starting a [`Process`]: a name, and whether it is a daemon.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<String>,
    daemon: bool,
    /// Inside `cargo test`: the test to run in the child (default: the current thread's name).
    test: Option<Option<String>>,
    /// The key that signs what the child runs; a fresh one per child unless a pool sets its own.
    key: Option<Key>,
}

impl Builder {
    /// The process's name (default `Process-N`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Makes the child a daemon (Python's `daemon=True`): the kernel kills it when its
    /// parent exits.
    pub fn daemon(mut self) -> Self {
        self.daemon = true;
        self
    }

    /// The libtest test the child must run, for a process started from a thread that is not the
    /// test's own (a pool's collector); `None` outside tests.
    #[cfg(feature = "pool")]
    pub(crate) fn test_filter(mut self, test: Option<String>) -> Self {
        self.test = Some(test);
        self
    }

    /// The secret the child reads back with `child::key()`.
    #[cfg(feature = "pool")]
    pub(crate) fn key(mut self, key: Key) -> Self {
        self.key = Some(key);
        self
    }

    /// Starts `f(arg)` in a child process.
    ///
    /// # A closure that captures state
    /// `f` must be a fn item or a closure that captures nothing: the child gets only its type.
    /// Anything else is refused at compile time, but the language lets that check run only when
    /// the code is generated, so `cargo check` passes and `cargo build` fails with
    /// `error[E0080]: evaluation panicked: only fn items and closures that capture nothing can
    /// run in another process`, pointing inside shmkit; its note "evaluation of
    /// `shmkit::process::entry::conjure::<{closure@src/main.rs:4:36: 4:49}>`" names your
    /// closure's file and line.
    /// The fix: pass the state in the argument, `Process::start(f, (state, x))`.
    ///
    /// # Errors
    /// [`Error::InitNotCalled`](crate::Error::InitNotCalled) if the child never reached `shmkit::init()` (or this process is
    /// such a child itself); [`Error::Serialize`](crate::Error::Serialize) for an argument that does not serialise;
    /// [`Error::Io`](crate::Error::Io) if the child cannot be started.
    pub fn start<F, A, R>(self, f: F, arg: A) -> Result<Process<R>>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let _ = f;
        if child::uninitialised_child() {
            return Err(Error::InitNotCalled);
        }
        static COUNT: AtomicU32 = AtomicU32::new(1);
        let name = self
            .name
            .unwrap_or_else(|| format!("Process-{}", COUNT.fetch_add(1, Ordering::Relaxed)));
        // Handles in the argument are handed over to the child (see `shm::by_name`), and
        // taken back if it never gets them.
        let (arg, sent) = by_name::capture(|| {
            let bytes = postcard::to_allocvec(&arg);
            if bytes.is_ok() {
                by_name::send_noted();
            }
            bytes
        });
        let arg = arg.map_err(|e| Error::Serialize(e.to_string()))?;
        let started = (|| {
            let (conn, theirs) = Pipe::<Vec<u8>, Message>::duplex()?;
            let key = match self.key {
                Some(k) => k,
                None => entry::new_key().map_err(|e| Error::io("getrandom", e))?,
            };
            let spec = Spec {
                entry: child::entry_name::<F, A, R>(&key),
                exe: sys::exe_identity().map_err(|e| Error::io("stat /proc/self/exe", e))?,
                conn: serde_json::to_string(&theirs)
                    .map_err(|e| Error::Serialize(e.to_string()))?,
                daemon: self.daemon,
                key,
                parent: sys::current_pid(),
                name: name.clone(),
                parent_name: super::current::current_process().name,
            };
            let mut cmd =
                Command::new(std::env::current_exe().map_err(|e| Error::io("current_exe", e))?);
            // Inside `cargo test`, run only the test that is starting the child (libtest names its
            // threads after their tests); that test's first line, `shmkit::init()`, takes over.
            let test = self.test.unwrap_or_else(current_test);
            if let Some(test) = test {
                cmd.args([
                    test.as_str(),
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                    "-q",
                ]);
            }
            let spec = serde_json::to_string(&spec).map_err(|e| Error::Serialize(e.to_string()))?;
            let child = cmd
                .env(CHILD_ENV, spec)
                .spawn()
                .map_err(|e| Error::io("spawn", e))?;
            super::current::register_child(super::current::ProcessInfo {
                name: name.clone(),
                pid: child.id(),
            });
            let mut p = Process {
                pid: child.id(),
                child: Mutex::new((child, None)),
                conn,
                name,
                outcome: None,
                _result: PhantomData,
            };
            theirs.disown(); // the child's end: it claims it when it runs
            p.handshake(&arg)?;
            Ok(p)
        })();
        match started {
            // `start` returns once the child holds what it was handed: the sender may then drop,
            // or the child be killed, without stranding a hand-over.
            Ok(mut p) => {
                if !p.await_claim() {
                    sent.abandon();
                }
                Ok(p)
            }
            Err(e) => {
                sent.abandon();
                Err(e)
            }
        }
    }
}

impl Process<()> {
    /// Options for a process: a name, daemon. `Process::builder().name("x").start(f, arg)`.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl<R: DeserializeOwned> Process<R> {
    /// Starts `f(arg)` in a child process (see [`Builder::start`]).
    ///
    /// # Errors
    /// As [`Builder::start`].
    pub fn start<F, A>(f: F, arg: A) -> Result<Self>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize,
    {
        Builder::default().start(f, arg)
    }

    fn handshake(&mut self, arg: &[u8]) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.conn.poll(Duration::from_millis(10)) {
                return match self.conn.recv() {
                    Ok(Message::Hello) => self.conn.send_bytes(arg).map_err(Error::from),
                    _ => Err(Error::InitNotCalled),
                };
            }
            let mut child = self.child.lock();
            if child
                .0
                .try_wait()
                .map_err(|e| Error::io("wait", e))?
                .is_some()
                || Instant::now() >= deadline
            {
                let _ = child.0.kill();
                let _ = child.0.wait();
                return Err(Error::InitNotCalled);
            }
        }
    }

    /// Waits until the child has decoded its argument (`Claimed`); `false` if it could not, or
    /// died first. A decoding failure is kept as the outcome `join` reports.
    fn await_claim(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if !self.conn.poll(Duration::from_millis(10)) {
                if !self.is_alive() {
                    return false;
                }
                continue;
            }
            return match self.conn.recv() {
                Ok(Message::Claimed) => true,
                Ok(Message::Failed(m)) => {
                    self.outcome = Some(Err(ProcessError::Serde(m)));
                    false
                }
                _ => false,
            };
        }
        false
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The process's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the child is still running.
    pub fn is_alive(&self) -> bool {
        self.poll_status().is_none()
    }

    fn poll_status(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock();
        if child.1.is_none() {
            child.1 = child.0.try_wait().ok().flatten();
        }
        child.1
    }

    /// The exit code (Python's `exitcode`): `None` while running; 0 on success; 1 if the
    /// function panicked or returned an `Err`; the code of an explicit `exit`; minus the
    /// signal if it was killed.
    #[doc(alias = "exitcode")]
    pub fn exit_code(&self) -> Option<i32> {
        self.poll_status()
            .map(|s| s.code().unwrap_or_else(|| -s.signal().unwrap_or(0)))
    }

    /// Sends SIGTERM (nothing, if the child has already ended and been reaped).
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the signal cannot be sent.
    pub fn terminate(&self) -> Result<()> {
        self.signal(sys::SIGTERM, "kill(SIGTERM)")
    }

    /// Sends SIGKILL (nothing, if the child has already ended and been reaped).
    ///
    /// # Errors
    /// As [`terminate`](Self::terminate).
    pub fn kill(&self) -> Result<()> {
        self.signal(sys::SIGKILL, "kill(SIGKILL)")
    }

    /// Signals the child unless it has been reaped: then it is a no-op, because its pid may
    /// already name another process. Reaping happens only under this lock, and until it
    /// happens the kernel keeps the pid for our (possibly zombie) child, so the pid signalled
    /// here is always our child's.
    fn signal(&self, signal: i32, op: &'static str) -> Result<()> {
        let mut child = self.child.lock();
        if child.1.is_none() {
            child.1 = child.0.try_wait().ok().flatten();
        }
        if child.1.is_some() {
            return Ok(());
        }
        sys::signal(self.pid, signal).map_err(|e| Error::io(op, e))
    }

    /// Waits for the child to finish and returns its function's result.
    ///
    /// # Errors
    /// [`ProcessError::Panicked`] with the panic message, [`ProcessError::Exited`] if it exited
    /// or was killed before sending a result, [`ProcessError::Serde`].
    pub fn join(&mut self) -> std::result::Result<R, ProcessError> {
        self.join_until(None).map_err(|e| match e {
            ProcessTimeoutError::Process(p) => p,
            // Without a deadline, join waits until the child ends: no timeout can come.
            ProcessTimeoutError::Timeout => {
                ProcessError::Failed(Error::Op("internal error: join timed out".into()))
            }
        })
    }

    /// As [`join`](Self::join), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`ProcessTimeoutError::Timeout`] if the child is still running (join again later), or
    /// as [`join`](Self::join).
    pub fn join_timeout(
        &mut self,
        timeout: Duration,
    ) -> std::result::Result<R, ProcessTimeoutError> {
        self.join_until(Instant::now().checked_add(timeout))
    }

    fn join_until(
        &mut self,
        deadline: Option<Instant>,
    ) -> std::result::Result<R, ProcessTimeoutError> {
        while self.outcome.is_none() {
            if self.conn.poll(Duration::from_millis(20)) || self.conn.is_closed() {
                self.outcome = Some(match self.conn.recv() {
                    Ok(Message::Returned { bytes, failed }) => Ok((bytes, failed)),
                    Ok(Message::Panicked(m)) => Err(ProcessError::Panicked(m)),
                    Ok(Message::Failed(m)) => Err(ProcessError::Serde(m)),
                    Ok(Message::Hello | Message::Claimed) => continue,
                    Err(_) => Err(ProcessError::Exited(self.wait_status(deadline)?)),
                });
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ProcessTimeoutError::Timeout);
            }
        }
        self.wait_status(deadline)?;
        match self.outcome.as_ref() {
            Some(Ok((bytes, _))) => {
                postcard::from_bytes(bytes).map_err(|e| ProcessError::Serde(e.to_string()).into())
            }
            Some(Err(ProcessError::Panicked(m))) => Err(ProcessError::Panicked(m.clone()).into()),
            Some(Err(ProcessError::Serde(m))) => Err(ProcessError::Serde(m.clone()).into()),
            Some(Err(ProcessError::Exited(s))) => Err(ProcessError::Exited(*s).into()),
            _ => Err(ProcessError::Failed(Error::Op("internal error: no outcome".into())).into()),
        }
    }

    fn wait_status(
        &self,
        deadline: Option<Instant>,
    ) -> std::result::Result<ExitStatus, ProcessTimeoutError> {
        loop {
            if let Some(s) = self.poll_status() {
                return Ok(s);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ProcessTimeoutError::Timeout);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl<R: DeserializeOwned> crate::select::sealed::Watch for Process<R> {
    fn is_ready(&self) -> bool {
        !self.is_alive()
    }
    fn watched(&self) -> Option<&crate::queue::QueueCore> {
        crate::select::sealed::Watch::watched(&self.conn)
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        super::current::forget_child(self.pid);
    }
}

impl<R> std::fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .finish()
    }
}

/// The libtest test running on this thread, if any: libtest names its threads after their
/// tests (a binary's main thread is "main").
pub(crate) fn current_test() -> Option<String> {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_owned)
}
