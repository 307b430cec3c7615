//! A pool whose workers are separate processes reaching one Redis: here all on this machine,
//! but any host that runs this same program can join.
//!
//! ```text
//! redis-server --save '' --appendonly no &            # or any Redis 6.2+ / Valkey
//! cargo run --release --features redis --example cluster
//! ```
//!
//! The parent starts `N` workers (default 3) as copies of itself with `SHMKIT_REDIS_WORKER`
//! set, so `shmkit::init()` serves tasks in them instead of running `main`. On another
//! machine, join the same pool with:
//!
//! ```text
//! SHMKIT_REDIS_WORKER=redis://<redis host>:6379/ SHMKIT_REDIS_POOL=cluster ./cluster
//! ```
//!
//! `SHMKIT_REDIS_URL` picks the server (default `redis://127.0.0.1:6379/`); the first
//! argument is the number of workers.

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use shmkit::redis::{LEASE_ENV, PARENT_ENV, POOL_ENV, RedisPool, WORKER_ENV};

/// Steps of the Collatz sequence from `n` to 1, and which process computed it.
#[shmkit::task]
fn collatz(n: u64) -> (u32, u32) {
    let (mut n, mut steps) = (n, 0);
    while n > 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    (steps, std::process::id())
}

#[shmkit::task]
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    x * x
}

fn start_worker(url: &str) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .env(WORKER_ENV, url)
        .env(POOL_ENV, "cluster")
        // A short lease, so the kill below is noticed in 2 s (the default is 30 s).
        .env(LEASE_ENV, "2000")
        // Workers end with this process, even if it is killed (Ctrl-C) before it stops them.
        .env(PARENT_ENV, std::process::id().to_string())
        .spawn()
}

/// The worker processes, stopped however `main` ends.
struct Workers(Vec<Child>);

impl Workers {
    /// Kills the first worker and waits for it; its pid.
    fn kill_one(&mut self) -> std::io::Result<u32> {
        let mut victim = self.0.remove(0);
        let killed = victim.kill();
        victim.wait()?;
        killed.map(|()| victim.id())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.0 {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::init(); // in a worker (SHMKIT_REDIS_WORKER set) this serves tasks and never returns
    let url =
        std::env::var("SHMKIT_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(3);
    let pool = match RedisPool::connect(&url, "cluster") {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("cannot reach Redis at {url}: {e}");
            eprintln!(
                "start one with `redis-server --save '' --appendonly no &`, or set SHMKIT_REDIS_URL"
            );
            std::process::exit(1);
        }
    };
    let mut workers = Workers(Vec::new());
    for _ in 0..n {
        workers.0.push(start_worker(&url)?);
    }
    println!(
        "pool `cluster` on {url}: {n} worker processes ({:?})",
        workers.0.iter().map(Child::id).collect::<Vec<_>>()
    );

    // map: 100,000 numbers in chunks; results come back in order.
    let began = Instant::now();
    let steps = pool.map(collatz, 1..=100_000u64)?;
    let (longest, at) = steps
        .iter()
        .enumerate()
        .map(|(i, &(s, _))| (s, i + 1))
        .max()
        .unwrap_or_default();
    let mut by_worker = BTreeMap::new();
    for &(_, pid) in &steps {
        *by_worker.entry(pid).or_insert(0u32) += 1;
    }
    println!(
        "map(collatz, 1..=100000) in {:.0?}: longest chain {longest} steps, from {at}; \
         items per worker {by_worker:?}",
        began.elapsed()
    );
    assert_eq!(steps[26].0, 111, "27 takes 111 steps");

    // A worker killed in the middle of a map: with retries, its task runs again elsewhere.
    let pool = pool.retries(2).chunksize(5);
    let squares = pool.map_async(slow_square, 0..200u64);
    std::thread::sleep(Duration::from_millis(300));
    let victim = workers.kill_one()?;
    println!("killed worker {victim} mid-map; its task is taken over when its 2 s lease runs out");
    let squares = squares.get_timeout(Duration::from_secs(60))?;
    assert_eq!(squares, (0..200u64).map(|x| x * x).collect::<Vec<_>>());
    println!("all 200 squares arrived, in order");
    Ok(())
}
