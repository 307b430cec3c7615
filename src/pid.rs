//! This process's id and its parent's, as the kernel names them (Python's `os.getpid()` and
//! `os.getppid()`, which `multiprocessing` users reach for to tell processes apart).

use crate::sys;

/// This process's id (Python's `os.getpid()`).
#[doc(alias = "getpid")]
pub fn current_pid() -> u32 {
    sys::current_pid()
}

/// The number of CPUs this process may run on (Python's `multiprocessing.cpu_count()`, or
/// rather `os.process_cpu_count()`, which honours CPU affinity and cgroup limits); at least 1.
/// A pool made without a size starts this many workers.
#[doc(alias = "process_cpu_count")]
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The parent process's id (Python's `os.getppid()`).
#[doc(alias = "getppid")]
pub fn parent_pid() -> u32 {
    sys::parent_pid()
}
