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
//! The child is this program started again with the handles (serialised as their names) in
//! an environment variable.

use std::error::Error;
use std::process::Command;

use shmkit::{Array, Value};

const CHILD: &str = "SHMKIT_VALUE_ARRAY_CHILD";

#[allow(clippy::approx_constant)] // 3.14 is the value the Python demo stores, not an attempt at pi
fn f(num: &Value<f64>, arr: &Array<i32>) -> Result<(), Box<dyn Error>> {
    num.set(3.14)?;
    arr.set(0, 5)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    if let Ok(handles) = std::env::var(CHILD) {
        let (num, arr): (Value<f64>, Array<i32>) = serde_json::from_str(&handles)?;
        return f(&num, &arr);
    }
    let num = Value::new(0.0f64)?;
    let arr = Array::from_slice(&(0..10).collect::<Vec<i32>>())?;
    let status = Command::new(std::env::current_exe()?)
        .env(CHILD, serde_json::to_string(&(&num, &arr))?)
        .status()?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }
    println!("{}", num.get()?);
    println!("{:?}", arr.to_vec()?);
    Ok(())
}
