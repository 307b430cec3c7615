//! The names this process owns, in a table a signal handler can walk: on SIGINT, SIGTERM or
//! SIGHUP the owned segments are unlinked before the process ends (see
//! [`cleanup_on_signals`]).
//!
//! The table is a fixed array of slots made of atomics, so the handler reads it without locks
//! or allocation. A slot moves through these states:
//!
//! ```text
//! FREE --register--> WRITING --(fields stored)--> OWNED --unregister--> FREE
//!                                                   |
//!                                         handler: TAKEN --(name removed)--> DONE --unregister--> FREE
//! ```
//!
//! Only the registering thread writes a slot's fields (in WRITING), and the handler reads them
//! only after it moved the slot from OWNED to TAKEN, so it never sees half a name. A segment
//! that is unregistered while the handler has its slot waits the few system calls until DONE,
//! so its mapping outlives the handler's read of the hand-over count.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use super::header::ORPHANED;
use super::name::SPILL;
use crate::sys;

const SLOTS: usize = 1024;
/// 256 bytes of name: an OS name is at most 255 bytes with its leading `/`.
const WORDS: usize = 32;

const FREE: u32 = 0;
const WRITING: u32 = 1;
const OWNED: u32 = 2;
const TAKEN: u32 = 3;
const DONE: u32 = 4;

struct Slot {
    state: AtomicU32,
    len: AtomicU32,
    /// Whether the segment is a queue, whose spilled items (`<name>.spill-*`) go with it.
    spills: AtomicU32,
    dev: AtomicU64,
    ino: AtomicU64,
    /// The segment's hand-over count, once it is published (null before).
    transit: AtomicPtr<AtomicU32>,
    name: [AtomicU64; WORDS],
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            state: AtomicU32::new(FREE),
            len: AtomicU32::new(0),
            spills: AtomicU32::new(0),
            dev: AtomicU64::new(0),
            ino: AtomicU64::new(0),
            transit: AtomicPtr::new(std::ptr::null_mut()),
            name: [const { AtomicU64::new(0) }; WORDS],
        }
    }
}

static TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];

/// Segments being created whose names are not in the table yet.
static CREATING: AtomicU32 = AtomicU32::new(0);
/// Set by the handler when the signal will end the process: from then on no thread creates a
/// segment (it would be left behind by the dying process).
static ENDING: AtomicBool = AtomicBool::new(false);

/// How long the handler lets creating threads run before it gives up waiting for them, in
/// microseconds. A creation holds the count for a few system calls, but a thread preempted in
/// between may wait for a core for some milliseconds on a busy machine: a budget of 10,000
/// `sched_yield`s (2 ms when each returns at once) ran out beside three busy processes, and
/// a spill created then was left in `/dev/shm` (2 of 30 runs of `tests/signals.rs`).
const CREATING_PATIENCE_US: u64 = 1_000_000;

thread_local! {
    /// Creations this thread has under way: a handler running on this very thread (one the
    /// program installed for a signal `Creating` does not block) cannot wait for them.
    static CREATING_HERE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// A segment being created: until it is dropped (once its name is registered), this thread
/// blocks the cleanup signals, and a handler on another thread waits for it.
#[derive(Debug)]
pub(crate) struct Creating(#[allow(dead_code)] sys::SignalsBlocked);

impl Creating {
    pub(crate) fn start() -> Creating {
        let blocked = sys::SignalsBlocked::new();
        // SeqCst with the handler's store to ENDING and load of CREATING: either this thread
        // sees ENDING, or the handler sees this creation and waits for its name.
        CREATING_HERE.with(|n| n.set(n.get() + 1));
        CREATING.fetch_add(1, Ordering::SeqCst);
        if ENDING.load(Ordering::SeqCst) {
            CREATING.fetch_sub(1, Ordering::SeqCst);
            CREATING_HERE.with(|n| n.set(n.get() - 1));
            // The process is ending by a signal, in another thread's handler, within moments.
            loop {
                std::thread::park();
            }
        }
        Creating(blocked)
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        // Before the mask is restored (the field drops after this), so a signal pending on
        // this thread finds the name registered.
        CREATING.fetch_sub(1, Ordering::SeqCst);
        CREATING_HERE.with(|n| n.set(n.get() - 1));
    }
}

/// A name in the table, for as long as this process owns the segment. Dropping it takes the
/// name out of the table (it does not unlink anything).
#[derive(Debug)]
pub(crate) struct OwnedName(usize);

/// Puts an owned segment's name in the table. `None` if the name is too long or the table is
/// full (that segment is then not cleaned up by a signal; everything else still works).
pub(crate) fn register(os_name: &str, file: &File, spills: bool) -> Option<OwnedName> {
    let bytes = os_name.as_bytes();
    if bytes.len() > WORDS * 8 {
        return None;
    }
    let (dev, ino) = sys::file_identity(file).ok()?;
    let i = TABLE.iter().position(|s| {
        s.state
            .compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    });
    let Some(i) = i else {
        log::debug!("{SLOTS} owned segments: {os_name} is not cleaned up on a signal");
        return None;
    };
    let slot = &TABLE[i];
    for (word, chunk) in slot
        .name
        .iter()
        .zip(bytes.chunks(8).chain(std::iter::repeat(&[][..])))
    {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        word.store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
    slot.len.store(bytes.len() as u32, Ordering::Relaxed);
    slot.spills.store(u32::from(spills), Ordering::Relaxed);
    slot.dev.store(dev, Ordering::Relaxed);
    slot.ino.store(ino, Ordering::Relaxed);
    slot.transit.store(std::ptr::null_mut(), Ordering::Relaxed);
    // Release: the handler that takes the slot (Acquire) sees every field above.
    slot.state.store(OWNED, Ordering::Release);
    Some(OwnedName(i))
}

impl OwnedName {
    /// Records where the published segment's hand-over count is, so that the handler leaves a
    /// segment with hand-overs in flight to its receivers (as dropping the owner does).
    ///
    /// # Safety
    /// `transit` must stay valid (its segment mapped) until this `OwnedName` is dropped.
    pub(crate) unsafe fn set_transit(&self, transit: &AtomicU32) {
        let p = std::ptr::from_ref(transit).cast_mut();
        TABLE[self.0].transit.store(p, Ordering::Release);
    }
}

impl Drop for OwnedName {
    fn drop(&mut self) {
        let state = &TABLE[self.0].state;
        loop {
            match state.compare_exchange(OWNED, FREE, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                // The handler, in another thread, is removing this name: a few system calls.
                Err(TAKEN) => std::thread::yield_now(),
                Err(_) => {
                    // DONE: the handler has removed it, and the program went on.
                    state.store(FREE, Ordering::Release);
                    return;
                }
            }
        }
    }
}

/// Unlinks every segment this process owns, as its owner's drop would: a segment with
/// hand-overs in flight is left to its receivers (marked orphaned, so the last one adopts
/// it). Async-signal-safe: call it from a signal handler of your own.
///
/// [`cleanup_on_signals`] installs a handler that calls it. Each segment is removed once:
/// after this call the program's handles keep working (their memory stays mapped), but their
/// names are gone from `/dev/shm`, so new `open`s by name fail.
pub fn unlink_owned() {
    unlink_table();
    // Another thread may be between creating a name and registering it (it blocks the
    // cleanup signals meanwhile, so it is not the thread running this one's handler): let it
    // finish, and look again. A creation under way on this thread itself (a handler of the
    // program's own, for another signal) cannot finish while this runs: not waited for.
    // The thread-local is safe to read in a handler: it is const-initialised and has no
    // destructor, so reading it neither allocates nor registers anything.
    if CREATING_HERE.with(std::cell::Cell::get) == 0 {
        let start = sys::monotonic_micros();
        while CREATING.load(Ordering::SeqCst) > 0
            && sys::monotonic_micros().saturating_sub(start) < CREATING_PATIENCE_US
        {
            sys::yield_now();
        }
    }
    unlink_table();
}

fn unlink_table() {
    for slot in &TABLE {
        if slot
            .state
            .compare_exchange(OWNED, TAKEN, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        let transit = slot.transit.load(Ordering::Acquire);
        // SAFETY: a non-null pointer was set from the live segment's header, and the segment
        // cannot be unmapped while its slot is TAKEN (its `OwnedName` waits in drop).
        let in_flight = !transit.is_null() && unsafe { orphan_if_in_flight(&*transit) };
        if !in_flight {
            let mut name = [0u8; WORDS * 8];
            for (chunk, word) in name.chunks_mut(8).zip(&slot.name) {
                chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
            }
            let len = (slot.len.load(Ordering::Relaxed) as usize).min(name.len());
            sys::unlink_if_same(
                &name[..len],
                slot.dev.load(Ordering::Relaxed),
                slot.ino.load(Ordering::Relaxed),
            );
            if slot.spills.load(Ordering::Relaxed) != 0 && len > 1 {
                // `shmkit-<queue>.spill-`: the name without its `/`, then the marker.
                let mut prefix = [0u8; WORDS * 8 + SPILL.len()];
                prefix[..len - 1].copy_from_slice(&name[1..len]);
                prefix[len - 1..len - 1 + SPILL.len()].copy_from_slice(SPILL.as_bytes());
                sys::unlink_prefixed(&prefix[..len - 1 + SPILL.len()]);
            }
        }
        slot.state.store(DONE, Ordering::Release);
    }
}

/// Marks the segment orphaned if hand-overs of it are in flight; whether they were.
fn orphan_if_in_flight(word: &AtomicU32) -> bool {
    let mut cur = word.load(Ordering::Acquire);
    while cur & !ORPHANED != 0 {
        // SYNC: hand-over (as in the owner's drop).
        match word.compare_exchange_weak(cur, cur | ORPHANED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => cur = now,
        }
    }
    false
}

struct Hook;

impl sys::CleanupHook for Hook {
    fn run(ending: bool) {
        if ending {
            ENDING.store(true, Ordering::SeqCst);
        }
        unlink_owned();
    }
}

/// Installs handlers so that SIGINT (Ctrl-C), SIGTERM and SIGHUP unlink this process's
/// segments before it ends. [`init`](crate::init) calls it; a program built without the
/// `process` feature calls it itself, early in `main`.
///
/// The handler calls [`unlink_owned`], then hands the signal on: to the handler the program
/// had installed before (so install yours first, or call `unlink_owned` from yours), or else
/// to the default action, so the process still ends by that signal (exit status 130 for
/// Ctrl-C in a shell). A signal the program ignores stays ignored. A handler installed later
/// (for example by the `ctrlc` crate) replaces this one: call [`unlink_owned`] from it, or end
/// the program normally, which drops the handles and unlinks their names.
///
/// SIGKILL cannot be caught: see [`remove_stale`](super::remove_stale) and `shmkit clean`.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) if `sigaction` fails.
pub fn cleanup_on_signals() -> crate::Result<()> {
    sys::install_cleanup::<Hook>().map_err(|e| crate::Error::io("sigaction", e))
}
