//! Segment names: validation, the `shmkit-` prefix, and unguessable anonymous names.

use crate::error::{Error, Result};
use crate::sys;

/// Every segment shmkit creates is called `/dev/shm/shmkit-<name>`.
pub(crate) const PREFIX: &str = "shmkit-";
/// What separates a queue's name from the id of one of its spilled items.
pub(crate) const SPILL: &str = ".spill-";
/// Names of anonymous segments start with this (after the prefix).
const ANON: &str = "anon-";
/// The longest name a user may give (the OS allows 255 bytes for the whole file name).
pub const MAX_NAME_LEN: usize = 200;

/// A validated segment name: what the user sees, and the path-like name the OS is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentName {
    user: String,
}

impl SegmentName {
    /// Checks a user-given name: 1 to 200 bytes of ASCII letters, digits, `.`, `_` and `-`,
    /// not starting with `.`.
    pub(crate) fn new(name: &str) -> Result<Self> {
        let bad = |reason| {
            Err(Error::InvalidName {
                name: name.to_owned(),
                reason,
            })
        };
        if name.is_empty() {
            return bad("it is empty");
        }
        if name.len() > MAX_NAME_LEN {
            return bad("it is longer than 200 bytes");
        }
        if name.starts_with('.') {
            return bad("it starts with '.'");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
        }
        Ok(SegmentName {
            user: name.to_owned(),
        })
    }

    /// A fresh, unguessable name for an anonymous segment: the creator's pid and 128 random bits.
    pub(crate) fn anonymous() -> Result<Self> {
        let r = sys::random_u128().map_err(|e| Error::io("getrandom", e))?;
        Ok(SegmentName {
            user: format!("{ANON}{}-{r:032x}", sys::current_pid()),
        })
    }

    /// The name of a spilled item of the queue `queue`: `<queue>.spill-<id>`. Queue names are at
    /// most 200 bytes, so this stays within the 255 bytes a file name may have.
    pub(crate) fn spill_of(queue: &SegmentName, id: u128) -> SegmentName {
        SegmentName {
            user: format!("{}{SPILL}{id:032x}", queue.user),
        }
    }

    /// The prefix (in `/dev/shm`) of every spill of the queue `queue`.
    pub(crate) fn spill_file_prefix(queue: &str) -> String {
        format!("{PREFIX}{queue}{SPILL}")
    }

    /// For a spill's name, the name of its queue.
    pub(crate) fn spill_parent(name: &str) -> Option<&str> {
        name.rsplit_once(SPILL).map(|(q, _)| q)
    }

    /// Recovers the user-facing name from a file name in `/dev/shm`, if it is one of ours.
    pub(crate) fn from_file_name(file: &str) -> Option<Self> {
        let user = file.strip_prefix(PREFIX)?;
        match Self::spill_parent(user) {
            Some(queue) => SegmentName::new(queue).ok().map(|_| SegmentName {
                user: user.to_owned(),
            }),
            None => SegmentName::new(user).ok(),
        }
    }

    /// The name as the user gave it (what `name()` returns and what handles serialise as).
    pub(crate) fn as_str(&self) -> &str {
        &self.user
    }

    /// The name handed to `shm_open`.
    pub(crate) fn os_name(&self) -> String {
        format!("/{PREFIX}{}", self.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_prefixes_them() {
        let n = SegmentName::new("counter_1.v-2").unwrap();
        assert_eq!(n.os_name(), "/shmkit-counter_1.v-2");
        assert_eq!(SegmentName::from_file_name("shmkit-counter_1.v-2"), Some(n));
    }

    #[test]
    fn refuses_bad_names() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            "a/b",
            "../x",
            ".hidden",
            "sp ace",
            "nul\0",
            "é",
            long.as_str(),
        ] {
            assert!(
                matches!(SegmentName::new(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert!(SegmentName::new(&"x".repeat(MAX_NAME_LEN)).is_ok());
        assert_eq!(SegmentName::from_file_name("other-thing"), None);
    }

    #[test]
    fn spill_names_carry_their_queue() {
        let q = SegmentName::new(&"q".repeat(MAX_NAME_LEN)).unwrap();
        let s = SegmentName::spill_of(&q, u128::MAX);
        assert!(s.os_name().len() <= 255);
        assert_eq!(SegmentName::spill_parent(s.as_str()), Some(q.as_str()));
        assert_eq!(
            SegmentName::from_file_name(&s.os_name()[1..]),
            Some(s.clone())
        );
        assert!(s.os_name()[1..].starts_with(&SegmentName::spill_file_prefix(q.as_str())));
    }

    #[test]
    fn anonymous_names_are_valid_and_distinct() {
        let a = SegmentName::anonymous().unwrap();
        let b = SegmentName::anonymous().unwrap();
        assert_ne!(a, b);
        assert!(SegmentName::new(a.as_str()).is_ok());
        assert!(a.as_str().starts_with("anon-"));
    }
}
