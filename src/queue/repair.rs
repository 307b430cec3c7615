//! Repair after a queue's lock holder died: the counts are rebuilt from the frames.
//!
//! Every frame carries its item's sequence number, and a put commits with one store of `tail`,
//! a get with one store of `head`. So the frames between `head` and `tail` are exactly the
//! committed items, whatever moment the holder died at, and their sequence numbers give back
//! the counts it may not have finished updating.

use std::sync::atomic::Ordering;

use super::core::{Fail, Held, QueueCore};
use super::ring;

impl QueueCore {
    /// After a holder died: recompute `puts` and `gets` from the frames between `head` and
    /// `tail`, which are exactly the committed items.
    pub(super) fn repair(&self, held: &Held<'_>) -> Result<(), Fail> {
        let c = self.ctl();
        let (head, tail) = (
            c.head.load(Ordering::Relaxed),
            c.tail.load(Ordering::Relaxed),
        );
        let mut pos = head;
        let (mut first, mut last) = (None, None);
        while pos != tail {
            let f = ring::oldest(pos, tail, self.cap, |at| self.read_header(at))
                .map_err(|e| self.corrupt(format!("repair: {e}")))?
                .ok_or_else(|| self.corrupt("repair: ring ended early"))?;
            if let Some(prev) = last
                && f.header.seq != prev + 1
            {
                return Err(self.corrupt("repair: sequence numbers out of order"));
            }
            first.get_or_insert(f.header.seq);
            last = Some(f.header.seq);
            pos += f.advance;
        }
        let (puts, gets) = match (first, last) {
            (Some(f), Some(l)) => (
                l.checked_add(1)
                    .ok_or_else(|| self.corrupt("repair: sequence number at its limit"))?,
                f,
            ),
            _ => {
                let m = c
                    .puts
                    .load(Ordering::Relaxed)
                    .max(c.gets.load(Ordering::Relaxed));
                (m, m)
            }
        };
        c.puts.store(puts, Ordering::Relaxed);
        c.gets.store(gets, Ordering::Relaxed);
        if c.done.load(Ordering::Relaxed) > gets {
            c.done.store(gets, Ordering::Relaxed);
        }
        log::warn!(
            "queue {}: repaired after a process died holding its lock ({} items in it)",
            self.name(),
            puts.saturating_sub(gets)
        );
        let _ = held;
        Ok(())
    }
}
