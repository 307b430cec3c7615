//! Which process this is, which started it, and which children it has running: Python's
//! `current_process()`, `parent_process()` and `active_children()`.

use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::sys;

/// A process as these functions describe it: its name and pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The name given when it was started (`Process-N` by default), or `MainProcess`.
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

/// What a child learns of itself and its parent from its start-up spec.
struct Identity {
    name: String,
    parent: ProcessInfo,
}

static IDENTITY: OnceLock<Identity> = OnceLock::new();

/// Records, in a child, the names its parent gave it and itself.
pub(crate) fn set_identity(name: String, parent_name: String, parent_pid: u32) {
    let _ = IDENTITY.set(Identity {
        name,
        parent: ProcessInfo {
            name: parent_name,
            pid: parent_pid,
        },
    });
}

/// This process (Python's `multiprocessing.current_process()`): in a child started by
/// [`Process`](crate::Process), the name its parent gave it; otherwise `MainProcess`.
pub fn current_process() -> ProcessInfo {
    ProcessInfo {
        name: IDENTITY
            .get()
            .map_or_else(|| "MainProcess".to_owned(), |i| i.name.clone()),
        pid: sys::current_pid(),
    }
}

/// The process that started this one, if shmkit started it (Python's
/// `multiprocessing.parent_process()`, which is `None` in the main process).
pub fn parent_process() -> Option<ProcessInfo> {
    IDENTITY.get().map(|i| i.parent.clone())
}

/// Children started by this process with [`Process`](crate::Process) whose handles are alive.
static CHILDREN: Mutex<Vec<(ProcessInfo, u64)>> = Mutex::new(Vec::new());

pub(crate) fn register_child(info: ProcessInfo) {
    let start = sys::process_start_time(info.pid).unwrap_or(0);
    CHILDREN.lock().push((info, start));
}

pub(crate) fn forget_child(pid: u32) {
    CHILDREN.lock().retain(|(c, _)| c.pid != pid);
}

/// The children this process started with [`Process`](crate::Process) that are still running
/// (Python's `multiprocessing.active_children()`). A child that has ended is not listed, and a
/// child whose `Process` handle was dropped is forgotten.
pub fn active_children() -> Vec<ProcessInfo> {
    CHILDREN
        .lock()
        .iter()
        .filter(|(c, start)| sys::process_alive(c.pid, (*start != 0).then_some(*start)))
        .map(|(c, _)| c.clone())
        .collect()
}
