//! Processes taking turns under a `Lock`, and a `Semaphore` letting 3 of 10 workers in at a
//! time. The children are `shmkit::Process`es; the handles travel to them as arguments.
//!
//! Run with `cargo run --example locks`.

use std::error::Error;
use std::time::Duration;

use shmkit::{Lock, Process, Semaphore, Value};

/// Starts `f(arg)` for every argument, then joins them all (each within 30 s).
fn run_all<F, A>(f: F, args: impl IntoIterator<Item = A>) -> Result<(), Box<dyn Error>>
where
    F: Fn(A) + Copy + Send + 'static,
    A: serde::Serialize + serde::de::DeserializeOwned,
{
    let kids = args
        .into_iter()
        .map(|a| Process::start(f, a))
        .collect::<shmkit::Result<Vec<_>>>()?;
    for mut k in kids {
        k.join_timeout(Duration::from_secs(30))?;
    }
    Ok(())
}

fn printer((id, lock): (usize, Lock)) {
    for line in 1..=3 {
        // whole lines, one process at a time
        let _turn = lock.lock().expect("a printer died holding the lock");
        println!("process {id}: line {line}");
    }
}

fn worker((id, sem, inside, most): (usize, Semaphore, Value<u32>, Value<u32>)) {
    let _permit = sem.acquire(); // given back when the worker returns
    let now = inside
        .update(|n| {
            *n += 1;
            *n
        })
        .unwrap();
    most.update(|m| *m = (*m).max(now)).unwrap();
    println!("  worker {id} is in ({now} inside)");
    std::thread::sleep(Duration::from_millis(30));
    inside.update(|n| *n -= 1).unwrap();
}

fn main() -> Result<(), Box<dyn Error>> {
    shmkit::init(); // in a child, runs its function and exits
    println!("Four processes print three lines each, taking turns under a Lock:");
    let lock = Lock::new()?;
    run_all(printer, (0..4).map(|id| (id, lock.clone())))?;

    println!("Ten workers, a Semaphore of 3:");
    let (sem, inside, most) = (Semaphore::new(3)?, Value::new(0u32)?, Value::new(0u32)?);
    run_all(
        worker,
        (0..10).map(|id| (id, sem.clone(), inside.clone(), most.clone())),
    )?;
    println!("at most {} workers were in at once", most.get()?);
    assert!(most.get()? <= 3);
    Ok(())
}
