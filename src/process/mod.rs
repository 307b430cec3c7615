//! Processes: run Rust functions in child processes ([`Process`]), started with
//! [`init`] at the top of `main`.

pub(crate) mod child;
mod current;
#[allow(unsafe_code)]
pub(crate) mod entry;
pub(crate) mod handle;
mod outcome;

#[cfg(feature = "pool")]
pub(crate) use outcome::is_err;

pub use child::init;
pub use current::{ProcessInfo, active_children, current_process, parent_process};
pub use handle::{Builder, Process, ProcessError, ProcessTimeoutError};
