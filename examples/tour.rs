//! A tour of shmkit: shared values and arrays across real processes, a lock that survives a
//! process killed while holding it, type-checked opening, a queue whose producers never get
//! stuck at exit, a pool of workers that survives a worker killed mid-task, and cleanup.
//!
//! Run: `cargo run --release --example tour`. Children are this program started again with a
//! role in `SHMKIT_TOUR_ROLE`.

use std::error::Error;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use shmkit::{
    Array, Barrier, Connection, Event, LockError, Pipe, Queue, RawValue, TryLockError, Value,
};

const ROLE: &str = "SHMKIT_TOUR_ROLE";
const WORKERS: usize = 4;
const PER_WORKER: u64 = 50_000;

type Res<T = ()> = Result<T, Box<dyn Error>>;

fn start(role: &str, handles: &str) -> Res<Child> {
    Ok(Command::new(std::env::current_exe()?)
        .env(ROLE, role)
        .env("HANDLES", handles)
        .spawn()?)
}

fn handles<T: serde::de::DeserializeOwned>() -> Res<T> {
    Ok(serde_json::from_str(&std::env::var("HANDLES")?)?)
}

/// Worker: add to the shared counter under its lock and record its pid in its slot.
fn worker() -> Res {
    let (counter, pids, slot): (Value<u64>, Array<u32>, usize) = handles()?;
    for _ in 0..PER_WORKER {
        counter.update(|c| *c += 1)?;
    }
    pids.set(slot, std::process::id())?;
    Ok(())
}

/// Victim: take the lock, start an update, raise a flag, and wait to be killed.
fn victim() -> Res {
    let (counter, flag): (Value<u64>, RawValue<u32>) = handles()?;
    let mut guard = counter.lock().map_err(shmkit::Error::from)?;
    *guard += 1_000_000; // half of a two-step update...
    flag.set(1);
    std::thread::sleep(Duration::from_secs(60)); // ...killed before the second step
    *guard -= 1_000_000;
    Ok(())
}

/// Producer: put one 32 MiB item and exit at once.
fn producer() -> Res {
    let q: Queue<Vec<u8>> = handles()?;
    q.put(vec![0x5a; 32 << 20])?;
    Ok(())
}

/// Echo: wait for the start signal, meet at the barrier, then uppercase what comes down the pipe.
fn echo() -> Res {
    let (go, line, conn): (Event, Barrier, Connection) = handles()?;
    go.wait_timeout(Duration::from_secs(30));
    line.wait_timeout(Duration::from_secs(30))?;
    while let Ok(s) = conn.recv::<String>() {
        conn.send(&s.to_uppercase())?;
    }
    Ok(())
}

/// A pool task; the one for 3 kills its own worker with SIGKILL, half-way through.
fn cube_or_die(x: u64) -> u64 {
    if x == 3 {
        let me = shmkit::current_pid().to_string();
        let _ = Command::new("kill").args(["-KILL", &me]).status();
        std::thread::sleep(Duration::from_secs(60));
    }
    x * x * x
}

fn main() -> Res {
    shmkit::init(); // in a pool worker, runs the worker and exits
    match std::env::var(ROLE).as_deref() {
        Ok("echo") => return echo(),
        Ok("worker") => return worker(),
        Ok("victim") => return victim(),
        Ok("producer") => return producer(),
        _ => {}
    }

    println!("1. A Value<u64> and an Array<u32> in shared memory, {WORKERS} worker processes.");
    let counter = Value::new(0u64)?;
    let pids = Array::<u32>::new(WORKERS)?;
    let t0 = Instant::now();
    let kids = (0..WORKERS)
        .map(|slot| start("worker", &serde_json::to_string(&(&counter, &pids, slot))?))
        .collect::<Res<Vec<_>>>()?;
    for mut k in kids {
        let status = k.wait()?;
        if !status.success() {
            return Err(format!("a worker failed: {status}").into());
        }
    }
    println!(
        "   counter = {} (expected {}), in {:.0?}; worker pids: {:?}",
        counter.get()?,
        WORKERS as u64 * PER_WORKER,
        t0.elapsed(),
        pids.to_vec()?
    );

    println!("2. A process is SIGKILLed while holding the lock, half-way through an update.");
    let flag = RawValue::new(0u32)?;
    let mut victim = start("victim", &serde_json::to_string(&(&counter, &flag))?)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while flag.get() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    victim.kill()?;
    victim.wait()?;
    match counter.try_lock_for(Duration::from_secs(1)) {
        Err(TryLockError::OwnerDied(mut guard)) => {
            println!("   next lock: owner died; the data it left: {}", *guard);
            *guard -= 1_000_000; // repair
            guard.mark_consistent();
            println!("   repaired to {} and marked consistent", *guard);
        }
        Ok(_) => println!("   next lock: clean (the victim was killed before it took the lock)"),
        Err(e) => return Err(e.to_string().into()),
    }
    assert!(!matches!(counter.get(), Err(LockError::OwnerDied(_))));

    println!("3. Opening with the wrong type or kind is an error, not a misread:");
    println!(
        "   Value::<f64>::open -> {}",
        Value::<f64>::open(counter.name()).unwrap_err()
    );
    println!(
        "   Array::<u64>::open -> {}",
        Array::<u64>::open(counter.name()).unwrap_err()
    );

    println!(
        "4. A Queue: a child puts a 32 MiB item into a 1 MiB ring and exits before anyone reads it"
    );
    println!("   (in Python, joining that child before get() hangs forever).");
    let q = Queue::<Vec<u8>>::with_capacity(0, 1 << 20)?;
    let t0 = Instant::now();
    let status = start("producer", &serde_json::to_string(&q)?)?.wait()?;
    println!(
        "   child exited ({status}) after {:.0?}; {} item waiting",
        t0.elapsed(),
        q.len()
    );
    let item = q.get()?;
    println!(
        "   got {} bytes, all 0x5a: {}",
        item.len(),
        item.iter().all(|&b| b == 0x5a)
    );

    println!("5. An Event, a Barrier and a Pipe between two processes:");
    let (go, line, (mine, theirs)) = (Event::new()?, Barrier::new(2)?, Pipe::new(true)?);
    let mut child = start("echo", &serde_json::to_string(&(&go, &line, &theirs))?)?;
    go.set();
    let index = line.wait_timeout(Duration::from_secs(30))?;
    mine.send(&"through the pipe")?;
    println!(
        "   met at the barrier (index {index}); the child answers {:?}",
        mine.recv::<String>()?
    );
    mine.close();
    child.wait()?;

    println!("6. A Pool of {WORKERS} worker processes; the task for 3 SIGKILLs its own worker:");
    let pool = shmkit::Pool::new(WORKERS)?;
    let t0 = Instant::now();
    let results: Vec<_> = pool.imap(cube_or_die, 1..=6u64).collect();
    for (x, r) in (1..=6).zip(&results) {
        match r {
            Ok(v) => println!("   {x}^3 = {v}"),
            Err(e) => println!("   {x}: {e}"),
        }
    }
    println!(
        "   (Python's Pool.map hangs forever here.) All answered in {:.0?}; map now: {:?}",
        t0.elapsed(),
        pool.map(cube_or_die, [4u64, 5])?
    );
    pool.close();
    pool.join()?;
    drop(pool); // its queues go with it

    println!("7. Segments in /dev/shm (removed when their creator drops them):");
    for s in shmkit::shm::segments()?
        .iter()
        .filter(|s| s.creator_pid == Some(std::process::id()))
    {
        println!("   {:<60} {:?} {} bytes", s.name, s.kind, s.size);
    }
    Ok(())
}
