//! Starting a function in a child process: the child side (`init`) and how a function is named
//! across processes.
//!
//! A child is this executable started again (Python's "spawn"; no `fork` of a multi-threaded
//! parent). It learns which function to run as an *offset*: the distance from a fixed function,
//! [`anchor`], to the function's trampoline. Code is laid out the same in every process running
//! the same executable (position-independent code moves as one block), so the offset names the
//! same function in the child; the child checks that it runs the same executable (device and
//! inode) before using it. Only zero-sized functions can be started: fn items and closures that
//! capture nothing. A closure capturing local state fails to compile (see `trampoline`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::pipe::Connection;
use crate::sys;

/// The environment variable that tells a process it is a child, and what to run.
pub(crate) const CHILD_ENV: &str = "SHMKIT_CHILD";

static INIT_CALLED: AtomicBool = AtomicBool::new(false);
static KEY: AtomicU64 = AtomicU64::new(0);

/// In a child, the key its parent put in its [`Spec`]; 0 elsewhere.
pub(crate) fn key() -> u64 {
    KEY.load(Ordering::Relaxed)
}

/// What a child sends its parent, in order: `Hello` once it runs `init`, then one outcome.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub(crate) enum Message {
    Hello,
    /// The function returned: its serialised result, and whether it is an `Err`.
    Returned {
        bytes: Vec<u8>,
        failed: bool,
    },
    /// The argument or result could not be (de)serialised.
    Failed(String),
    /// The function panicked, with this message.
    Panicked(String),
}

/// What the parent tells the child, in `SHMKIT_CHILD`.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Spec {
    pub(crate) entry: i64,
    pub(crate) exe: (u64, u64),
    pub(crate) conn: String,
    pub(crate) daemon: bool,
    /// A secret the parent may use to sign what it later sends through shared memory (a pool
    /// signs the functions it names), so that a corrupted message is refused, not run.
    #[serde(default)]
    pub(crate) key: u64,
}

/// The function the entry offsets are measured from.
#[inline(never)]
pub(crate) fn anchor() -> usize {
    let f: fn() -> usize = anchor;
    f as usize
}

/// A started function's code, with its argument and result as bytes.
pub(crate) type Entry = fn(&[u8]) -> Result<(Vec<u8>, bool), String>;

/// Runs `F` on the argument decoded from `input`; returns the encoded result and whether it is
/// an `Err`.
pub(crate) fn trampoline<F, A, R>(input: &[u8]) -> Result<(Vec<u8>, bool), String>
where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    let arg: A = postcard::from_bytes(input)
        .map_err(|e| format!("the argument did not deserialise: {e}"))?;
    let f: F = conjure();
    let result = f(arg);
    let bytes =
        postcard::to_allocvec(&result).map_err(|e| format!("the result did not serialise: {e}"))?;
    // A `Result` serialises its variant first: 0 for Ok, 1 for Err (postcard varint).
    let failed = std::any::type_name::<R>().starts_with("core::result::Result<")
        && bytes.first() == Some(&1);
    Ok((bytes, failed))
}

/// The value of a zero-sized function type: how a trampoline gets its function in a process
/// that was sent only the function's type (as an offset). A closure capturing local state is
/// not zero-sized and fails to compile here.
pub(crate) fn conjure<F>() -> F {
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "only fn items and closures that capture nothing can run in another process"
        )
    };
    // SAFETY: `F` is zero-sized (checked at compile time above), so reading one reads no bytes
    // and a dangling, aligned pointer is valid for it; fn items and capture-less closures have
    // no invariant beyond their type.
    unsafe { std::ptr::NonNull::<F>::dangling().read() }
}

/// The offset of `F`'s trampoline from [`anchor`].
pub(crate) fn entry_offset<F, A, R>() -> i64
where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    let entry: Entry = trampoline::<F, A, R>;
    entry as usize as i64 - anchor() as i64
}

/// Whether this process is a child started by shmkit that has not gone through [`init`]: it
/// must not start children of its own (a binary without `init` would start itself forever).
pub(crate) fn uninitialised_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some() && !INIT_CALLED.load(Ordering::Relaxed)
}

/// Call this first in `main` (and first in each test that starts processes): in a child started
/// by [`Process`](crate::Process), it runs the function the child was started for and exits;
/// anywhere else it returns at once.
///
/// ```
/// shmkit::init(); // the first line of `main`; then the program, which may start processes
/// ```
pub fn init() {
    INIT_CALLED.store(true, Ordering::Relaxed);
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    // A grandchild is started with its own spec; this one is ours alone.
    // SAFETY: called at the start of `main`, before this process has other threads that could
    // read the environment concurrently.
    unsafe { std::env::remove_var(CHILD_ENV) };
    std::process::exit(run(&spec));
}

fn run(spec: &str) -> i32 {
    let fail = |msg: String| {
        eprintln!("shmkit child: {msg}");
        2
    };
    let spec: Spec = match serde_json::from_str(spec) {
        Ok(s) => s,
        Err(e) => return fail(format!("bad {CHILD_ENV}: {e}")),
    };
    if sys::exe_identity().ok() != Some(spec.exe) {
        return fail("started from a different executable than its parent".into());
    }
    KEY.store(spec.key, Ordering::Relaxed);
    if spec.daemon && sys::die_with_parent().is_err() {
        return fail("could not tie a daemon child to its parent".into());
    }
    let conn: Connection = match serde_json::from_str(&spec.conn) {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot open the pipe to the parent: {e}")),
    };
    if conn.send(&Message::Hello).is_err() {
        return fail("the parent is gone".into());
    }
    let Ok(arg) = conn.recv_bytes() else {
        return fail("no argument from the parent".into());
    };
    let addr = anchor() as i64 + spec.entry;
    // SAFETY: the parent computed `entry` as the offset of an `Entry` trampoline from `anchor`
    // in the same executable (checked above: same device and inode), so `anchor + entry` is that
    // trampoline's address in this process too.
    let entry: Entry = unsafe { std::mem::transmute::<usize, Entry>(addr as usize) };
    let outcome = std::panic::catch_unwind(|| entry(&arg));
    let (message, code) = match outcome {
        Ok(Ok((bytes, failed))) => (Message::Returned { bytes, failed }, i32::from(failed)),
        Ok(Err(msg)) => (Message::Failed(msg), 1),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with a non-string payload".into());
            (Message::Panicked(msg), 1)
        }
    };
    let _ = conn.send(&message);
    code
}
