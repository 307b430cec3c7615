//! The pool's collector thread: it delivers results as workers send them, notices workers
//! that died (failing exactly the task each was running, and handing the tasks waiting in its
//! inbox to other workers), replaces them, and stops the workers once the pool is closed and
//! idle.

use std::time::{Duration, Instant};

use super::core::{Core, Deliveries, EARLY_DEATHS, Mode, State, TICK, deliver};
use super::error::TaskError;
use super::slot::Chunk;
use super::worker::{self, Report};
use crate::process::Process;
use crate::queue::GetTimeoutError;

impl Core {
    /// The collector thread: delivers results, checks on workers, replaces dead ones.
    pub(super) fn collect(&self) {
        let mut buf = Vec::new();
        let mut last_check = Instant::now();
        loop {
            let mut deliveries = Vec::new();
            let mut check = false;
            // What is there, in a bounded batch taken in one lock round trip, before
            // delivering (each message becomes its outcome without another copy).
            match self.results.get_many_timeout(256, TICK) {
                Ok(batch) => {
                    for mut msg in batch {
                        check |= self.handle(&mut msg, &mut deliveries);
                    }
                }
                Err(GetTimeoutError::Timeout) => {}
                Err(e) => {
                    let why = TaskError::Pool(format!("the results queue failed: {e}"));
                    self.shut_down(why, &mut deliveries);
                }
            }
            deliver(deliveries);
            if check || last_check.elapsed() >= TICK {
                last_check = Instant::now();
                self.check_workers(&mut buf);
            }
            if self.stop_if_idle() {
                break;
            }
        }
        self.reap();
    }

    /// Handles one message from a worker; whether workers should be checked now.
    fn handle(&self, msg: &mut Vec<u8>, deliveries: &mut Deliveries) -> bool {
        let Some((index, generation, report)) = worker::parse_report(msg) else {
            return false;
        };
        let mut st = self.state.lock();
        let index = index as usize;
        let current = st
            .workers
            .get(index)
            .is_some_and(|w| w.generation == generation);
        match report {
            Report::Wake => {}
            Report::Result { id, elapsed_ns } => {
                if let Some(w) = st.workers.get_mut(index)
                    && let Some(pos) = w.sent.iter().position(|&t| t == id)
                {
                    w.sent.remove(pos);
                    w.busy_since = Instant::now();
                }
                if let Some(task) = st.tasks.remove(&id) {
                    // The message itself becomes the outcome: no copy.
                    let chunk = Chunk::new(std::mem::take(msg), worker::OUTCOMES_AT);
                    deliveries.push((task.sink, Ok(chunk)));
                }
                let ns = elapsed_ns as f64;
                st.avg_ns = Some(st.avg_ns.map_or(ns, |avg| avg * 0.8 + ns * 0.2));
                self.pump(&mut st, deliveries);
                if st.tasks.is_empty() {
                    self.idle.notify_all();
                }
            }
            Report::Ready => {
                if current {
                    st.workers[index].ready = true;
                    st.early_deaths = 0;
                }
            }
            Report::Retire => return true,
            Report::InitFailed(why) => {
                drop(st);
                self.shut_down(TaskError::Initializer(why), deliveries);
                return false;
            }
        }
        false
    }

    /// Finds dead workers, settles their tasks, and starts replacements.
    fn check_workers(&self, buf: &mut Vec<u8>) {
        let dead: Vec<usize> = {
            let mut st = self.state.lock();
            st.workers
                .iter_mut()
                .enumerate()
                .filter_map(|(i, w)| {
                    w.process
                        .as_mut()
                        .is_some_and(|p| !p.is_alive())
                        .then_some(i)
                })
                .collect()
        };
        if dead.is_empty() {
            return;
        }
        // Everything a dead worker put before it died is in the results queue: handle it first,
        // so only tasks it never answered are left in its record.
        let mut deliveries = Vec::new();
        while self
            .results
            .get_bytes_timeout_into(buf, Duration::ZERO)
            .is_ok()
        {
            self.handle(buf, &mut deliveries);
        }
        let mut respawn = Vec::new();
        let mut broken = None;
        {
            let mut st = self.state.lock();
            for &i in &dead {
                let w = &mut st.workers[i];
                let code = w.process.as_mut().and_then(|p| p.exit_code());
                w.process = None;
                w.inbox = None;
                let sent = std::mem::take(&mut w.sent);
                let (pid, ready) = (w.pid, w.ready);
                let retired = w.quota == Some(0) && sent.is_empty() && code == Some(0);
                let status = match code {
                    Some(c) if c < 0 => format!("killed by signal {}", -c),
                    Some(c) => format!("exit code {c}"),
                    None => "unknown status".into(),
                };
                let running = self.started.get(i).unwrap_or(0);
                let mut requeue = Vec::new();
                for (k, id) in sent.into_iter().enumerate() {
                    if k == 0 && running == id + 1 {
                        if let Some(task) = st.tasks.remove(&id) {
                            deliveries.push((task.sink, Err(self.died(pid, &status))));
                        }
                    } else {
                        requeue.push(id);
                    }
                }
                for id in requeue.into_iter().rev() {
                    st.pending.push_front(id);
                }
                if !matches!(st.mode, Mode::Running | Mode::Closed) || retired {
                    if retired {
                        respawn.push(i);
                    }
                    continue;
                }
                if self.config.break_on_death {
                    log::warn!("executor worker {pid} died ({status}); the executor is broken");
                } else {
                    log::warn!("pool worker {pid} died ({status}); it is replaced");
                }
                if self.config.break_on_death {
                    broken = Some(self.died(pid, &status));
                } else if !ready && self.config.initializer.is_some() {
                    broken = Some(TaskError::Initializer(format!(
                        "a worker (pid {pid}) died in its initializer: {status}"
                    )));
                } else if !ready {
                    st.early_deaths += 1;
                    if st.early_deaths >= EARLY_DEATHS {
                        broken = Some(TaskError::Pool(format!(
                            "{EARLY_DEATHS} workers in a row died before they were ready \
                             (the last, pid {pid}: {status})"
                        )));
                    }
                }
                respawn.push(i);
            }
            if st.tasks.is_empty() {
                self.idle.notify_all();
            }
            self.pump(&mut st, &mut deliveries);
        }
        if let Some(why) = broken {
            self.shut_down(why, &mut deliveries);
            respawn.clear();
        }
        deliver(deliveries);
        for i in respawn {
            if !matches!(self.state.lock().mode, Mode::Running | Mode::Closed) {
                break;
            }
            if let Err(e) = self.spawn(i) {
                let mut deliveries = Vec::new();
                let why = TaskError::Pool(format!("could not start a worker: {e}"));
                self.shut_down(why, &mut deliveries);
                deliver(deliveries);
                break;
            }
        }
    }

    /// The error of the task a worker was running when it died.
    fn died(&self, pid: u32, status: &str) -> TaskError {
        if self.config.break_on_death {
            TaskError::Broken(format!("a worker (pid {pid}) died abruptly: {status}"))
        } else {
            TaskError::WorkerDied {
                pid,
                status: status.to_owned(),
            }
        }
    }

    /// Fails every task with `why`, refuses new ones with it, and kills the workers.
    pub(super) fn shut_down(&self, why: TaskError, deliveries: &mut Deliveries) {
        let mut st = self.state.lock();
        st.failure.get_or_insert(why.clone());
        self.kill_all(&mut st, why, deliveries);
    }

    pub(super) fn kill_all(&self, st: &mut State, why: TaskError, deliveries: &mut Deliveries) {
        st.mode = Mode::Terminated;
        // Tasks no worker has started never get their handles: take those hand-overs back.
        let unstarted: Vec<u64> = st
            .pending
            .drain(..)
            .chain(
                st.workers
                    .iter()
                    .flat_map(|w| w.sent.iter().skip(1).copied()),
            )
            .collect();
        for id in unstarted {
            if let Some(task) = st.tasks.remove(&id) {
                task.sent.abandon();
                deliveries.push((task.sink, Err(why.clone())));
            }
        }
        deliveries.extend(st.tasks.drain().map(|(_, t)| (t.sink, Err(why.clone()))));
        for w in &mut st.workers {
            w.sent.clear();
            if let Some(p) = &w.process {
                let _ = p.kill();
            }
        }
        self.idle.notify_all();
        self.wake_collector();
    }

    /// Tells the workers to stop once the pool is closed and idle; whether the collector
    /// should end now (terminated, or every worker has exited).
    fn stop_if_idle(&self) -> bool {
        let mut st = self.state.lock();
        if st.mode == Mode::Closed && st.stop_when_idle && st.tasks.is_empty() {
            st.mode = Mode::Stopping;
            for w in &st.workers {
                if let Some(inbox) = &w.inbox {
                    let _ = inbox.put_bytes(&worker::stop_message());
                }
            }
        }
        match st.mode {
            Mode::Terminated => true,
            Mode::Stopping => st.workers.iter().all(|w| w.process.is_none()),
            _ => false,
        }
    }

    /// Waits for the workers that are left (killed ones exit at once).
    pub(super) fn reap(&self) {
        let workers: Vec<Process<()>> = {
            let mut st = self.state.lock();
            st.workers
                .iter_mut()
                .filter_map(|w| {
                    w.inbox = None;
                    w.process.take()
                })
                .collect()
        };
        for mut p in workers {
            if p.join_timeout(Duration::from_secs(5)).is_err() && p.is_alive() {
                let _ = p.kill();
                let _ = p.join_timeout(Duration::from_secs(5));
            }
        }
    }
}
