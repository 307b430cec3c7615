//! How a pipe end travels to another process: its serde form (the names of the pipe's table
//! and queues, and which end), the hand-over of its segments (see `shm::by_name`), and what
//! `shmkit::wait` watches on it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use super::{Connection, Inner, me};
use crate::error::Error;
use crate::queue::Queue;
use crate::shm::{Kind, Shared};

impl crate::shm::by_name::HandOver for Inner {
    fn send_out(&self) {
        self.state.send_out();
        for q in self.rx.iter().chain(&self.tx) {
            crate::shm::by_name::Handle::hand_over(q).send_out();
        }
        // In transit: whoever claims it holds it; until then no one closes it by dropping.
        if self.held_here() {
            self.state.get().ends[self.end]
                .pid
                .store(0, Ordering::Release);
        }
    }

    fn unsend(&self) {
        self.state.unsend();
        for q in self.rx.iter().chain(&self.tx) {
            crate::shm::by_name::Handle::hand_over(q).unsend();
        }
        let e = &self.state.get().ends[self.end];
        let (pid, start) = me();
        if e.pid.load(Ordering::Relaxed) == 0 {
            e.start.store(start, Ordering::Relaxed);
            e.pid.store(pid, Ordering::Release);
        }
    }

    fn claim(&self) {
        self.state.claim();
        for q in self.rx.iter().chain(&self.tx) {
            crate::shm::by_name::Handle::hand_over(q).claim();
        }
    }
}

impl<S, R> crate::select::sealed::Watch for Connection<S, R> {
    fn is_ready(&self) -> bool {
        self.poll(Duration::ZERO)
    }
    fn watched(&self) -> Option<&crate::queue::QueueCore> {
        self.inner.rx.as_ref().map(|q| q.core())
    }
}

impl<S, R> crate::shm::by_name::Handle for Connection<S, R> {
    fn hand_over(&self) -> Arc<dyn crate::shm::by_name::HandOver> {
        self.inner.clone()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    state: String,
    end: usize,
    rx: Option<String>,
    tx: Option<String>,
}

impl<S, R> Serialize for Connection<S, R> {
    fn serialize<Z: serde::Serializer>(&self, s: Z) -> std::result::Result<Z::Ok, Z::Error> {
        crate::shm::by_name::note(self);
        let i = &self.inner;
        Wire {
            state: i.state.name().to_owned(),
            end: i.end,
            rx: i.rx.as_ref().map(|q| q.name().to_owned()),
            tx: i.tx.as_ref().map(|q| q.name().to_owned()),
        }
        .serialize(s)
    }
}

impl<'de, S, R> serde::Deserialize<'de> for Connection<S, R> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = Wire::deserialize(d)?;
        if w.end > 1 {
            return Err(D::Error::custom("a pipe has two ends"));
        }
        let opened = (|| {
            let open = |name: Option<String>| name.map(|n| Queue::<Vec<u8>>::open(&n)).transpose();
            let state = Shared::open_typed(&w.state, Kind::Pipe, Self::expected_type(w.end))?;
            Ok::<_, Error>((state, open(w.rx)?, open(w.tx)?))
        })();
        match opened {
            Ok((state, rx, tx)) => {
                let conn = Connection::claimed(state, w.end, rx, tx);
                crate::shm::by_name::HandOver::claim(&*conn.inner);
                Ok(conn)
            }
            Err(e) => {
                let why = format!("cannot open the pipe end it holds: {e}");
                crate::shm::by_name::set_open_error(why.clone());
                Err(D::Error::custom(why))
            }
        }
    }
}
