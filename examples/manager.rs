//! Python's `Manager().dict()` and `.list()` tutorial, in shmkit:
//!
//! ```python
//! def f(d, l, i):
//!     d[i] = i + 1
//!     l.append(i)
//!
//! with Manager() as m:
//!     d, l = m.dict(), m.list()
//!     ps = [Process(target=f, args=(d, l, i)) for i in range(10)]
//!     for p in ps: p.start()
//!     for p in ps: p.join()
//!     print(d, l)
//! ```
//!
//! There is no manager process: the dict and the list live in shared memory, and every process
//! changes them directly under their own robust lock. And `d[k] += 1` from many processes, a
//! lost-update race with Python's Manager, is one atomic `update` here.

use std::time::Duration;

use shmkit::{Dict, List, Process};

fn f((d, l, i): (Dict<u32, u32>, List<u32>, u32)) -> Result<(), String> {
    d.insert(i, i + 1).map_err(|e| e.to_string())?;
    l.push(i).map_err(|e| e.to_string())?;
    // d["hits"] += 1, atomically.
    d.update(1000, |hits| Some(hits.unwrap_or(0) + 1))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::init(); // in a child, runs `f` and exits
    let (d, l) = (Dict::<u32, u32>::new()?, List::<u32>::new()?);
    let ps = (0..10)
        .map(|i| Process::start(f, (d.clone(), l.clone(), i)))
        .collect::<Result<Vec<_>, _>>()?;
    for mut p in ps {
        p.join_timeout(Duration::from_secs(30))??;
    }
    let hits = d.remove(&1000)?.unwrap_or(0);
    let mut pairs = d.items()?;
    pairs.sort();
    let mut items = l.to_vec()?;
    println!("dict: {pairs:?}");
    println!("list (in the order the processes appended): {items:?}");
    println!("hits: {hits} (10 processes, one atomic update each)");
    items.sort();
    assert_eq!(items, (0..10).collect::<Vec<_>>());
    assert_eq!(pairs, (0..10).map(|i| (i, i + 1)).collect::<Vec<_>>());
    assert_eq!(hits, 10);
    Ok(())
}
