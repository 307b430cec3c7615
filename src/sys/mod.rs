//! The operating-system layer: the only place that calls libc.
//!
//! Everything above this module speaks in terms of segments, locks and processes; the
//! platform choice is made here, once. Linux (glibc) on x86-64 is what shmkit ships and tests;
//! another Unix adds a sibling of `linux/` and selects it below.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!("shmkit supports Linux for now; see src/sys/mod.rs to add a platform");
