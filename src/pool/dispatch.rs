//! The dispatch policy: which worker gets which pending task, as pure functions of what each
//! worker holds. `core.rs` applies the plan (it writes to the inboxes); the rules are here,
//! unit-tested without processes.
//!
//! The parent deals tasks from one FIFO. First every idle worker gets one task. Then, while
//! tasks are short, each inbox is topped up, one task per worker in turn, to hold about
//! [`PREFETCH_NS`] of measured work (between 1 and [`MAX_PREFETCH`] tasks), so a worker never
//! waits for the parent between short tasks. A worker whose current task has run longer than
//! that window gets nothing more queued behind it. With nothing pending, an idle worker takes
//! back a task still waiting in the inbox of the busiest worker ([`steal`]).

use std::time::Duration;

/// The most tasks waiting in one worker's inbox.
pub(crate) const MAX_PREFETCH: usize = 64;
/// The work a worker's inbox should hold, in nanoseconds of measured task time.
pub(crate) const PREFETCH_NS: f64 = 2e6;

/// How long a worker's current task may run before nothing more is queued behind it.
pub(crate) const WINDOW: Duration = Duration::from_nanos(PREFETCH_NS as u64);

/// What dispatch needs to know of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    /// Whether it can be sent tasks (it has an inbox: started and not dead).
    pub(crate) open: bool,
    /// Tasks sent to it and not answered.
    pub(crate) queued: usize,
    /// Tasks it may still be sent (maxtasksperchild), if limited.
    pub(crate) quota: Option<u64>,
    /// How long its current task has run (meaningful when `queued > 0`).
    pub(crate) busy_for: Duration,
}

impl Load {
    fn can_take(&self, cap: usize) -> bool {
        let stuck = self.queued > 0 && self.busy_for > WINDOW;
        self.open && self.queued < cap && self.quota != Some(0) && !stuck
    }

    fn take(&mut self) {
        if self.queued == 0 {
            self.busy_for = Duration::ZERO;
        }
        self.queued += 1;
        if let Some(q) = &mut self.quota {
            *q -= 1;
        }
    }
}

/// How many tasks an inbox may hold, given the average measured task time.
pub(crate) fn prefetch_limit(avg_ns: Option<f64>) -> usize {
    avg_ns.map_or(1, |ns| {
        ((PREFETCH_NS / ns.max(1.0)) as usize).clamp(1, MAX_PREFETCH)
    })
}

/// The workers the first `pending` tasks go to, in order (fewer if every worker is full), with
/// `loads` updated as if they had been sent. Dealing starts at worker `deal_from`, which moves
/// on one place per round, so no worker is always served first.
pub(crate) fn deal(
    loads: &mut [Load],
    pending: usize,
    limit: usize,
    deal_from: &mut usize,
) -> Vec<usize> {
    let n = loads.len();
    let mut plan = Vec::new();
    if n == 0 {
        return plan;
    }
    for cap in [1, limit] {
        while plan.len() < pending {
            let mut dealt = false;
            for k in 0..n {
                if plan.len() == pending {
                    break;
                }
                let w = (*deal_from + k) % n;
                if loads[w].can_take(cap) {
                    loads[w].take();
                    plan.push(w);
                    dealt = true;
                }
            }
            if !dealt {
                break;
            }
            *deal_from = (*deal_from + 1) % n;
        }
    }
    plan
}

/// With nothing pending: an idle worker and the busiest worker with a task waiting behind its
/// current one, if there are both (`(idle, donor)`).
pub(crate) fn steal(loads: &[Load]) -> Option<(usize, usize)> {
    let idle = loads
        .iter()
        .position(|w| w.open && w.queued == 0 && w.quota != Some(0))?;
    let donor = loads
        .iter()
        .enumerate()
        .filter(|(_, w)| w.open && w.queued >= 2)
        .max_by_key(|(_, w)| w.queued)
        .map(|(i, _)| i)?;
    Some((idle, donor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(n: usize) -> Vec<Load> {
        vec![
            Load {
                open: true,
                queued: 0,
                quota: None,
                busy_for: Duration::ZERO,
            };
            n
        ]
    }

    #[test]
    fn the_limit_follows_the_measured_task_time() {
        assert_eq!(prefetch_limit(None), 1, "unmeasured: one at a time");
        assert_eq!(prefetch_limit(Some(1e6)), 2);
        assert_eq!(prefetch_limit(Some(1e3)), MAX_PREFETCH);
        assert_eq!(prefetch_limit(Some(1e9)), 1);
        assert_eq!(prefetch_limit(Some(0.0)), MAX_PREFETCH);
    }

    #[test]
    fn idle_workers_get_one_each_first_then_inboxes_fill_in_turn() {
        let mut loads = idle(3);
        let mut from = 0;
        assert_eq!(deal(&mut loads, 2, 4, &mut from), [0, 1]);
        let mut loads = idle(3);
        let mut from = 0;
        let plan = deal(&mut loads, 8, 3, &mut from);
        assert_eq!(
            &plan[..3],
            [0, 1, 2],
            "one each before anyone gets a second"
        );
        assert_eq!(plan.len(), 8);
        assert!(loads.iter().all(|w| w.queued <= 3));
        let mut loads = idle(2);
        assert_eq!(deal(&mut loads, 100, 3, &mut 0).len(), 6, "full at 3 each");
    }

    #[test]
    fn the_first_worker_served_moves_on() {
        let mut from = 0;
        deal(&mut idle(3), 3, 1, &mut from);
        assert_eq!(from, 1);
        assert_eq!(deal(&mut idle(3), 1, 1, &mut from), [1]);
    }

    #[test]
    fn nothing_is_queued_behind_a_long_task_or_past_a_quota_or_to_a_dead_worker() {
        let mut loads = idle(4);
        loads[0].queued = 1;
        loads[0].busy_for = WINDOW * 2; // stuck on a long task
        loads[1].quota = Some(0); // retiring
        loads[2].open = false; // dead, not replaced yet
        let plan = deal(&mut loads, 10, 8, &mut 0);
        assert!(plan.iter().all(|&w| w == 3), "{plan:?}");
        assert_eq!(plan.len(), 8);
        let mut loads = idle(1);
        loads[0].quota = Some(2);
        assert_eq!(deal(&mut loads, 5, 8, &mut 0), [0, 0]);
        assert_eq!(loads[0].quota, Some(0));
        assert!(deal(&mut [], 3, 1, &mut 0).is_empty());
    }

    #[test]
    fn an_idle_worker_steals_from_the_busiest() {
        let mut loads = idle(3);
        assert_eq!(steal(&loads), None, "nothing to take");
        loads[0].queued = 2;
        loads[1].queued = 3;
        assert_eq!(steal(&loads), Some((2, 1)));
        loads[2].quota = Some(0);
        assert_eq!(steal(&loads), None, "the idle one may take no more");
        loads[2].quota = None;
        loads[1].queued = 1;
        assert_eq!(
            steal(&loads),
            Some((2, 0)),
            "only a worker with a task waiting gives"
        );
    }
}
