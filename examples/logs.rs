//! What shmkit tells a program that listens: it logs through the `log` crate, and says nothing
//! unless the program installs a logger. Here a tiny logger prints to stderr while a process
//! dies holding a lock (the next locker takes it over) and a pool worker dies mid-task (it is
//! replaced).

use std::time::Duration;

use shmkit::{LockTimeoutError, Pool, Process, RawValue, Value};

/// Prints every record to stderr: the smallest `log::Log` (env_logger or a `tracing`
/// subscriber with its `log` bridge do the same with filters and formats).
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        eprintln!("[{} {}] {}", record.level(), record.target(), record.args());
    }
    fn flush(&self) {}
}

fn hold_and_wait((v, flag): (Value<u64>, RawValue<u32>)) {
    let _held = v.lock().expect("a clean lock");
    flag.set(1);
    std::thread::sleep(Duration::from_secs(60)); // killed here
}

fn abort_on_two(x: u32) -> u32 {
    if x == 2 {
        std::process::abort();
    }
    x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::init();
    log::set_logger(&Stderr).map_err(|e| e.to_string())?;
    log::set_max_level(log::LevelFilter::Info);

    let (v, flag) = (Value::new(7u64)?, RawValue::new(0u32)?);
    let holder = Process::start(hold_and_wait, (v.clone(), flag.clone()))?;
    while flag.get() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    holder.kill()?;
    match v.lock_timeout(Duration::from_secs(5)) {
        Err(LockTimeoutError::OwnerDied(guard)) => guard.mark_consistent(),
        other => return Err(format!("expected a dead holder, got {other:?}").into()),
    }

    let pool = Pool::new(2)?;
    let results: Vec<_> = pool.imap(abort_on_two, 1..=3u32).collect();
    println!("pool results: {results:?}");
    pool.close();
    pool.join_timeout(Duration::from_secs(30))?;
    Ok(())
}
