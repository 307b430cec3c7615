//! This process's id and its parent's, as the kernel names them (Python's `os.getpid()` and
//! `os.getppid()`, which `multiprocessing` users reach for to tell processes apart).

use crate::sys;

/// This process's id (Python's `os.getpid()`).
#[doc(alias = "getpid")]
pub fn current_pid() -> u32 {
    sys::current_pid()
}

/// The parent process's id (Python's `os.getppid()`).
#[doc(alias = "getppid")]
pub fn parent_pid() -> u32 {
    sys::parent_pid()
}
