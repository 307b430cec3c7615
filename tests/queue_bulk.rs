//! Batches and in-place access: `put_many`, `get_many` (and `try_`/`_timeout`), `put_with`,
//! `get_with`; their interplay with maxsize, spills, closing and leases; and a producer
//! SIGKILLed in the middle of batches, which leaves whole items in order and no duplicate.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::{arg, role, spawn, wait, watchdog};
use shmkit::{GetTimeoutError, PutError, Queue, RawValue, TryGetError};

const T: Duration = Duration::from_secs(30);

#[test]
fn batches_keep_order_and_limits() {
    watchdog(Duration::from_secs(120)); // put_many has no timeout form
    let q = Queue::<u32>::new(0).unwrap();
    q.put_many(&(0..100).collect::<Vec<_>>()).unwrap();
    q.put(100).unwrap();
    assert_eq!(q.len(), 101);
    assert_eq!(
        q.get_many_timeout(10, T).unwrap(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(q.get_timeout(T).unwrap(), 10);
    let rest = q.get_many_timeout(1000, T).unwrap();
    assert_eq!(rest, (11..=100).collect::<Vec<_>>());
    assert!(matches!(q.try_get_many(5), Err(TryGetError::Empty)));
    assert!(matches!(
        q.get_many_timeout(5, Duration::from_millis(30)),
        Err(GetTimeoutError::Timeout)
    ));
    assert!(q.get_many_timeout(0, T).unwrap().is_empty());
}

#[test]
fn a_batch_bigger_than_maxsize_waits_for_a_consumer() {
    watchdog(Duration::from_secs(120)); // put_many has no timeout form
    let q = Queue::<u64>::new(8).unwrap();
    let consumer = {
        let q = q.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 1000 {
                got.extend(q.get_many_timeout(7, T).unwrap());
            }
            got
        })
    };
    q.put_many(&(0..1000).collect::<Vec<_>>()).unwrap();
    assert_eq!(consumer.join().unwrap(), (0..1000).collect::<Vec<_>>());
}

#[test]
fn big_items_in_a_batch_spill_and_a_closed_queue_says_how_many_went_in() {
    watchdog(Duration::from_secs(120)); // put_many has no timeout form
    let q = Queue::<Vec<u8>>::with_capacity(0, 4096).unwrap();
    let items = vec![vec![1u8; 10], vec![2u8; 100_000], vec![3u8; 20]];
    q.put_many(&items).unwrap();
    assert_eq!(
        q.get_many_timeout(10, T).unwrap(),
        vec![vec![1u8; 10]],
        "a spilled item ends a batch"
    );
    assert_eq!(q.get_many_timeout(10, T).unwrap(), vec![vec![2u8; 100_000]]);
    assert_eq!(q.get_many_timeout(10, T).unwrap(), vec![vec![3u8; 20]]);
    q.close().unwrap();
    let e = q.put_many(&items).unwrap_err();
    assert_eq!(e.put, 0);
    assert!(matches!(e.error, PutError::Closed(())));
}

#[test]
fn bytes_are_written_and_read_in_place() {
    let q = Queue::<Vec<u8>>::with_capacity(0, 64 << 10).unwrap();
    q.put_with(5, |buf| buf.copy_from_slice(b"hello")).unwrap();
    q.put_with(40_000, |buf| buf.fill(7)).unwrap(); // more than half the ring: filled, then put
    q.put(b"plain".to_vec()).unwrap();
    assert_eq!(q.get_with(|b| b.to_vec()).unwrap(), b"hello");
    assert_eq!(
        q.get_with(|b| (b.len(), b.iter().all(|&x| x == 7)))
            .unwrap(),
        (40_000, true)
    );
    assert_eq!(q.get_with_timeout(T, <[u8]>::len).unwrap(), 5);
    // Either path reads what the other wrote.
    q.put_with(3, |buf| buf.copy_from_slice(b"abc")).unwrap();
    assert_eq!(q.get_timeout(T).unwrap(), b"abc");
}

#[test]
fn a_batch_takes_returned_leases_first() {
    watchdog(Duration::from_secs(120)); // put_many has no timeout form
    let q = Queue::<u32>::new(0).unwrap();
    q.put_many(&[1, 2, 3]).unwrap();
    let lease = q.get_leased_timeout(T).unwrap();
    lease.release().unwrap();
    assert_eq!(
        q.get_many_timeout(10, T).unwrap(),
        vec![1],
        "the returned item, alone"
    );
    assert_eq!(q.get_many_timeout(10, T).unwrap(), vec![2, 3]);
}

const KILLED: &str = "a_producer_killed_in_the_middle_of_batches_leaves_whole_items_in_order";

#[test]
fn a_producer_killed_in_the_middle_of_batches_leaves_whole_items_in_order() {
    watchdog(Duration::from_secs(120));
    if role().as_deref() == Some("producer") {
        let q = Queue::<(u64, Vec<u8>)>::open(&arg("QUEUE")).unwrap();
        let next = RawValue::<u64>::open(&arg("NEXT")).unwrap();
        let mut n = next.get();
        loop {
            let batch: Vec<(u64, Vec<u8>)> = (n..n + 50)
                .map(|i| (i, vec![i as u8; (i % 300) as usize]))
                .collect();
            // Announced before: a killed batch may or may not be in (all of a chunk or none).
            next.set(n + 50);
            q.put_many(&batch).unwrap();
            n += 50;
        }
    }
    let q = Queue::<(u64, Vec<u8>)>::with_capacity(0, 16 << 10).unwrap();
    let next = RawValue::<u64>::new(0).unwrap();
    let mut last: Option<u64> = None;
    let mut taken = 0u64;
    for round in 0..40 {
        let mut kid = spawn(
            KILLED,
            "producer",
            &[("QUEUE", q.name()), ("NEXT", next.name())],
        );
        // Take a few batches while it runs, then kill it at a random moment.
        for _ in 0..(round % 7 + 1) {
            for (i, v) in q.get_many_timeout(64, T).unwrap() {
                assert_eq!(v, vec![i as u8; (i % 300) as usize], "item {i} torn");
                assert!(last.is_none_or(|l| i > l), "item {i} after {last:?}");
                last = Some(i);
                taken += 1;
            }
        }
        kid.kill().unwrap();
        assert_eq!(wait(&mut kid, T).signal(), Some(9));
    }
    while let Ok(items) = q.try_get_many(1000) {
        for (i, v) in items {
            assert_eq!(v, vec![i as u8; (i % 300) as usize]);
            assert!(last.is_none_or(|l| i > l));
            last = Some(i);
            taken += 1;
        }
    }
    assert!(taken > 100, "too little traffic: {taken}");
}
