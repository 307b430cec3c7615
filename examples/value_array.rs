//! The classic demo from Python's multiprocessing docs, across real processes:
//!
//! ```python
//! def f(n, a):
//!     n.value = 3.14
//!     a[0] = 5
//! num = Value('d', 0.0); arr = Array('i', range(10))
//! p = Process(target=f, args=(num, arr)); p.start(); p.join()
//! print(num.value); print(arr[:])
//! ```
//!
//! The handles travel to the child as their names (they implement serde); the child opens the
//! same shared memory with full type checks.

use std::time::Duration;

use shmkit::{Array, Process, Value};

#[allow(clippy::approx_constant)] // 3.14 is the value the Python demo stores, not an attempt at pi
fn f((num, arr): (Value<f64>, Array<i32>)) -> Result<(), String> {
    num.set(3.14).map_err(|e| e.to_string())?;
    arr.set(0, 5).map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::init(); // in the child, runs `f` and exits
    let num = Value::new(0.0f64)?;
    let arr = Array::from_slice(&(0..10).collect::<Vec<i32>>())?;
    let mut p = Process::start(f, (num.clone(), arr.clone()))?;
    p.join_timeout(Duration::from_secs(30))??;
    println!("{}", num.get()?);
    println!("{:?}", arr.to_vec()?);
    Ok(())
}
