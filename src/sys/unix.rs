//! Linux/glibc implementation of the `sys` layer: POSIX shared memory, robust process-shared
//! pthread mutexes, clocks, randomness and process liveness.

use std::cell::UnsafeCell;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::FromRawFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// Where POSIX shared memory objects are visible as files on Linux.
pub(crate) const SHM_DIR: &str = "/dev/shm";

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

/// Creates a new shared memory object `name` (which starts with `/`), failing if it exists.
/// Mode 0600: only the owning user can open it.
pub(crate) fn shm_create_exclusive(name: &str) -> io::Result<File> {
    let c = c_name(name)?;
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let fd = cvt(unsafe { libc::shm_open(c.as_ptr(), flags, 0o600) })?;
    // SAFETY: shm_open just returned this descriptor; nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Opens an existing shared memory object read-write (or read-only).
pub(crate) fn shm_open_existing(name: &str, writable: bool) -> io::Result<File> {
    let c = c_name(name)?;
    let access = if writable {
        libc::O_RDWR
    } else {
        libc::O_RDONLY
    };
    let flags = access | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let fd = cvt(unsafe { libc::shm_open(c.as_ptr(), flags, 0) })?;
    // SAFETY: shm_open just returned this descriptor; nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Removes the name of a shared memory object; mappings that exist stay valid.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    cvt(unsafe { libc::shm_unlink(c.as_ptr()) }).map(drop)
}

/// Whether two open files are the same object (same device and inode).
pub(crate) fn same_file(a: &File, b: &File) -> io::Result<bool> {
    let (ma, mb) = (a.metadata()?, b.metadata()?);
    Ok(ma.dev() == mb.dev() && ma.ino() == mb.ino())
}

/// Names (without the leading `/`) of the shared memory objects whose names start with `prefix`.
pub(crate) fn shm_list(prefix: &str) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        let Ok(entry) = entry else { continue };
        if let Some(name) = entry.file_name().to_str() {
            if name.starts_with(prefix) {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The size of a virtual-memory page.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

/// 128 bits from the kernel's random source, for unguessable segment names.
pub(crate) fn random_u128() -> io::Result<u128> {
    let mut buf = [0u8; 16];
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe the writable tail of `buf`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(u128::from_ne_bytes(buf))
}

/// This process's id.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// The start time of process `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`).
/// Together with the pid it names a process uniquely, even after the pid is reused.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    // `after` starts at field 3 (state); the start time is field 22, i.e. the 20th from here.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` is alive and, if `start_time` is known, is the same process that
/// started then (not a later process that reused the pid).
pub(crate) fn process_alive(pid: u32, start_time: Option<u64>) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    if r == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    match (start_time, process_start_time(pid)) {
        (Some(expected), Some(actual)) => expected == actual,
        _ => true,
    }
}

/// A process-shared, robust, error-checking pthread mutex, stored in place in shared memory.
///
/// Robust means: when the thread holding it dies, the kernel (through glibc's robust list)
/// marks it, and the next locker gets [`MutexLock::OwnerDied`] instead of blocking forever.
#[repr(transparent)]
pub(crate) struct RobustMutex(UnsafeCell<libc::pthread_mutex_t>);

const _: () = assert!(std::mem::size_of::<RobustMutex>() == 40);
const _: () = assert!(std::mem::align_of::<RobustMutex>() == 8);

/// The outcome of a successful lock attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MutexLock {
    /// Locked normally.
    Acquired,
    /// Locked, but the previous holder died while holding it; the mutex has been made
    /// consistent again at the pthread level.
    OwnerDied,
}

/// Why a lock attempt failed.
#[derive(Debug)]
pub(crate) enum MutexError {
    /// `try_lock`: held by someone else; timed lock: the deadline passed.
    Busy,
    /// This thread already holds it (error-checking mutex).
    Deadlock,
    /// The mutex is unusable: not recoverable, or its bytes are not a mutex of ours.
    Broken(io::Error),
}

/// The reference bytes of the `__kind` word that `RobustMutex::init` produces, used to check a
/// mutex found in a segment before calling into glibc with it (a garbage kind could select the
/// priority-inheritance paths, which assert and abort on unexpected kernel answers).
const KIND_OFFSET: usize = 16;

impl RobustMutex {
    /// Initialises a robust, process-shared, error-checking mutex at `this`.
    ///
    /// # Safety
    /// `this` must be valid for writes of `size_of::<RobustMutex>()` bytes, aligned, and no other
    /// thread or process may use the mutex until initialisation has been published.
    pub(crate) unsafe fn init(this: *mut RobustMutex) -> io::Result<()> {
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: pthread_mutexattr_init initialises the attribute object it is given.
        errno(unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) })?;
        let attr = attr.as_mut_ptr();
        // SAFETY: `attr` was initialised above and is destroyed below on every path.
        let r = unsafe {
            errno(libc::pthread_mutexattr_setpshared(
                attr,
                libc::PTHREAD_PROCESS_SHARED,
            ))
            .and_then(|_| {
                errno(libc::pthread_mutexattr_setrobust(
                    attr,
                    libc::PTHREAD_MUTEX_ROBUST,
                ))
            })
            .and_then(|_| {
                errno(libc::pthread_mutexattr_settype(
                    attr,
                    libc::PTHREAD_MUTEX_ERRORCHECK,
                ))
            })
            // The caller guarantees `this` is valid for writes and not yet shared.
            .and_then(|_| {
                errno(libc::pthread_mutex_init(
                    UnsafeCell::raw_get(&raw const (*this).0),
                    attr,
                ))
            })
        };
        // SAFETY: `attr` is initialised and no longer needed.
        unsafe { libc::pthread_mutexattr_destroy(attr) };
        r
    }

    #[inline]
    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.0.get()
    }

    /// Whether this mutex's type word is the one `init` writes. Checked once when a segment is
    /// opened; a segment whose lock fails it is reported as corrupt.
    pub(crate) fn looks_valid(&self) -> bool {
        let mut reference = MaybeUninit::<RobustMutex>::uninit();
        // SAFETY: `reference` is a private, writable, aligned local.
        if unsafe { RobustMutex::init(reference.as_mut_ptr()) }.is_err() {
            return false;
        }
        // SAFETY: both pointers are valid for `KIND_OFFSET + 4` bytes (the mutex is 40 bytes);
        // the shared one is read with a volatile load because another process may write it.
        unsafe {
            let want = std::ptr::read_unaligned(
                reference
                    .as_ptr()
                    .cast::<u8>()
                    .add(KIND_OFFSET)
                    .cast::<i32>(),
            );
            let have =
                std::ptr::read_volatile(self.raw().cast::<u8>().add(KIND_OFFSET).cast::<i32>());
            want == have
        }
    }

    #[inline]
    fn outcome(r: libc::c_int) -> Result<MutexLock, MutexError> {
        match r {
            0 => Ok(MutexLock::Acquired),
            libc::EOWNERDEAD => Ok(MutexLock::OwnerDied),
            libc::EBUSY | libc::ETIMEDOUT => Err(MutexError::Busy),
            libc::EDEADLK => Err(MutexError::Deadlock),
            e => Err(MutexError::Broken(io::Error::from_raw_os_error(e))),
        }
    }

    /// Blocks until the mutex is acquired.
    #[inline]
    pub(crate) fn lock(&self) -> Result<MutexLock, MutexError> {
        // SAFETY: the mutex was initialised by its creator before the segment was published
        // and its type word was checked on open; glibc synchronises all access to it.
        Self::outcome(unsafe { libc::pthread_mutex_lock(self.raw()) })
    }

    /// Acquires the mutex if it is free.
    #[inline]
    pub(crate) fn try_lock(&self) -> Result<MutexLock, MutexError> {
        // SAFETY: as in `lock`.
        Self::outcome(unsafe { libc::pthread_mutex_trylock(self.raw()) })
    }

    /// Blocks until the mutex is acquired or `timeout` has passed (measured on the monotonic clock).
    pub(crate) fn lock_timeout(&self, timeout: Duration) -> Result<MutexLock, MutexError> {
        let deadline = monotonic_deadline(timeout);
        // SAFETY: as in `lock`; `deadline` is a valid, normalised timespec on the stack.
        Self::outcome(unsafe {
            pthread_mutex_clocklock(self.raw(), libc::CLOCK_MONOTONIC, &deadline)
        })
    }

    /// After [`MutexLock::OwnerDied`], marks the mutex consistent so it stays usable.
    pub(crate) fn make_consistent(&self) -> io::Result<()> {
        // SAFETY: called by the thread that holds the mutex after EOWNERDEAD.
        errno(unsafe { libc::pthread_mutex_consistent(self.raw()) })
    }

    /// Releases the mutex.
    ///
    /// # Safety
    /// The calling thread must hold the mutex.
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: the caller holds the mutex. An error-checking mutex returns EPERM rather than
        // misbehaving if that is not so; there is nothing useful to do with it in a drop path.
        unsafe { libc::pthread_mutex_unlock(self.raw()) };
    }
}

fn errno(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

unsafe extern "C" {
    // glibc >= 2.30. Takes an absolute deadline on the given clock, so a wall-clock step
    // neither shortens nor stretches a timeout (pthread_mutex_timedlock is on CLOCK_REALTIME).
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// The monotonic clock now, as a timespec.
fn monotonic_now() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts
}

/// An absolute monotonic deadline `timeout` from now, normalised (0 <= tv_nsec < 1e9) and
/// saturated to about a century so that huge timeouts do not overflow.
pub(crate) fn monotonic_deadline(timeout: Duration) -> libc::timespec {
    const MAX_SECS: u64 = 100 * 365 * 24 * 3600;
    let now = monotonic_now();
    let secs = timeout.as_secs().min(MAX_SECS) as libc::time_t;
    let mut sec = now.tv_sec.saturating_add(secs);
    let mut nsec = now.tv_nsec + timeout.subsec_nanos() as libc::c_long;
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// Reads the descriptor's current size.
pub(crate) fn file_size(file: &File) -> io::Result<u64> {
    Ok(file.metadata()?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_normalised() {
        for ns in [0, 1, 999_999_999] {
            let d = monotonic_deadline(Duration::new(1, ns));
            assert!((0..1_000_000_000).contains(&d.tv_nsec));
        }
        let far = monotonic_deadline(Duration::MAX);
        assert!(far.tv_sec > 0 && (0..1_000_000_000).contains(&far.tv_nsec));
    }

    #[test]
    fn own_process_is_alive_with_its_start_time() {
        let pid = current_pid();
        let start = process_start_time(pid);
        assert!(start.is_some());
        assert!(process_alive(pid, start));
        assert!(!process_alive(pid, start.map(|s| s + 1)));
        assert!(!process_alive(0, None));
    }

    #[test]
    fn random_names_differ() {
        assert_ne!(random_u128().unwrap(), random_u128().unwrap());
    }
}
