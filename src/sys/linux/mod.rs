//! Linux implementation of the `sys` layer.

mod clock;
mod futex;
mod process;
mod shm;
mod signal;
mod task;

pub(crate) use clock::monotonic_micros;
pub(crate) use futex::{futex_wait, futex_wait_any, futex_wake};
pub(crate) use process::parent_pid;
#[cfg(feature = "process")]
pub(crate) use process::{SIGKILL, SIGTERM, die_with_parent, exe_identity, signal};
pub(crate) use shm::{
    SHM_DIR, current_uid, file_identity, file_owner, file_size, page_size, same_file, shm_age,
    shm_create_exclusive, shm_list, shm_mapped, shm_open_existing, shm_reserve, shm_unlink,
};
pub(crate) use signal::{
    CleanupHook, SignalsBlocked, install_cleanup, unlink_if_same, unlink_prefixed, yield_now,
};
#[cfg(feature = "redis")]
pub(crate) use task::hostname;
pub(crate) use task::{
    Liveness, START_UNVERIFIABLE, TID_BITS, cores_to_spare, current_pid, own_identity,
    pid_namespace, process_alive, process_start_time, random_u128, task_liveness, thread_identity,
};
