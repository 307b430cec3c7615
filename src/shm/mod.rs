//! Shared segments: named POSIX shared memory with a validated header.
//!
//! A `Segment` is the building block of every shared object. Its header, validation and
//! ownership rules are described in `header.rs` and `segment.rs`. The public part of this
//! module lets a program list and clean up segments: [`segments`], [`remove_stale`], [`remove`].
//!
//! ```
//! # fn main() -> shmkit::Result<()> {
//! let v = shmkit::Value::new(7u32)?;
//! let mine: Vec<_> = shmkit::shm::segments()?
//!     .into_iter()
//!     .filter(|s| s.creator_pid == Some(shmkit::current_pid()))
//!     .collect();
//! assert!(mine.iter().any(|s| s.name == v.name() && !s.is_stale()));
//! // This program's segments whose creator died without removing them (SIGKILL, a crash);
//! // `remove_stale()` would remove every program's:
//! for gone in shmkit::shm::remove_stale_if(|s| s.name.starts_with("myapp-"))? {
//!     println!("removed {} ({} bytes)", gone.name, gone.size);
//! }
//! # Ok(()) }
//! ```

pub(crate) mod by_name;
mod fingerprint;
mod header;
mod kind;
mod name;
#[allow(unsafe_code)]
mod object;
#[allow(unsafe_code)]
mod owned;
#[allow(unsafe_code)]
mod registry;
#[allow(unsafe_code)]
mod segment;
#[allow(unsafe_code)]
mod shared;
mod tracker;

pub use header::Kind;
pub use name::MAX_NAME_LEN;
pub use owned::{cleanup_on_signals, unlink_owned};
pub(crate) use registry::{CONTROL_PEEK, writer_alive};
pub use registry::{SegmentInfo, remove, remove_stale, remove_stale_if, segments};
#[cfg(feature = "process")]
pub(crate) use tracker::reclaim_in_background;
pub use tracker::{DEFAULT_GRACE, abandoned, reclaim_abandoned, reclaim_abandoned_if};

pub(crate) use by_name::serde_by_name;
pub(crate) use fingerprint::TypeInfo;
pub(crate) use header::{Expect, Spec, fix_header_for_fuzzing};
pub(crate) use name::SegmentName;
pub(crate) use object::Shared;
pub(crate) use segment::{DEFAULT_OPEN_WAIT, Segment};
pub(crate) use shared::{ShmShared, assert_field, shm_shared};
