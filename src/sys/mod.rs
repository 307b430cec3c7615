//! The operating-system layer: the only place that calls libc.
//!
//! Everything above this module speaks in terms of segments, locks and processes; the
//! platform choice is made here, once. Linux (glibc) on x86-64 is what shmkit ships and tests;
//! another Unix adds a sibling of `unix.rs` and selects it below.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod unix;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) use unix::*;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
compile_error!("shmkit supports Linux with glibc for now; see src/sys/mod.rs to add a platform");
