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
