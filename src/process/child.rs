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

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::entry::{self, ChildEntry, EntryName, Key};
use super::outcome::is_err;
use crate::pipe::Connection;
use crate::shm::by_name;
use crate::sys;

/// The environment variable that tells a process it is a child, and what to run.
pub(crate) const CHILD_ENV: &str = "SHMKIT_CHILD";

static INIT_CALLED: AtomicBool = AtomicBool::new(false);
static KEY: OnceLock<Key> = OnceLock::new();

/// In a child, the key its parent put in its [`Spec`]; zero elsewhere.
#[cfg(feature = "pool")]
pub(crate) fn key() -> Key {
    KEY.get().copied().unwrap_or_default()
}

/// What a child sends its parent, in order: `Hello` once it runs `init`, `Claimed` once it has
/// decoded its argument, then one outcome.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub(crate) enum Message {
    Hello,
    /// The argument was decoded: the handles in it are claimed (see `shm::by_name`).
    Claimed,
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
    pub(crate) entry: EntryName,
    pub(crate) exe: (u64, u64),
    pub(crate) conn: String,
    pub(crate) daemon: bool,
    /// A secret the parent may use to sign what it later sends through shared memory (a pool
    /// signs the functions it names), so that a corrupted message is refused, not run.
    pub(crate) key: Key,
    /// The pid of the process that started the child. The variable is never removed from the
    /// environment (see [`init`]), so a process that merely inherited it (a program the child
    /// runs) is told apart by its parent.
    pub(crate) parent: u32,
    /// The child's name, and its parent's (for `current_process` and `parent_process`).
    pub(crate) name: String,
    pub(crate) parent_name: String,
}

/// Runs `F` on the argument decoded from `input`; returns the encoded result and whether it is
/// an `Err`. Its offset ([`entry::name`]) is what a parent sends to name `F`.
pub(crate) fn trampoline<F, A, R>(
    input: &[u8],
    claimed: &mut dyn FnMut(),
) -> Result<(Vec<u8>, bool), String>
where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    let arg: A = postcard::from_bytes(input).map_err(|e| {
        let why = by_name::take_open_error().unwrap_or_else(|| e.to_string());
        format!("the argument did not deserialise: {why}")
    })?;
    claimed();
    let f: F = entry::conjure();
    let result = f(arg);
    // Handles in the result are handed over to the parent (see `shm::by_name`).
    let (bytes, _sent) = by_name::capture(|| {
        let bytes = postcard::to_allocvec(&result);
        if bytes.is_ok() {
            by_name::send_noted();
        }
        bytes
    });
    let bytes = bytes.map_err(|e| format!("the result did not serialise: {e}"))?;
    Ok((bytes, is_err(&result)))
}

/// The signed name of `F`'s trampoline.
pub(crate) fn entry_name<F, A, R>(key: &Key) -> EntryName
where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    entry::name(trampoline::<F, A, R> as ChildEntry, key)
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
/// It also installs [`cleanup_on_signals`](crate::cleanup_on_signals): SIGINT (Ctrl-C),
/// SIGTERM and SIGHUP unlink the segments this process owns before it ends, and then take
/// their usual course (or reach the handler the program installed before). And, once per
/// process, it looks in a background thread for segments that processes killed earlier left
/// behind and that no live process uses, and removes them
/// ([`shm::reclaim_abandoned`](crate::shm::reclaim_abandoned)).
///
/// ```
/// shmkit::init(); // the first line of `main`; then the program, which may start processes
/// ```
pub fn init() {
    INIT_CALLED.store(true, Ordering::Relaxed);
    if let Err(e) = crate::shm::cleanup_on_signals() {
        log::warn!("segments will not be unlinked on SIGINT/SIGTERM/SIGHUP: {e}");
    }
    // The variable is read, never removed: removing it (`std::env::remove_var`) is sound only
    // while no other thread reads the environment, which a safe function cannot know. A child's
    // own children get a spec of their own (`Command::env` replaces it), and a program the child
    // runs that inherits this one is told apart by its parent pid.
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        crate::shm::reclaim_in_background();
        #[cfg(feature = "redis")]
        crate::redis::run_from_env();
        return;
    };
    let spec: Spec = match serde_json::from_str(&spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shmkit child: bad {CHILD_ENV}: {e}");
            std::process::exit(2);
        }
    };
    if spec.parent != sys::parent_pid() {
        crate::shm::reclaim_in_background();
        return; // inherited by a process shmkit did not start: not a child
    }
    std::process::exit(run(spec));
}

fn run(spec: Spec) -> i32 {
    let fail = |msg: String| {
        eprintln!("shmkit child: {msg}");
        2
    };
    if sys::exe_identity().ok() != Some(spec.exe) {
        return fail("started from a different executable than its parent".into());
    }
    let _ = KEY.set(spec.key);
    super::current::set_identity(spec.name.clone(), spec.parent_name.clone(), spec.parent);
    if spec.daemon && sys::die_with_parent().is_err() {
        return fail("could not tie a daemon child to its parent".into());
    }
    // A parent that died before the line above did not trigger it: look once more.
    if spec.daemon && sys::parent_pid() != spec.parent {
        return fail("the parent is gone".into());
    }
    let conn: Connection<Message, Vec<u8>> = match serde_json::from_str(&spec.conn) {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot open the pipe to the parent: {e}")),
    };
    if conn.send(&Message::Hello).is_err() {
        return fail("the parent is gone".into());
    }
    let Ok(arg) = conn.recv_bytes() else {
        return fail("no argument from the parent".into());
    };
    let Some(run) = entry::resolve::<ChildEntry>(spec.entry, &spec.key) else {
        return fail("the function to run is not signed by the parent".into());
    };
    let mut claimed = || {
        let _ = conn.send(&Message::Claimed);
    };
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&arg, &mut claimed)));
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
