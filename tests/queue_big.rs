//! Big items (64 KiB and more) are copied in and out of the ring outside the queue's lock,
//! under a claim (see `src/queue/claim.rs`). Here: a consumer or producer SIGKILLed in the
//! middle of such a copy loses and duplicates nothing and leaves nothing stuck; a closure that
//! panics leaves the queue as it was; waiting on the queue from inside the closure is an
//! error, not a hang; closing during a put fails that put; and several consumers share big
//! items exactly once, in order.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::{arg, role, spawn, wait, wait_until, watchdog};
use shmkit::{GetError, GetTimeoutError, PutError, Queue, RawValue, TryGetError};

const T: Duration = Duration::from_secs(30);
const BIG: usize = 300_000;

fn big(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31) ^ tag).collect()
}

/// In a child: the parent's queue and flag.
fn opened() -> (Queue<Vec<u8>>, RawValue<u32>) {
    (
        Queue::open(&arg("QUEUE")).unwrap(),
        RawValue::open(&arg("FLAG")).unwrap(),
    )
}

/// In the parent: a queue whose ring holds several big items, and a flag at 0.
fn fresh() -> (Queue<Vec<u8>>, RawValue<u32>) {
    (
        Queue::with_capacity(0, 4 << 20).unwrap(),
        RawValue::new(0).unwrap(),
    )
}

/// Starts `test` again as `role`, with the queue's and the flag's names.
fn child(test: &str, role: &str, q: &Queue<Vec<u8>>, flag: &RawValue<u32>) -> std::process::Child {
    spawn(test, role, &[("QUEUE", q.name()), ("FLAG", flag.name())])
}

#[test]
fn a_consumer_killed_while_it_reads_a_big_item_leaves_it_for_the_next() {
    const TEST: &str = "a_consumer_killed_while_it_reads_a_big_item_leaves_it_for_the_next";
    watchdog(Duration::from_secs(120));
    if role().as_deref() == Some("reader") {
        let (q, flag) = opened();
        q.get_with(|_| {
            flag.set(1);
            std::thread::sleep(Duration::from_secs(100));
        })
        .unwrap();
        return;
    }
    let (q, flag) = fresh();
    q.put_bytes(&big(1, BIG)).unwrap();
    q.put_bytes(&big(2, BIG)).unwrap();
    let mut kid = child(TEST, "reader", &q, &flag);
    wait_until("the reader to hold the item", T, || flag.get() == 1);
    // While it reads, the item is its alone: no other get takes it (or the next one, which
    // would break the order).
    assert!(matches!(
        q.get_timeout(Duration::from_millis(100)),
        Err(GetTimeoutError::Timeout)
    ));
    assert_eq!(q.len(), 2);
    kid.kill().unwrap();
    assert_eq!(wait(&mut kid, T).signal(), Some(9));
    // The dead reader's claim is dropped: both items come, whole and in order.
    assert_eq!(q.get_timeout(T).unwrap(), big(1, BIG));
    assert_eq!(q.get_timeout(T).unwrap(), big(2, BIG));
    assert!(matches!(q.try_get(), Err(TryGetError::Empty)));
}

#[test]
fn a_producer_killed_while_it_writes_a_big_item_puts_nothing() {
    const TEST: &str = "a_producer_killed_while_it_writes_a_big_item_puts_nothing";
    watchdog(Duration::from_secs(120));
    if role().as_deref() == Some("writer") {
        let (q, flag) = opened();
        q.put_with(BIG, |buf| {
            buf[..BIG / 2].fill(0xee); // half written when it dies
            flag.set(1);
            std::thread::sleep(Duration::from_secs(100));
        })
        .unwrap();
        return;
    }
    let (q, flag) = fresh();
    q.put_bytes(b"before").unwrap();
    let mut kid = child(TEST, "writer", &q, &flag);
    wait_until("the writer to hold its space", T, || flag.get() == 1);
    // Gets go on while a put writes outside the lock; other puts wait for it.
    assert_eq!(q.get_timeout(T).unwrap(), b"before");
    assert!(matches!(
        q.get_timeout(Duration::from_millis(100)),
        Err(GetTimeoutError::Timeout)
    ));
    kid.kill().unwrap();
    assert_eq!(wait(&mut kid, T).signal(), Some(9));
    // Nothing of the dead writer's item was put; the next put takes its space.
    q.put_bytes(&big(3, BIG)).unwrap();
    q.put_bytes(b"after").unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q.get_timeout(T).unwrap(), big(3, BIG));
    assert_eq!(q.get_timeout(T).unwrap(), b"after");
    assert!(matches!(q.try_get(), Err(TryGetError::Empty)));
}

#[test]
fn a_big_put_waits_behind_a_live_writer_and_follows_it() {
    watchdog(Duration::from_secs(120));
    let q = Queue::<Vec<u8>>::with_capacity(0, 4 << 20).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let writer = {
        let q = q.clone();
        std::thread::spawn(move || {
            q.put_with(BIG, |buf| {
                buf.copy_from_slice(&big(4, BIG));
                held_tx.send(()).unwrap();
                rx.recv_timeout(T).unwrap();
            })
        })
    };
    held_rx.recv_timeout(T).unwrap();
    // Another put must not overtake the reservation: it waits, then follows.
    assert!(matches!(
        q.put_timeout(big(5, BIG), Duration::from_millis(100)),
        Err(shmkit::PutTimeoutError::Timeout(_))
    ));
    let second = {
        let q = q.clone();
        std::thread::spawn(move || q.put_timeout(big(5, BIG), T))
    };
    std::thread::sleep(Duration::from_millis(20));
    tx.send(()).unwrap();
    writer.join().unwrap().unwrap();
    second.join().unwrap().unwrap();
    assert_eq!(q.get_timeout(T).unwrap(), big(4, BIG));
    assert_eq!(q.get_timeout(T).unwrap(), big(5, BIG));
}

#[test]
fn a_closure_that_panics_on_a_big_item_leaves_the_queue_as_it_was() {
    watchdog(Duration::from_secs(120)); // put_with and put_bytes have no timeout form
    let q = Queue::<Vec<u8>>::with_capacity(0, 4 << 20).unwrap();
    q.put_bytes(&big(6, BIG)).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        q.get_with(|_| panic!("reader gives up")).unwrap();
    }));
    assert!(caught.is_err());
    assert_eq!(q.len(), 1, "the item stays");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        q.put_with(BIG, |buf| {
            buf.fill(1);
            panic!("writer gives up")
        })
        .unwrap();
    }));
    assert!(caught.is_err());
    assert_eq!(q.len(), 1, "nothing was put");
    // Neither claim is left behind: both sides work at once.
    q.put_bytes(&big(7, BIG)).unwrap();
    assert_eq!(q.get_timeout(T).unwrap(), big(6, BIG));
    assert_eq!(q.get_timeout(T).unwrap(), big(7, BIG));
}

#[test]
fn waiting_on_the_queue_inside_a_big_items_closure_is_an_error_not_a_hang() {
    watchdog(Duration::from_secs(120));
    let q = Queue::<Vec<u8>>::with_capacity(0, 4 << 20).unwrap();
    q.put_bytes(&big(8, BIG)).unwrap();
    q.put_bytes(b"next").unwrap();
    let inner = q.get_with(|_| q.get()).unwrap();
    assert!(
        matches!(inner, Err(GetError::Failed(_))),
        "a get inside get_with: {inner:?}"
    );
    // The outer get took its item all the same.
    assert_eq!(q.len(), 1);
    let mut inner = None;
    q.put_with(BIG, |buf| {
        buf.fill(2);
        inner = Some(q.put_bytes(b"inner"));
    })
    .unwrap();
    assert!(
        matches!(inner, Some(Err(PutError::Failed { .. }))),
        "a put inside put_with: {inner:?}"
    );
    assert_eq!(q.get_timeout(T).unwrap(), b"next");
    assert_eq!(q.get_timeout(T).unwrap(), vec![2u8; BIG]);
}

#[test]
fn closing_the_queue_while_a_big_put_writes_fails_that_put() {
    watchdog(Duration::from_secs(120)); // put_with and put_bytes have no timeout form
    let q = Queue::<Vec<u8>>::with_capacity(0, 4 << 20).unwrap();
    let r = q.put_with(BIG, |buf| {
        buf.fill(3);
        q.close().unwrap();
    });
    assert!(matches!(r, Err(PutError::Closed(..))), "{r:?}");
    assert!(matches!(q.try_get(), Err(TryGetError::Closed)));
}

#[test]
fn consumers_share_big_items_exactly_once_and_in_order() {
    watchdog(Duration::from_secs(120));
    let q = Queue::<Vec<u8>>::with_capacity(4, 2 << 20).unwrap();
    const N: usize = 300;
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match q.get_timeout(T) {
                        Ok(v) => {
                            let i = u32::from_le_bytes(v[..4].try_into().unwrap()) as usize;
                            assert_eq!(v[4..], big(i as u8, v.len() - 4)[..], "item {i} torn");
                            got.push(i);
                        }
                        Err(GetTimeoutError::Closed) => return got,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for i in 0..N {
        // 60 to 260 kB: either side of the threshold for copying outside the lock.
        let len = 60_000 + (i * 7919) % 200_000;
        let mut item = (i as u32).to_le_bytes().to_vec();
        item.extend(big(i as u8, len));
        q.put_timeout(item, T).unwrap();
    }
    q.close().unwrap();
    let mut all = Vec::new();
    for c in consumers {
        let got = c.join().unwrap();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
        all.extend(got);
    }
    all.sort_unstable();
    assert_eq!(all, (0..N).collect::<Vec<_>>());
}
