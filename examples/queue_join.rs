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

use std::time::{Duration, Instant};

use shmkit::{Process, Queue};

fn f(q: Queue<(String, String)>) -> Result<(), String> {
    q.put(("hello".to_string(), "ss".repeat(20_000)))
        .map_err(|e| e.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::init(); // in a child, runs `f` and exits
    let q = Queue::<(String, String)>::new(0)?;
    let t0 = Instant::now();
    let mut ps = (0..10)
        .map(|_| Process::start(f, q.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    for p in &mut ps {
        p.join_timeout(Duration::from_secs(30))??; // Python would wait forever here
    }
    println!(
        "all 10 children joined in {:.0?}, before any get; {} items waiting",
        t0.elapsed(),
        q.len()
    );
    let (hello, ss) = q.get_timeout(Duration::from_secs(5))?;
    println!("{hello} ({} bytes of 's' with it)", ss.len());
    Ok(())
}
