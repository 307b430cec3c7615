//! `Renewer`: one background thread per queue handle that renews the handle's leases
//! (`XCLAIM ... JUSTID`) every third of the lease time, on a connection of its own.
//!
//! A lease registers its entry id and unregisters it when acked, released or dropped.
//! Neither wakes the thread: it sleeps until the earliest renewal is due (or a third of the
//! lease time when it has none), and a new lease is never due before that. It renews while
//! holding the table's lock, so once `unregister` returns no renewal of that id is in flight or
//! to come.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::queue::Inner;

#[derive(Default)]
struct Table {
    /// Entry id → when its next renewal is due.
    due: HashMap<String, Instant>,
    closed: bool,
}

struct State {
    table: Mutex<Table>,
    wake: Condvar,
    /// A third of the lease time.
    every: Duration,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) struct Renewer {
    state: Arc<State>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Renewer {
    /// Starts the thread, renewing through `link` (a sibling of the handle: same queue and
    /// consumer, its own connection). `None` if no thread could be started: leases are then
    /// not renewed in the background.
    pub(super) fn start(link: Inner) -> Option<Renewer> {
        let state = Arc::new(State {
            table: Mutex::new(Table::default()),
            wake: Condvar::new(),
            every: link.opts.lease / 3,
        });
        let for_thread = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("shmkit-lease-renewer".into())
            .spawn(move || run(&for_thread, &link))
            .ok()?;
        Some(Renewer {
            state,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Renews `id` from now on.
    pub(super) fn register(&self, id: &str) {
        self.state
            .lock()
            .due
            .insert(id.to_owned(), Instant::now() + self.state.every);
    }

    /// Stops renewing `id`; once this returns, no renewal of it is in flight.
    pub(super) fn unregister(&self, id: &str) {
        self.state.lock().due.remove(id);
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.state.lock().closed = true;
        self.state.wake.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

fn run(state: &State, link: &Inner) {
    let every = state.every;
    let mut table = state.lock();
    loop {
        if table.closed {
            return;
        }
        let now = Instant::now();
        let next = table.due.values().min().copied();
        match next {
            Some(at) if at <= now => {
                let due: Vec<String> = table
                    .due
                    .iter()
                    .filter(|&(_, &at)| at <= now)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in due {
                    // Under the lock: see the module docs.
                    match link.touch(&id, None) {
                        Ok(true) => {
                            table.due.insert(id, Instant::now() + every);
                        }
                        // Acked by another consumer that took it over, or Redis unreachable:
                        // renewing again would not help; the lease's own calls say so.
                        _ => {
                            table.due.remove(&id);
                        }
                    }
                }
            }
            _ => {
                let wait = next.map_or(every, |at| at - now);
                table = state
                    .wake
                    .wait_timeout(table, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }
}
