//! Signal handlers that clean up before the process ends: SIGINT, SIGTERM and SIGHUP.
//!
//! [`install_cleanup`] installs one handler for the three signals. It runs the hook (which must
//! be async-signal-safe: atomics and the system calls below, no allocation, no locks), then
//! hands the signal on: to the handler the program had installed before, or, if there was
//! none, to the default action (the process ends by that signal, so its exit status says so).
//! A signal the program ignores (`SIG_IGN`, as `nohup` sets SIGHUP) stays ignored.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

/// The signals that end a process on a user's or supervisor's request.
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Work run by the handler before the signal is handed on. Must be async-signal-safe.
pub(crate) trait CleanupHook {
    /// `ending`: the signal goes on to its default action, so the process is about to end.
    fn run(ending: bool);
}

/// The disposition each signal had before ours, to hand the signal on to.
static PREVIOUS: [Previous; 3] = [const { Previous::new() }; 3];
static INSTALLED: AtomicBool = AtomicBool::new(false);

struct Previous {
    handler: AtomicUsize,
    flags: AtomicI32,
}

impl Previous {
    const fn new() -> Previous {
        Previous {
            handler: AtomicUsize::new(libc::SIG_DFL),
            flags: AtomicI32::new(0),
        }
    }
}

/// Installs the cleanup handler for SIGINT, SIGTERM and SIGHUP once per process (later calls
/// do nothing). A signal whose disposition is `SIG_IGN` is left alone.
pub(crate) fn install_cleanup<H: CleanupHook>() -> io::Result<()> {
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags, SIG_DFL).
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only queries the current one into `old`, a valid place.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } == -1 {
            return Err(io::Error::last_os_error());
        }
        if old.sa_sigaction == libc::SIG_IGN {
            continue;
        }
        PREVIOUS[i]
            .handler
            .store(old.sa_sigaction, Ordering::Relaxed);
        PREVIOUS[i].flags.store(old.sa_flags, Ordering::Relaxed);
        // SAFETY: as above, all-zero is a valid sigaction; the fields are set next.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = on_signal::<H> as *const () as usize;
        // SA_RESTART: system calls the signal interrupts in other threads resume, as they
        // would have without us; SA_SIGINFO: the handler takes three arguments, handed on.
        new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | (old.sa_flags & libc::SA_ONSTACK);
        // SAFETY: `new.sa_mask` is a valid sigset_t to fill.
        unsafe { libc::sigemptyset(&mut new.sa_mask) };
        // The same signal stays blocked while the handler runs (no SA_NODEFER), so a second
        // Ctrl-C waits for the first cleanup instead of interrupting it.
        // SAFETY: `new` is a fully initialised sigaction whose handler has the signature
        // SA_SIGINFO requires; the previous action is not needed again (it was read above,
        // and the only other writer of these dispositions in this crate is this function).
        if unsafe { libc::sigaction(sig, &new, std::ptr::null_mut()) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

extern "C" fn on_signal<H: CleanupHook>(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // errno belongs to the interrupted code; the hook's system calls must not change it.
    // SAFETY: __errno_location returns this thread's errno, valid for the thread's life.
    let errno = unsafe { *libc::__errno_location() };
    let Some(i) = SIGNALS.iter().position(|&s| s == sig) else {
        return;
    };
    let handler = PREVIOUS[i].handler.load(Ordering::Relaxed);
    let flags = PREVIOUS[i].flags.load(Ordering::Relaxed);
    H::run(handler == libc::SIG_DFL);
    if handler == libc::SIG_DFL {
        // End the process as the signal would have: restore the default action and send the
        // signal again. It is blocked until this handler returns, then delivered.
        // SAFETY: all-zero is a valid sigaction (SIG_DFL); sigaction and raise are
        // async-signal-safe.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
            libc::raise(sig);
        }
    } else if handler != libc::SIG_IGN {
        if flags & libc::SA_SIGINFO != 0 {
            // SAFETY: the program installed this value as a three-argument handler (it set
            // SA_SIGINFO), and it receives the arguments the kernel gave us.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(handler) };
            f(sig, info, ctx);
        } else {
            // SAFETY: without SA_SIGINFO the program's handler takes the signal number only.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
            f(sig);
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Removes `/dev/shm/<name>` if it is still the object with this device and inode.
/// Async-signal-safe: `name` is a NUL-free byte string of at most 255 bytes (with its leading
/// `/`), copied into a stack buffer; open, fstat, close and unlink are async-signal-safe.
pub(crate) fn unlink_if_same(name: &[u8], dev: u64, ino: u64) {
    const DIR: &[u8] = super::shm::SHM_DIR.as_bytes();
    let mut path = [0u8; DIR.len() + 256 + 1];
    if name.len() > 256 || name.contains(&0) {
        return;
    }
    path[..DIR.len()].copy_from_slice(DIR);
    path[DIR.len()..DIR.len() + name.len()].copy_from_slice(name);
    let path = path.as_ptr().cast::<libc::c_char>();
    // SAFETY: `path` is NUL-terminated (the buffer is zeroed past the name) and lives on the
    // stack through the calls; `st` is a valid place for fstat to write.
    unsafe {
        let fd = libc::open(path, libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW);
        if fd == -1 {
            return;
        }
        let mut st: libc::stat = std::mem::zeroed();
        let same = libc::fstat(fd, &mut st) == 0 && st.st_dev == dev && st.st_ino == ino;
        libc::close(fd);
        if same {
            libc::unlink(path);
        }
    }
}

/// While alive, the cleanup signals are blocked on this thread (a process-directed one goes
/// to another thread, or waits); dropping it restores the thread's mask.
pub(crate) struct SignalsBlocked(libc::sigset_t);

impl SignalsBlocked {
    pub(crate) fn new() -> SignalsBlocked {
        // SAFETY: all-zero is a valid sigset_t to fill; `set` and `old` are valid places for
        // sigemptyset, sigaddset and pthread_sigmask, which fail only on bad arguments.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in SIGNALS {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            SignalsBlocked(old)
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new`, a valid sigset_t.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

impl std::fmt::Debug for SignalsBlocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalsBlocked")
    }
}

/// Lets another thread run (async-signal-safe).
pub(crate) fn yield_now() {
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
}

/// Removes every entry of `/dev/shm` whose name starts with `prefix` (no leading `/`).
/// Async-signal-safe: the directory is read with the `getdents64` system call into a stack
/// buffer (no `opendir`, which allocates), and entries are removed with `unlinkat`.
pub(crate) fn unlink_prefixed(prefix: &[u8]) {
    #[repr(C, align(8))]
    struct Buf([u8; 4096]);
    if prefix.is_empty() {
        return;
    }
    // SAFETY: the path literal is NUL-terminated.
    let dir = unsafe {
        libc::open(
            c"/dev/shm".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir == -1 {
        return;
    }
    let mut buf = Buf([0; 4096]);
    // Removing entries while reading may make the kernel skip some: read again until a whole
    // pass removes nothing (a few passes at most).
    for _ in 0..8 {
        // SAFETY: `dir` is our open directory descriptor; rewinding it has no other effect.
        unsafe { libc::lseek(dir, 0, libc::SEEK_SET) };
        let mut removed = false;
        loop {
            // SAFETY: `buf` is a writable buffer of the given length, aligned for the records.
            let n = unsafe {
                libc::syscall(libc::SYS_getdents64, dir, buf.0.as_mut_ptr(), buf.0.len())
            };
            if n <= 0 {
                break;
            }
            let mut at = 0usize;
            while at + 19 < n as usize {
                // linux_dirent64: u64 inode, i64 offset, u16 record length, u8 type, name.
                let reclen = u16::from_ne_bytes([buf.0[at + 16], buf.0[at + 17]]) as usize;
                if reclen < 20 || at + reclen > n as usize {
                    break;
                }
                let name = &buf.0[at + 19..at + reclen];
                let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                if name[..len].starts_with(prefix) && len < name.len() {
                    // SAFETY: `name` is NUL-terminated at `len` (checked), inside `buf`.
                    if unsafe { libc::unlinkat(dir, name.as_ptr().cast(), 0) } == 0 {
                        removed = true;
                    }
                }
                at += reclen;
            }
        }
        if !removed {
            break;
        }
    }
    // SAFETY: closes the descriptor opened above, used by nothing else.
    unsafe { libc::close(dir) };
}
