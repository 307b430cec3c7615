//! What shmkit logs through the `log` crate when a program installs a logger: a lock taken
//! over from a dead holder, and a pool worker that died and was replaced.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::watchdog;
use shmkit::{LockTimeoutError, Pool, Value};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        LINES
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

fn logged(what: &str) -> bool {
    LINES.lock().unwrap().iter().any(|l| l.contains(what))
}

fn abort_on_one(x: u32) -> u32 {
    if x == 1 {
        std::process::abort();
    }
    x
}

#[test]
fn takeovers_and_worker_deaths_are_logged() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Info);

    // A thread that ends holding a value's lock: the next locker takes it over, and says so.
    let v = Value::new(1u32).unwrap();
    let v2 = v.clone();
    std::thread::spawn(move || std::mem::forget(v2.lock().unwrap()))
        .join()
        .unwrap();
    assert!(!logged("took over"), "nothing before the takeover");
    match v.lock_timeout(Duration::from_secs(10)) {
        Err(LockTimeoutError::OwnerDied(g)) => g.mark_consistent(),
        other => panic!("expected a takeover, got {other:?}"),
    }
    assert!(logged("WARN took over a lock from thread"));

    // A pool worker that dies mid-task.
    let pool = Pool::new(1).unwrap();
    let got: Vec<_> = pool.imap(abort_on_one, [0u32, 1, 2]).collect();
    assert!(got[1].is_err() && got[2].is_ok());
    assert!(logged("WARN pool worker"));
    assert!(logged("died (killed by signal 6); it is replaced"));
    let lines = LINES.lock().unwrap();
    let deaths = lines
        .iter()
        .filter(|l| l.contains("it is replaced"))
        .count();
    assert_eq!(deaths, 1, "one death, logged once: {lines:?}");
}
