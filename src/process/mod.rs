//! Processes: run Rust functions in child processes ([`Process`]), started with
//! [`init`](crate::init) at the top of `main`.

#[allow(unsafe_code)]
pub(crate) mod child;
pub(crate) mod handle;

pub use child::init;
pub use handle::{Builder, Process, ProcessError, current_pid, parent_pid};
