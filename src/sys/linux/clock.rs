//! The monotonic clock, read without allocating or locking (async-signal-safe, as
//! `clock_gettime` is): for `futex_waitv`'s absolute deadline and for the signal handler's
//! patience with a creation under way.

/// The monotonic clock's time now.
pub(crate) fn monotonic_now() -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for clock_gettime to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now
}

/// Microseconds on the monotonic clock.
pub(crate) fn monotonic_micros() -> u64 {
    let now = monotonic_now();
    (now.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(now.tv_nsec as u64 / 1_000)
}
