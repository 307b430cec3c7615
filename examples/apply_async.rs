//! `Pool::apply_async` with callbacks: Python's
//! `pool.apply_async(f, (x,), callback=..., error_callback=...)`.
//!
//! Tasks of different lengths are submitted at once; their callbacks run in this (the parent)
//! process as each finishes, so the results print in the order of completion, not submission.
//! Run with `cargo run --example apply_async`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Sleeps `ms` milliseconds, then returns it; 0 is refused.
fn nap(ms: u64) -> Result<u64, String> {
    if ms == 0 {
        return Err("cannot nap for 0 ms".into());
    }
    std::thread::sleep(Duration::from_millis(ms));
    Ok(ms)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::init(); // in a worker, runs the worker's loop and exits
    let pool = shmkit::Pool::new(4)?;
    let finished = Arc::new(Mutex::new(Vec::new()));
    let results: Vec<_> = [300u64, 100, 0, 200, 50]
        .into_iter()
        .map(|ms| {
            let (ok, err) = (finished.clone(), finished.clone());
            pool.apply_async(nap, ms)
                .on_success(move |v| {
                    println!("callback: napped {:?} ms", v.as_ref().ok());
                    ok.lock().unwrap().push(ms);
                })
                .on_error(move |e| {
                    println!("error callback: {e}");
                    err.lock().unwrap().push(ms);
                })
        })
        .collect();
    for r in &results {
        // The callbacks have run by the time `get` returns.
        let _ = r.get_timeout(Duration::from_secs(30));
    }
    let order = finished.lock().unwrap().clone();
    println!("order of completion: {order:?}");
    assert_eq!(order.len(), 5);
    assert_eq!(order[0], 0, "the refused task fails first");
    assert_eq!(order[4], 300, "the longest nap finishes last");
    assert!(results[2].is_successful() == Some(false));
    pool.close();
    pool.join()?;
    Ok(())
}
