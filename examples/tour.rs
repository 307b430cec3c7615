//! A tour of shmkit: shared values and arrays across real processes, a lock that survives a
//! process killed while holding it, type-checked opening, a queue whose producers never get
//! stuck at exit and whose leased jobs survive a killed consumer, the primitives, a pool that survives a worker dying mid-task, and cleanup.
//!
//! Run: `cargo run --release --example tour`.

use std::time::{Duration, Instant};

use shmkit::{
    Array, Barrier, Connection, Dict, Event, List, LockError, LockTimeoutError, Pipe, Pool,
    Process, Queue, RawValue, Value,
};

const WORKERS: usize = 4;
const PER_WORKER: u64 = 50_000;
const LIMIT: Duration = Duration::from_secs(30);

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn worker((counter, pids, slot): (Value<u64>, Array<u32>, usize)) -> Result<(), String> {
    for _ in 0..PER_WORKER {
        counter.update(|c| *c += 1).map_err(|e| e.to_string())?;
    }
    pids.set(slot, shmkit::current_pid())
        .map_err(|e| e.to_string())
}

/// Takes the lock, does half of a two-step update, raises a flag, and waits to be killed.
fn victim((counter, flag): (Value<u64>, RawValue<u32>)) {
    let mut guard = counter.lock().expect("a clean lock");
    *guard += 1_000_000;
    flag.set(1);
    std::thread::sleep(Duration::from_secs(60)); // killed here, before the second step
    *guard -= 1_000_000;
}

/// Takes a job under a lease, raises a flag, and waits to be killed before it can ack.
fn lease_holder((jobs, flag): (Queue<String>, RawValue<u32>)) {
    let job = jobs.get_leased_timeout(LIMIT).expect("a job");
    flag.set(1);
    std::thread::sleep(Duration::from_secs(60)); // killed here
    let _ = job.ack();
}

fn producer(q: Queue<Vec<u8>>) -> Result<(), String> {
    q.put(vec![0x5a; 32 << 20]).map_err(|e| e.to_string())
}

/// Waits for the start signal, meets at the barrier, then uppercases what comes down the pipe.
fn echo((go, line, conn): (Event, Barrier, Connection<String>)) {
    go.wait_timeout(LIMIT);
    let _ = line.wait_timeout(LIMIT);
    while let Ok(s) = conn.recv() {
        let _ = conn.send(&s.to_uppercase());
    }
}

/// Counts words into a shared dict (one atomic update each) and notes its pid in a list.
fn count_words((words, seen, text): (Dict<String, u32>, List<u32>, String)) -> Result<(), String> {
    for w in text.split_whitespace() {
        words
            .update(w.to_string(), |n| Some(n.unwrap_or(0) + 1))
            .map_err(|e| e.to_string())?;
    }
    seen.push(shmkit::current_pid()).map_err(|e| e.to_string())
}

/// A pool task; the one for 3 kills its own worker half-way through.
fn cube_or_die(x: u64) -> u64 {
    if x == 3 {
        std::process::abort();
    }
    x * x * x
}

fn main() -> Res {
    shmkit::init(); // in a child or pool worker, runs its function and exits

    println!("1. A Value<u64> and an Array<u32> in shared memory, {WORKERS} worker processes.");
    let (counter, pids) = (Value::new(0u64)?, Array::<u32>::new(WORKERS)?);
    let t0 = Instant::now();
    let kids = (0..WORKERS)
        .map(|slot| Process::start(worker, (counter.clone(), pids.clone(), slot)))
        .collect::<Result<Vec<_>, _>>()?;
    for mut k in kids {
        k.join_timeout(LIMIT)??;
    }
    let (total, expected, took) = (counter.get()?, WORKERS as u64 * PER_WORKER, t0.elapsed());
    println!(
        "   counter = {total} (expected {expected}) in {took:.0?}; pids {:?}",
        pids.to_vec()?
    );

    println!("2. A process is SIGKILLed while holding the lock, half-way through an update.");
    let flag = RawValue::new(0u32)?;
    let victim = Process::start(victim, (counter.clone(), flag.clone()))?;
    let deadline = Instant::now() + LIMIT;
    while flag.get() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    victim.kill()?;
    match counter.lock_timeout(Duration::from_secs(1)) {
        Err(LockTimeoutError::OwnerDied(mut guard)) => {
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
    let (as_f64, as_array) = (
        Value::<f64>::open(counter.name()),
        Array::<u64>::open(counter.name()),
    );
    println!("   Value::<f64>::open -> {}", as_f64.unwrap_err());
    println!("   Array::<u64>::open -> {}", as_array.unwrap_err());

    println!("4. A child puts a 32 MiB item into a 1 MiB ring and exits before anyone reads it");
    println!("   (in Python, joining that child before get() hangs forever).");
    let q = Queue::<Vec<u8>>::with_capacity(0, 1 << 20)?;
    let t0 = Instant::now();
    Process::start(producer, q.clone())?.join_timeout(LIMIT)??;
    println!(
        "   joined after {:.0?}; {} item waiting",
        t0.elapsed(),
        q.len()
    );
    let item = q.get_timeout(LIMIT)?;
    let intact = item.iter().all(|&b| b == 0x5a);
    println!("   got {} bytes, all 0x5a: {intact}", item.len());

    println!("   A consumer takes a job under a lease and is SIGKILLed before its ack:");
    let jobs = Queue::<String>::new(0)?;
    jobs.put("resize photo 17".into())?;
    jobs.put("resize photo 18".into())?;
    let flag = RawValue::new(0u32)?;
    let mut holder = Process::start(lease_holder, (jobs.clone(), flag.clone()))?;
    let deadline = Instant::now() + LIMIT;
    while flag.get() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    holder.kill()?;
    if let Err(shmkit::ProcessTimeoutError::Timeout) = holder.join_timeout(LIMIT) {
        return Err("the killed consumer did not end".into()); // any other error: it died
    }
    let job = jobs.get_leased_timeout(LIMIT)?;
    println!(
        "   the next consumer gets {:?} (delivery {}), ahead of the job put after it",
        *job,
        job.deliveries()
    );
    job.ack()?;
    jobs.get_leased_timeout(LIMIT)?.ack()?;

    println!("5. An Event, a Barrier and a Pipe between two processes:");
    let (go, line, (mine, theirs)) = (Event::new()?, Barrier::new(2)?, Pipe::<String>::duplex()?);
    let mut child = Process::start(echo, (go.clone(), line.clone(), theirs.clone()))?;
    go.set();
    let index = line.wait_timeout(LIMIT)?;
    mine.send("through the pipe")?;
    let answer = mine.recv_timeout(LIMIT)?;
    println!("   met at the barrier (index {index}); the child answers {answer:?}");
    mine.close();
    child.join_timeout(LIMIT)?;

    println!("   A Dict and a List shared by {WORKERS} processes (Manager().dict(), no manager):");
    let (words, seen) = (Dict::<String, u32>::new()?, List::<u32>::new()?);
    let kids = (0..WORKERS)
        .map(|_| {
            let text = "the cat and the hat and the bat".to_string();
            Process::start(count_words, (words.clone(), seen.clone(), text))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for mut k in kids {
        k.join_timeout(LIMIT)??;
    }
    let mut counts = words.items()?;
    counts.sort();
    println!("   word counts {counts:?} from pids {:?}", seen.to_vec()?);

    println!("6. A Pool of {WORKERS} worker processes; the task for 3 kills its own worker:");
    let pool = Pool::new(WORKERS)?;
    let t0 = Instant::now();
    for (x, r) in (1..=6u64).zip(pool.imap(cube_or_die, 1..=6u64)) {
        match r {
            Ok(v) => println!("   {x}^3 = {v}"),
            Err(e) => println!("   {x}: {e}"),
        }
    }
    let (again, took) = (pool.map(cube_or_die, [4u64, 5])?, t0.elapsed());
    println!("   (Python's Pool.map hangs here.) In {took:.0?}; then map([4, 5]) = {again:?}");
    pool.close();
    pool.join_timeout(LIMIT)?;
    drop(pool); // its queues go with it

    println!("7. Segments in /dev/shm (removed when their creator drops them):");
    let mine = |s: &&shmkit::shm::SegmentInfo| s.creator_pid == Some(shmkit::current_pid());
    for s in shmkit::shm::segments()?.iter().filter(mine) {
        println!("   {:<60} {:?} {} bytes", s.name, s.kind, s.size);
    }
    Ok(())
}
