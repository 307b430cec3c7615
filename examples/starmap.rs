//! `Pool::starmap`: several arguments per task (Python's `pool.starmap(f, [(a, b), ...])`),
//! and a failing task that does not bring the pool down.
//!
//! Run with `cargo run --example starmap`.

/// `base` raised to `exp`; overflow panics (checked arithmetic).
fn power(base: u64, exp: u32) -> u64 {
    base.checked_pow(exp)
        .unwrap_or_else(|| panic!("{base}^{exp} overflows u64"))
}

fn greet(name: String, times: usize) -> String {
    format!("{}!", vec![name; times].join(" "))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::init(); // in a worker, runs the worker's loop and exits
    let pool = shmkit::Pool::new(2)?;

    let powers = pool.starmap(power, [(2, 10), (3, 4), (10, 3)])?;
    println!("powers: {powers:?}");
    assert_eq!(powers, [1024, 81, 1000]);

    let greetings = pool.starmap(greet, [("hi".to_string(), 2), ("bye".to_string(), 1)])?;
    println!("greetings: {greetings:?}");

    // One task panics: starmap reports that error, after every other task has finished...
    match pool.starmap(power, [(2, 3), (10, 30), (5, 2)]) {
        Ok(v) => return Err(format!("expected an overflow, got {v:?}").into()),
        Err(e) => println!("starmap failed as expected: {e}"),
    }
    // ...and the pool is still there for the next call.
    let again = pool.starmap(power, [(7, 2)])?;
    println!("the pool still works: 7^2 = {}", again[0]);
    assert_eq!(again, [49]);
    pool.close();
    pool.join()?;
    Ok(())
}
