//! `Pool::map`: Python's `Pool(4).map(square, range(1, 11))`.
//!
//! Run with `cargo run --example pool_map`.

fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::init(); // in a worker, runs the worker's loop and exits
    let pool = shmkit::Pool::new(4)?;
    let squares = pool.map(square, 1..=10)?;
    println!("{squares:?}");
    assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);

    // The same with explicit chunks of 3 items per task, and lazily, in order.
    let lazily: Vec<u64> = pool
        .chunksize(3)
        .imap(square, 1..=10)
        .collect::<Result<_, _>>()?;
    assert_eq!(lazily, squares);
    println!("workers: {:?}", pool.pids());
    pool.close();
    pool.join()?;
    Ok(())
}
