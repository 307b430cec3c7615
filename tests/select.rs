//! `shmkit::wait`: Python's `multiprocessing.connection.wait` over queues, pipe ends and
//! processes, with the objects made ready by other processes.

mod common;

use std::time::{Duration, Instant};

use common::watchdog;
use shmkit::{Connection, Pipe, Process, Queue};

const LIMIT: Duration = Duration::from_secs(60);

fn put_later((q, ms): (Queue<u32>, u64)) {
    std::thread::sleep(Duration::from_millis(ms));
    q.put(7).unwrap();
}

fn send_later((conn, ms): (Connection<String>, u64)) {
    std::thread::sleep(Duration::from_millis(ms));
    conn.send("news").unwrap();
}

fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn wait_returns_what_another_process_made_ready() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let (a, b) = (Queue::<u32>::new(0).unwrap(), Queue::<u32>::new(0).unwrap());
    let (mine, theirs) = Pipe::<String>::duplex().unwrap();
    let sleeper = Process::start(nap, 60_000u64).unwrap();

    // Nothing ready: the timeout is honoured and nothing is reported.
    let t0 = Instant::now();
    assert!(shmkit::wait(&[&a, &b, &mine, &sleeper], Some(Duration::from_millis(50))).is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(50));

    // A put in another process wakes the waiter; the item is left where it is.
    let mut p = Process::start(put_later, (b.clone(), 200u64)).unwrap();
    assert_eq!(shmkit::wait(&[&a, &b, &mine, &sleeper], Some(LIMIT)), [1]);
    assert_eq!(b.len(), 1);
    assert_eq!(b.get_timeout(LIMIT).unwrap(), 7);
    p.join_timeout(LIMIT).unwrap();

    // A message on a pipe.
    let mut p = Process::start(send_later, (theirs.clone(), 100u64)).unwrap();
    assert_eq!(shmkit::wait(&[&a, &b, &mine, &sleeper], Some(LIMIT)), [2]);
    assert_eq!(mine.recv_timeout(LIMIT).unwrap(), "news");
    p.join_timeout(LIMIT).unwrap();

    // A process that ends (Python's sentinel), and a closed queue.
    sleeper.kill().unwrap();
    assert_eq!(shmkit::wait(&[&a, &b, &sleeper], Some(LIMIT)), [2]);
    a.close().unwrap();
    assert_eq!(shmkit::wait(&[&a, &b], Some(LIMIT)), [0]);
}

/// A waiter and a getter sleeping on the same queue: a put that wakes the waiter still reaches
/// the getter (the waiter passes the wake-up on), so no getter sleeps beside an item.
#[test]
fn a_waiter_never_steals_a_getters_wake_up() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    for _ in 0..20 {
        let q = Queue::<u32>::new(0).unwrap();
        let getter = {
            let q = q.clone();
            std::thread::spawn(move || q.get_timeout(Duration::from_secs(10)))
        };
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || shmkit::wait(&[&q], Some(Duration::from_millis(300))))
        };
        std::thread::sleep(Duration::from_millis(20)); // both asleep
        let t0 = Instant::now();
        q.put(1).unwrap();
        assert_eq!(getter.join().unwrap().unwrap(), 1);
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the getter was left asleep"
        );
        waiter.join().unwrap();
    }
}
