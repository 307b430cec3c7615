//! The Python program that hangs, in shmkit, where it finishes:
//!
//! ```python
//! def f(q):
//!     q.put(['hello', 'ss' * 20000])
//!
//! if __name__ == '__main__':
//!     q = Queue()
//!     ps = [Process(target=f, args=(q,)) for _ in range(10)]
//!     for p in ps: p.start()
//!     for p in ps: p.join()     # Python hangs here: each child waits for its item to be read
//!     print(q.get()[0])
//! ```
//!
//! In shmkit `put` returns only when the item is in shared memory, so the children exit at once.
//! The children are this program started again with the queue's name in an environment variable.

use std::error::Error;
use std::process::Command;
use std::time::Instant;

use shmkit::Queue;

const CHILD: &str = "SHMKIT_QUEUE_JOIN_CHILD";

fn f(q: &Queue<(String, String)>) -> Result<(), shmkit::Error> {
    q.put(("hello".to_string(), "ss".repeat(20_000)))?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    if let Ok(name) = std::env::var(CHILD) {
        return Ok(f(&Queue::open(&name)?)?);
    }
    let q = Queue::<(String, String)>::new(0)?;
    let t0 = Instant::now();
    let mut ps = (0..10)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .env(CHILD, q.name())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for p in &mut ps {
        let status = p.wait()?; // Python would wait forever here
        if !status.success() {
            return Err(format!("a child failed: {status}").into());
        }
    }
    println!(
        "all 10 children joined in {:.0?}, before any get; {} items waiting",
        t0.elapsed(),
        q.len()
    );
    let (hello, ss) = q.get()?;
    println!("{hello} ({} bytes of 's' with it)", ss.len());
    Ok(())
}
