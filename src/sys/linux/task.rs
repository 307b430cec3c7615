//! Processes and threads: ids, start times, liveness, pid namespaces, randomness.
//!
//! A task (thread or process) is named for all time by its tid *and* its start time (clock ticks
//! since boot, field 22 of `/proc/<tid>/stat`): a tid is reused only after the kernel has cycled
//! through every other one, never within the same tick. The lock's owner word stores this pair,
//! so "is the owner alive?" is answered about the owner itself, not about whoever has its tid now.

use std::cell::Cell;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::Once;

/// Bits of a tid (the kernel's PID_MAX_LIMIT is 2^22).
pub(crate) const TID_BITS: u32 = 22;
/// Bits of a start time kept in an identity (2^41 ticks at 100 Hz is about 700 years).
pub(crate) const START_BITS: u32 = 41;
const START_MASK: u64 = (1 << START_BITS) - 1;
/// The start time recorded by a thread that cannot read its own: others must never judge it dead.
pub(crate) const START_UNVERIFIABLE: u64 = START_MASK;

/// Whether the machine has no more runnable tasks than processors: the 4th field of
/// `/proc/loadavg` (runnable/total) against the processors this process may use. `false` when
/// it cannot be told.
pub(crate) fn cores_to_spare() -> bool {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cpus = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let Ok(loadavg) = std::fs::read_to_string("/proc/loadavg") else {
        return false;
    };
    runnable_in_loadavg(&loadavg).is_some_and(|runnable| runnable <= cpus)
}

/// The runnable count in `/proc/loadavg` ("0.00 0.01 0.05 2/181 1234").
fn runnable_in_loadavg(text: &str) -> Option<usize> {
    text.split_whitespace()
        .nth(3)?
        .split_once('/')?
        .0
        .parse()
        .ok()
}

/// This process's id.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// Parses `/proc/<id>/stat`: (pid field, state char, start time). The command name (field 2)
/// is in parentheses and may itself contain spaces or ')', so parse around the last ')'.
fn parse_stat(stat: &str) -> Option<(u32, char, u64)> {
    let pid = stat.split_once(' ')?.0.parse().ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace(); // field 3 (state) onwards
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?; // field 22
    Some((pid, state, start))
}

/// The start time of process `pid` in clock ticks since boot.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, _, start)| start)
}

/// Whether process `pid` is alive and, if `start_time` is known, is the process that started then.
pub(crate) fn process_alive(pid: u32, start_time: Option<u64>) -> bool {
    match task_liveness(pid) {
        Liveness::Gone => false,
        Liveness::Unknown => true,
        Liveness::Alive { start } => start_time.is_none_or(|s| s == start),
    }
}

/// What `/proc` says about a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Running (or stopped, sleeping...), with this start time.
    Alive { start: u64 },
    /// Exited: no such task, or a zombie.
    Gone,
    /// `/proc` could not be read (not mounted, out of descriptors...): assume alive.
    Unknown,
}

/// Looks task `tid` up in `/proc`.
pub(crate) fn task_liveness(tid: u32) -> Liveness {
    if tid == 0 || tid >= 1 << TID_BITS {
        return Liveness::Gone;
    }
    match std::fs::read_to_string(format!("/proc/{tid}/stat")) {
        // `/proc` also says "not found" for another user's task when mounted with hidepid, so
        // a task is gone only if the kernel agrees: kill(tid, 0) fails with ESRCH for a tid no
        // task has (it accepts the tid of any thread, and says EPERM, not ESRCH, for others').
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            // SAFETY: signal 0 sends nothing; it only checks that the task exists.
            let r = unsafe { libc::kill(tid as libc::pid_t, 0) };
            if r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
                Liveness::Gone
            } else {
                Liveness::Unknown
            }
        }
        Err(_) => Liveness::Unknown,
        Ok(stat) => match parse_stat(&stat) {
            Some((_, 'Z' | 'X' | 'x', _)) => Liveness::Gone,
            Some((_, _, start)) => Liveness::Alive { start },
            None => Liveness::Unknown,
        },
    }
}

thread_local! {
    /// This thread's identity, computed on first use; 0 means not yet.
    static IDENTITY: Cell<u64> = const { Cell::new(0) };
}

extern "C" fn forget_identity_in_child() {
    // The forking thread's cached identity is the parent's; the child's thread is a new task.
    IDENTITY.with(|c| c.set(0));
}

/// This thread's identity: `tid | start << TID_BITS`, never 0 and never using bit 63. If the
/// start time cannot be verified (no `/proc`, or a `/proc` of another pid namespace), the start
/// field is [`START_UNVERIFIABLE`], which others treat as always alive.
#[inline]
pub(crate) fn thread_identity() -> u64 {
    IDENTITY.with(|c| {
        let id = c.get();
        if id != 0 {
            return id;
        }
        let id = compute_identity();
        c.set(id);
        id
    })
}

#[cold]
fn compute_identity() -> u64 {
    static AT_FORK: Once = Once::new();
    AT_FORK.call_once(|| {
        // SAFETY: registers a handler that only writes this thread's thread-local cell. If it
        // fails (ENOMEM), a forked child could reuse its parent's identity; shmkit itself never
        // forks (children are spawned with exec), so the failure is tolerated.
        unsafe { libc::pthread_atfork(None, None, Some(forget_identity_in_child)) };
    });
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    let start = std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| parse_stat(&s))
        .filter(|&(pid, _, _)| pid == tid) // a /proc of our own pid namespace
        .map_or(START_UNVERIFIABLE, |(_, _, start)| {
            start.min(START_UNVERIFIABLE - 1)
        });
    u64::from(tid & ((1 << TID_BITS) - 1)) | start << TID_BITS
}

/// An identifier of this process's pid namespace (the inode of `/proc/self/ns/pid`), or 0.
pub(crate) fn pid_namespace() -> u64 {
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// This process's pid, start time and pid namespace, read from `/proc` once per process (a
/// forked child, whose pid differs, reads them again).
pub(crate) fn own_identity() -> (u32, u64, u64) {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    static PID: AtomicU32 = AtomicU32::new(0);
    static START: AtomicU64 = AtomicU64::new(0);
    static NS: AtomicU64 = AtomicU64::new(0);
    let pid = current_pid();
    if PID.load(Ordering::Acquire) == pid {
        return (
            pid,
            START.load(Ordering::Relaxed),
            NS.load(Ordering::Relaxed),
        );
    }
    let (start, ns) = (process_start_time(pid).unwrap_or(0), pid_namespace());
    START.store(start, Ordering::Relaxed);
    NS.store(ns, Ordering::Relaxed);
    PID.store(pid, Ordering::Release);
    (pid, start, ns)
}

/// 128 bits from the kernel's random source (through the `getrandom` crate), for unguessable
/// segment names and secret keys.
pub(crate) fn random_u128() -> io::Result<u128> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).map_err(io::Error::from)?;
    Ok(u128::from_ne_bytes(buf))
}

/// This machine's host name, as the kernel has it (empty if `/proc` cannot say).
#[cfg(feature = "redis")]
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "4242 (a) b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21";
        assert_eq!(parse_stat(line), Some((4242, 'S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_runnable_count_is_read_from_loadavg() {
        assert_eq!(runnable_in_loadavg("0.52 0.58 0.59 3/467 12345\n"), Some(3));
        assert_eq!(runnable_in_loadavg("0.52 0.58 0.59 x/467 1"), None);
        assert_eq!(runnable_in_loadavg(""), None);
    }

    #[test]
    fn own_process_and_thread_are_alive_with_their_start_time() {
        let pid = current_pid();
        let start = process_start_time(pid).expect("readable /proc");
        assert!(process_alive(pid, Some(start)));
        assert!(!process_alive(pid, Some(start + 1)));
        assert!(!process_alive(0, None));
        let id = thread_identity();
        let tid = (id & ((1 << TID_BITS) - 1)) as u32;
        assert!(matches!(task_liveness(tid), Liveness::Alive { start: s } if s == id >> TID_BITS));
        assert_eq!(id >> 63, 0);
    }

    #[test]
    fn threads_have_distinct_identities() {
        let here = thread_identity();
        let there = std::thread::spawn(thread_identity).join().unwrap();
        assert_ne!(here, there);
        assert_eq!(here, thread_identity());
    }

    #[test]
    fn a_finished_thread_is_gone() {
        let id = std::thread::spawn(thread_identity).join().unwrap();
        let tid = (id & ((1 << TID_BITS) - 1)) as u32;
        // `join` returns when the thread has signalled its end, which can be a moment before
        // the kernel removes the task: allow it that moment. The tid may also be reused by
        // another task by then; then the start time differs.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match task_liveness(tid) {
                Liveness::Gone => break,
                Liveness::Alive { start } if start != id >> TID_BITS => break,
                Liveness::Alive { .. } => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "still alive after 5 s"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Liveness::Unknown => panic!("/proc unreadable"),
            }
        }
    }

    #[test]
    fn random_numbers_differ() {
        assert_ne!(random_u128().unwrap(), random_u128().unwrap());
    }

    #[test]
    fn pid_namespace_is_known() {
        assert_ne!(pid_namespace(), 0);
    }
}
