//! Shared (not process-private) futex wait and wake on a 32-bit word in shared memory.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`, for at most `timeout` (forever if `None`). Returns on a
/// wake, a timeout, a signal, or at once if the word has another value: callers re-check
/// their condition in a loop.
///
/// Not `FUTEX_PRIVATE_FLAG`: the word lives in shared memory and the waker may be another
/// process; the kernel keys shared futexes by the underlying page, not the address.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned 32-bit atomic for the duration of the call; the
    // timespec, if any, lives on our stack until the call returns. FUTEX_WAIT only reads them.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
        )
    };
}

/// Wakes up to `n` threads (in any process) sleeping in [`futex_wait`] on `word`.
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a valid, aligned 32-bit atomic; FUTEX_WAKE does not access memory
    // beyond hashing its address.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
}

/// `futex_waitv(2)`'s system call number on x86-64 (Linux 5.16 and later).
#[cfg(target_arch = "x86_64")]
const SYS_FUTEX_WAITV: libc::c_long = 449;
/// A 32-bit futex, for `futex_waitv`; without `FUTEX_PRIVATE_FLAG`, as for `futex_wait`.
const FUTEX2_SIZE_U32: u32 = 0x02;

/// One entry of `futex_waitv`'s list: the kernel's `struct futex_waitv`.
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// Sleeps until any of `words` no longer holds its expected value (or is woken), or
/// `timeout` passes: `futex_wait` on several words at once. Returns at once if one of them
/// already differs, and on a signal: callers re-check their conditions in a loop. Returns
/// `false` if the kernel lacks `futex_waitv` (before Linux 5.16), after sleeping on the first
/// word alone for at most `timeout`.
pub(crate) fn futex_wait_any(words: &[(&AtomicU32, u32)], timeout: Duration) -> bool {
    let Some(&(first, first_val)) = words.first() else {
        std::thread::sleep(timeout);
        return true;
    };
    let list: Vec<FutexWaitv> = words
        .iter()
        .map(|&(w, v)| FutexWaitv {
            val: u64::from(v),
            uaddr: w.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    // futex_waitv takes an absolute deadline on a clock it is told.
    let now = super::clock::monotonic_now();
    let total = u128::from(now.tv_nsec as u64)
        + timeout.as_nanos().min(u128::from(u32::MAX) * 1_000_000_000);
    let deadline = libc::timespec {
        tv_sec: now
            .tv_sec
            .saturating_add((total / 1_000_000_000) as libc::time_t),
        tv_nsec: (total % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `list` holds `list.len()` (at most 128, checked by the kernel) entries whose
    // addresses are valid, aligned 32-bit atomics borrowed for the duration of the call;
    // `deadline` lives on our stack until it returns. futex_waitv only reads them.
    let r = unsafe {
        libc::syscall(
            SYS_FUTEX_WAITV,
            list.as_ptr(),
            list.len() as libc::c_uint,
            0 as libc::c_uint,
            &deadline as *const libc::timespec,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        futex_wait(first, first_val, Some(timeout));
        return false;
    }
    true
}
