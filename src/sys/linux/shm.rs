//! POSIX shared memory objects: create, open, unlink, list; sizes and pages.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::fs::MetadataExt;

/// Where POSIX shared memory objects are visible as files on Linux.
pub(crate) const SHM_DIR: &str = "/dev/shm";

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn owned(fd: libc::c_int) -> io::Result<File> {
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: shm_open just returned this descriptor and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Creates a new shared memory object `name` (which starts with `/`), failing if it exists.
/// Mode 0600: only the owning user can open it.
pub(crate) fn shm_create_exclusive(name: &str) -> io::Result<File> {
    let c = c_name(name)?;
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    owned(unsafe { libc::shm_open(c.as_ptr(), flags, 0o600) })
}

/// Opens an existing shared memory object read-write (or read-only).
pub(crate) fn shm_open_existing(name: &str, writable: bool) -> io::Result<File> {
    let c = c_name(name)?;
    let access = if writable {
        libc::O_RDWR
    } else {
        libc::O_RDONLY
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    owned(unsafe { libc::shm_open(c.as_ptr(), access | libc::O_CLOEXEC | libc::O_NOFOLLOW, 0) })
}

/// Removes the name of a shared memory object; mappings that exist stay valid.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::shm_unlink(c.as_ptr()) } == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Gives a new shared memory object its size with every page reserved (`fallocate`), so that a
/// full `/dev/shm` is an error here rather than a SIGBUS at some later write into a page that
/// was never backed. A file system without `fallocate` gets a plain (sparse) `ftruncate`.
///
/// The whole size is asked for first, in one call: tmpfs refuses a size larger than its free
/// space before it reserves anything. `fallocate(2)` may fail with `EINTR`, which `SA_RESTART`
/// does not restart, and tmpfs then returns what that call had reserved: older kernels' tmpfs
/// gives up on any pending signal (a `SIGCHLD`, a profiler's tick). (The development machine's
/// kernel, 6.18, did not: 256 MiB reservations under a signal every 250 µs all succeeded at
/// once, so no test here can show the retry.) After an interruption the rest is reserved in
/// pieces of [`RESERVE_PIECE`], an interrupted piece is asked for again, and what earlier
/// pieces reserved stays: a steady stream of signals still lets each piece through.
pub(crate) fn shm_reserve(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let Ok(end) = libc::off_t::try_from(len) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    let mut at: libc::off_t = 0;
    let mut whole = true;
    while at < end {
        let piece = if whole {
            end
        } else {
            (end - at).min(RESERVE_PIECE)
        };
        // SAFETY: `file` is an open descriptor for the duration of the call; fallocate only
        // reads its integer arguments.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, at, piece) } == 0 {
            at += piece;
            continue;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => whole = false,
            Some(libc::EOPNOTSUPP | libc::ENOSYS) => return file.set_len(len),
            _ => return Err(e),
        }
    }
    Ok(())
}

/// The most [`shm_reserve`] asks of one `fallocate`: 64 MiB, some milliseconds of page
/// allocation.
const RESERVE_PIECE: libc::off_t = 64 << 20;

/// Whether two open files are the same object (same device and inode).
pub(crate) fn same_file(a: &File, b: &File) -> io::Result<bool> {
    Ok(file_identity(a)? == file_identity(b)?)
}

/// The device and inode of an open file.
pub(crate) fn file_identity(file: &File) -> io::Result<(u64, u64)> {
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
}

/// Names (without the leading `/`) of the shared memory objects whose names start with `prefix`.
pub(crate) fn shm_list(prefix: &str) -> io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(SHM_DIR)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    Ok(names)
}

/// A descriptor's current size.
pub(crate) fn file_size(file: &File) -> io::Result<u64> {
    Ok(file.metadata()?.len())
}

/// The owner (uid) and permission bits of an open file.
pub(crate) fn file_owner(file: &File) -> io::Result<(u32, u32)> {
    let m = file.metadata()?;
    Ok((m.uid(), m.mode() & 0o7777))
}

/// This process's effective user id.
pub(crate) fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The size of a virtual-memory page.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

/// The names (in `/dev/shm`, starting with `prefix`) that some live process has mapped, read
/// from every `/proc/<pid>/maps` this user may read. A process of another user cannot open
/// this user's 0600 segments, so the ones it cannot read do not matter.
pub(crate) fn shm_mapped(prefix: &str) -> std::collections::HashSet<String> {
    let mut mapped = std::collections::HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return mapped;
    };
    let marker = format!("{SHM_DIR}/{prefix}");
    for p in procs.flatten() {
        let name = p.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(maps) = std::fs::read_to_string(p.path().join("maps")) else {
            continue;
        };
        for line in maps.lines() {
            if let Some(at) = line.find(&marker) {
                let file = &line[at + SHM_DIR.len() + 1..];
                let file = file.strip_suffix(" (deleted)").unwrap_or(file);
                mapped.insert(file.to_owned());
            }
        }
    }
    mapped
}

/// How long ago the object's status last changed (its creation or sizing, for a segment).
pub(crate) fn shm_age(file_name: &str) -> Option<std::time::Duration> {
    let m = std::fs::metadata(format!("{SHM_DIR}/{file_name}")).ok()?;
    let changed = std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.ctime().max(0) as u64);
    std::time::SystemTime::now().duration_since(changed).ok()
}
