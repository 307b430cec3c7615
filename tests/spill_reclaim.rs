//! A producer killed while it waits for room, its item already spilled to a segment of its
//! own, leaves that spill behind; the queue removes it the next time a live producer spills,
//! without touching the spills its frames refer to.

mod common;

use std::time::Duration;

use common::{arg, role, spawn, unique, wait, wait_until, watchdog};
use shmkit::Queue;

const LIMIT: Duration = Duration::from_secs(30);

fn spills_of(queue: &str) -> Vec<String> {
    let prefix = format!("shmkit-{queue}.spill-");
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.starts_with(&prefix))
        .collect();
    v.sort();
    v
}

#[test]
fn a_killed_producers_spill_is_reclaimed_and_committed_spills_are_kept() {
    shmkit::init();
    if role().as_deref() == Some("blocked-producer") {
        let q: Queue<Vec<u8>> = Queue::open(&arg("QUEUE")).unwrap();
        q.put(vec![9; 100_000]).unwrap(); // spills, then waits for room: killed here
        unreachable!("the ring has no room for the reference");
    }
    watchdog(Duration::from_secs(120));
    let name = unique("spill-reclaim");
    let q: Queue<Vec<u8>> = Queue::create(&name, 0, 4096).unwrap();
    // One committed spill, then small items until the ring has no room for another frame.
    q.put_timeout(vec![1; 50_000], LIMIT).unwrap();
    let committed = spills_of(&name);
    assert_eq!(committed.len(), 1);
    let mut small = 0;
    while q.try_put(vec![2]).is_ok() {
        small += 1;
    }
    assert!(small > 10);

    let mut child = spawn(
        "a_killed_producers_spill_is_reclaimed_and_committed_spills_are_kept",
        "blocked-producer",
        &[("QUEUE", &name)],
    );
    wait_until("the blocked producer's spill", LIMIT, || {
        spills_of(&name).len() == 2
    });
    std::thread::sleep(Duration::from_millis(200)); // let it finish writing and go to sleep
    child.kill().unwrap();
    wait(&mut child, LIMIT);
    let orphan: Vec<String> = spills_of(&name)
        .into_iter()
        .filter(|s| !committed.contains(s))
        .collect();
    assert_eq!(
        orphan.len(),
        1,
        "the killed producer's spill is left behind"
    );

    // Make room and spill again (a second later: a process looks at most once a second).
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(q.get_timeout(LIMIT).unwrap(), vec![1; 50_000]);
    q.put_timeout(vec![3; 60_000], LIMIT).unwrap();
    let now = spills_of(&name);
    assert!(
        !now.contains(&orphan[0]),
        "the orphan was reclaimed: {now:?}"
    );
    assert_eq!(now.len(), 1, "only the new item's spill: {now:?}");

    // Every committed item is still there, in order; the killed producer's never was.
    for _ in 0..small {
        assert_eq!(q.get_timeout(LIMIT).unwrap(), vec![2]);
    }
    assert_eq!(q.get_timeout(LIMIT).unwrap(), vec![3; 60_000]);
    assert!(q.try_get().is_err());
    drop(q);
    assert!(spills_of(&name).is_empty());
}
