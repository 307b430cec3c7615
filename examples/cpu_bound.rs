//! A CPU-bound loop run sequentially and on a `Pool`, and the speed-up.
//!
//! Each task counts the primes below a bound by trial division (no shared state, little data
//! in and out), so the pool's speed-up is close to the number of cores.
//! Run with `cargo run --release --example cpu_bound`.

use std::time::Instant;

fn count_primes(below: u64) -> u64 {
    (2..below)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::init(); // in a worker, runs the worker's loop and exits
    let bounds: Vec<u64> = (0..16).map(|i| 150_000 + i * 1_000).collect();

    let t0 = Instant::now();
    let sequential: Vec<u64> = bounds.iter().map(|&b| count_primes(b)).collect();
    let seq = t0.elapsed();

    let pool = shmkit::Pool::builder().build()?; // one worker per core
    let t0 = Instant::now();
    let parallel = pool.map(count_primes, bounds.clone())?;
    let par = t0.elapsed();

    assert_eq!(sequential, parallel);
    println!(
        "{} tasks: sequential {seq:.2?}, pool of {} workers {par:.2?}: speed-up {:.2}x",
        bounds.len(),
        pool.processes(),
        seq.as_secs_f64() / par.as_secs_f64()
    );
    pool.close();
    pool.join()?;
    Ok(())
}
