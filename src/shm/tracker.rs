//! Reclaiming what SIGKILL left: segments whose creator died without unlinking them, once no
//! live process uses them. Python runs a resource-tracker process for this; shmkit has every
//! process do it when it starts (from [`init`](crate::init)), in a background thread, so a
//! crash is cleaned up by the next shmkit program the user runs.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::time::Duration;

use super::name::PREFIX;
use super::registry::{SegmentInfo, remove_stale_if};
use crate::error::Result;
use crate::sys;

/// How long a segment must have existed before [`reclaim_abandoned`] from `init` may take it:
/// long enough that a program inspecting what a killed process left (a test, a debugger) sees
/// it first.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Removes the segments that are abandoned: their creator has ended (checked by pid and start
/// time), no live process has them mapped (read from `/proc/*/maps`), no hand-over of them is
/// in flight (a handle to them may still sit in a queue, to be opened later), and they were
/// created at least `grace` ago. A queue's spills go with it. Returns what it removed.
///
/// It never removes a segment a live process uses. Its limits: a process that has a segment's
/// file open without mapping it (only inside shmkit's `open`, for a moment) is not seen, and
/// `/proc` entries of processes of other users are not readable (they cannot open this user's
/// segments anyway). Unlike [`remove_stale`](super::remove_stale), it is safe to run from any
/// program at any time; [`init`](crate::init) runs it once per process, in a background
/// thread, with [`DEFAULT_GRACE`] (or `SHMKIT_RECLAIM_GRACE` seconds, if set).
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) if `/dev/shm` cannot be read.
pub fn reclaim_abandoned(grace: Duration) -> Result<Vec<SegmentInfo>> {
    reclaim_abandoned_if(grace, |_| true)
}

/// As [`reclaim_abandoned`], for the abandoned segments `chosen` picks only (`shmkit clean
/// --unused --prefix P`).
///
/// # Errors
/// As [`reclaim_abandoned`].
pub fn reclaim_abandoned_if(
    grace: Duration,
    chosen: impl Fn(&SegmentInfo) -> bool,
) -> Result<Vec<SegmentInfo>> {
    let check = Abandoned::new(grace);
    remove_stale_if(|s| chosen(s) && check.holds(s))
}

/// The segments [`reclaim_abandoned`] would remove now, removing nothing.
///
/// # Errors
/// As [`reclaim_abandoned`].
pub fn abandoned(grace: Duration) -> Result<Vec<SegmentInfo>> {
    let check = Abandoned::new(grace);
    Ok(super::registry::segments()?
        .into_iter()
        .filter(|s| s.is_stale() && check.holds(s))
        .collect())
}

/// Whether a stale segment is abandoned, beyond its creator being gone.
struct Abandoned {
    grace: Duration,
    /// The maps are read once, when the first candidate needs them. A process that opens a
    /// segment after that keeps its mapping when the name goes (only later opens by name
    /// fail), as with any segment whose creator has ended.
    mapped: OnceCell<HashSet<String>>,
}

impl Abandoned {
    fn new(grace: Duration) -> Abandoned {
        Abandoned {
            grace,
            mapped: OnceCell::new(),
        }
    }

    fn holds(&self, s: &SegmentInfo) -> bool {
        let file = format!("{PREFIX}{}", s.name);
        s.hand_overs == 0
            && sys::shm_age(&file).is_some_and(|age| age >= self.grace)
            && !self
                .mapped
                .get_or_init(|| sys::shm_mapped(PREFIX))
                .contains(&file)
    }
}

/// The grace `init` uses: `SHMKIT_RECLAIM_GRACE` (seconds) if set, else [`DEFAULT_GRACE`].
#[cfg(feature = "process")]
fn grace_from_env() -> Duration {
    std::env::var("SHMKIT_RECLAIM_GRACE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(DEFAULT_GRACE, Duration::from_secs)
}

/// Starts one background reclaim in this process (later calls do nothing).
#[cfg(feature = "process")]
pub(crate) fn reclaim_in_background() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let grace = grace_from_env();
        let _ = std::thread::Builder::new()
            .name("shmkit-reclaim".into())
            .spawn(move || {
                if let Err(e) = reclaim_abandoned(grace) {
                    log::debug!("could not look for abandoned segments: {e}");
                }
            });
    });
}
