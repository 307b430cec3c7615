//! Processes: the parent's pid, dying with the parent, signals, and this executable's identity.
#![cfg_attr(not(feature = "process"), allow(dead_code))]

use std::io;
use std::os::unix::fs::MetadataExt;

/// The parent process's id.
pub(crate) fn parent_pid() -> u32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// Asks the kernel to SIGKILL this process when the thread that created it exits.
pub(crate) fn die_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; no memory is passed.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sends `signal` to process `pid`.
pub(crate) fn signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes plain integers; sending a signal has no memory-safety preconditions.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub(crate) const SIGTERM: libc::c_int = libc::SIGTERM;
pub(crate) const SIGKILL: libc::c_int = libc::SIGKILL;

/// The device and inode of this process's executable: two processes run the same program
/// (and so have functions at the same offsets) only if these match.
pub(crate) fn exe_identity() -> io::Result<(u64, u64)> {
    let m = std::fs::metadata("/proc/self/exe")?;
    Ok((m.dev(), m.ino()))
}
