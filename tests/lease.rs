//! Leased gets: ack, release, a dropped lease, a holder killed with SIGKILL, the order items
//! come back in, dead letters, `JoinableQueue`'s task_done as the ack, a closed queue with
//! leases out, full lease slots, big and spilled items, and hostile slot bytes.

mod common;

use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::{arg, role, spawn, wait, wait_until, watchdog};
use serde::{Deserialize, Serialize};
use shmkit::{
    AckError, GetTimeoutError, JoinableQueue, Queue, RawValue, TaskDoneError, TryGetError,
};

const T: Duration = Duration::from_secs(10);

fn spills_of(q: &str) -> usize {
    let prefix = format!("shmkit-{q}.spill-");
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        })
        .count()
}

#[test]
fn an_acked_item_leaves_and_a_dropped_one_comes_back_ahead_of_newer_ones() {
    let q = Queue::<String>::new(0).unwrap();
    q.put("a".into()).unwrap();
    q.put("b".into()).unwrap();

    let lease = q.get_leased_timeout(T).unwrap();
    assert_eq!((lease.as_str(), lease.deliveries()), ("a", 1));
    assert_eq!(q.len(), 1, "the leased item is not waiting");
    assert_eq!(q.lease_counts().held, 1);
    drop(lease);
    assert_eq!(q.len(), 2, "a dropped lease hands its item back");
    assert_eq!(q.lease_counts().returned, 1);

    let lease = q.get_leased_timeout(T).unwrap();
    assert_eq!((lease.as_str(), lease.deliveries()), ("a", 2));
    assert_eq!(lease.ack().unwrap(), "a");
    assert_eq!(q.get_timeout(T).unwrap(), "b");
    assert!(matches!(q.try_get_leased(), Err(TryGetError::Empty)));
    let c = q.lease_counts();
    assert_eq!((c.held, c.returned), (0, 0));
}

#[test]
fn released_items_come_back_in_put_order_before_the_ring() {
    let q = Queue::<u32>::new(0).unwrap();
    for i in 1..=5 {
        q.put(i).unwrap();
    }
    let l1 = q.get_leased_timeout(T).unwrap();
    let l2 = q.get_leased_timeout(T).unwrap();
    let l3 = q.get_leased_timeout(T).unwrap();
    l3.release().unwrap();
    l1.release().unwrap();
    // A plain get takes handed-back items first too, oldest first.
    assert_eq!(q.get_timeout(T).unwrap(), 1);
    let again = q.get_leased_timeout(T).unwrap();
    assert_eq!((*again, again.deliveries()), (3, 2));
    assert_eq!(q.get_timeout(T).unwrap(), 4);
    assert_eq!(*l2, 2);
    l2.ack().unwrap();
    again.ack().unwrap();
    assert_eq!(q.get_timeout(T).unwrap(), 5);
}

#[test]
fn a_settled_lease_cannot_be_acked_twice_through_a_stale_id() {
    // A lease dropped and redelivered: the new lease is the slot's; only it can ack.
    let q = Queue::<u32>::new(0).unwrap();
    q.put(7).unwrap();
    let first = q.get_leased_timeout(T).unwrap();
    first.release().unwrap();
    let second = q.get_leased_timeout(T).unwrap();
    assert_eq!(second.deliveries(), 2);
    second.ack().unwrap();
    assert!(q.is_empty());
    assert_eq!(q.lease_counts().held, 0);
}

#[test]
fn an_item_past_its_last_delivery_goes_to_the_dead_letter_queue() {
    let q = Queue::<String>::new(0).unwrap();
    let dead = Queue::<String>::new(0).unwrap();
    assert_eq!(q.max_deliveries(), Some(20));
    q.set_max_deliveries(Some(2)).unwrap();
    assert!(q.set_max_deliveries(Some(0)).is_err());
    q.set_dead_letter(Some(&dead)).unwrap();
    assert!(q.set_dead_letter(Some(&q)).is_err(), "not itself");
    q.put("poison".into()).unwrap();
    q.put("fine".into()).unwrap();

    for n in 1..=2 {
        let lease = q.get_leased_timeout(T).unwrap();
        assert_eq!((lease.as_str(), lease.deliveries()), ("poison", n));
        drop(lease);
    }
    // Delivered twice: the next get moves it to the dead-letter queue and takes "fine".
    let lease = q.get_leased_timeout(T).unwrap();
    assert_eq!(lease.as_str(), "fine");
    lease.ack().unwrap();
    assert_eq!(dead.get_timeout(T).unwrap(), "poison");
    let c = q.lease_counts();
    assert_eq!((c.dead_lettered, c.discarded, c.returned), (1, 0, 0));
}

#[test]
fn without_a_dead_letter_queue_a_poison_item_is_discarded_and_join_still_returns() {
    let q = JoinableQueue::<u32>::new(0).unwrap();
    q.set_max_deliveries(Some(1)).unwrap();
    q.put(1).unwrap();
    drop(q.get_leased_timeout(T).unwrap());
    assert!(matches!(q.try_get_leased(), Err(TryGetError::Empty)));
    assert_eq!(q.lease_counts().discarded, 1);
    q.join_timeout(T).unwrap();
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "u32", into = "u32")]
struct Even(u32);

impl TryFrom<u32> for Even {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, String> {
        if n.is_multiple_of(2) {
            Ok(Even(n))
        } else {
            Err(format!("{n} is odd"))
        }
    }
}

impl From<Even> for u32 {
    fn from(e: Even) -> u32 {
        e.0
    }
}

#[test]
fn an_item_that_does_not_decode_is_dead_lettered_at_once() {
    let q = Queue::<Even>::new(0).unwrap();
    let dead = Queue::<Even>::new(0).unwrap();
    q.set_dead_letter(Some(&dead)).unwrap();
    q.put(Even(3)).unwrap(); // serialises; does not deserialise
    q.put(Even(4)).unwrap();
    assert!(matches!(
        q.get_leased_timeout(T),
        Err(GetTimeoutError::Deserialize(_))
    ));
    assert_eq!(*q.get_leased_timeout(T).unwrap().ack().unwrap(), *Even(4));
    assert_eq!(dead.len(), 1, "the undecodable item was moved, not lost");
}

#[test]
fn with_the_dead_letter_queue_full_an_undecodable_item_waits_and_is_never_redelivered() {
    let q = Queue::<Even>::new(0).unwrap();
    let dead = Queue::<Even>::new(1).unwrap();
    dead.put(Even(0)).unwrap(); // full
    q.set_dead_letter(Some(&dead)).unwrap();
    q.set_max_deliveries(None).unwrap();
    q.put(Even(5)).unwrap();
    assert!(matches!(
        q.get_leased_timeout(T),
        Err(GetTimeoutError::Deserialize(_))
    ));
    assert_eq!(q.lease_counts().returned, 1, "parked, not lost");
    assert!(matches!(q.try_get_leased(), Err(TryGetError::Empty)));
    assert_eq!(*dead.get_timeout(T).unwrap(), 0); // room now
    assert!(matches!(q.try_get_leased(), Err(TryGetError::Empty)));
    assert_eq!(dead.len(), 1, "moved on the next get");
    assert_eq!(q.lease_counts().returned, 0);
}

impl std::ops::Deref for Even {
    type Target = u32;
    fn deref(&self) -> &u32 {
        &self.0
    }
}

#[test]
fn on_a_joinable_queue_ack_is_task_done() {
    let q = JoinableQueue::<u32>::new(0).unwrap();
    for i in 0..3 {
        q.put(i).unwrap();
    }
    let a = q.get_leased_timeout(T).unwrap();
    let b = q.get_leased_timeout(T).unwrap();
    // Nothing was taken by a plain get: task_done has nothing to mark.
    assert!(matches!(q.task_done(), Err(TaskDoneError::TooOften)));
    a.ack().unwrap();
    drop(b); // back in the queue: still unfinished
    assert!(q.join_timeout(Duration::from_millis(100)).is_err());
    q.get_leased_timeout(T).unwrap().ack().unwrap();
    assert_eq!(q.get_timeout(T).unwrap(), 2);
    q.task_done().unwrap();
    q.join_timeout(T).unwrap();
    assert!(matches!(q.task_done(), Err(TaskDoneError::TooOften)));
}

#[test]
fn after_close_a_get_waits_for_leases_out_then_reports_closed() {
    let q = Queue::<u32>::new(0).unwrap();
    q.put(1).unwrap();
    let lease = q.get_leased_timeout(T).unwrap();
    q.close().unwrap();
    assert!(matches!(
        q.get_leased_timeout(Duration::from_millis(100)),
        Err(GetTimeoutError::Timeout)
    ));
    let q2 = q.clone();
    let getter = std::thread::spawn(move || {
        let l = q2.get_leased_timeout(T).unwrap();
        let v = *l;
        l.ack().unwrap();
        (v, q2.get_leased_timeout(T).map(|l| *l))
    });
    std::thread::sleep(Duration::from_millis(50));
    lease.release().unwrap();
    let (v, after) = getter.join().unwrap();
    assert_eq!(v, 1);
    assert!(matches!(after, Err(GetTimeoutError::Closed)));
    assert!(matches!(q.get_timeout(T), Err(GetTimeoutError::Closed)));
}

#[test]
fn with_every_slot_in_use_a_leased_get_waits_for_an_ack() {
    let q = Queue::<u32>::with_capacity(0, 4096).unwrap();
    let n = q.max_leases();
    assert_eq!(n, 8);
    for i in 0..=n as u32 {
        q.put(i).unwrap();
    }
    let mut leases: Vec<_> = (0..n).map(|_| q.get_leased_timeout(T).unwrap()).collect();
    assert!(matches!(q.try_get_leased(), Err(TryGetError::Empty)));
    assert!(matches!(
        q.get_leased_timeout(Duration::from_millis(60)),
        Err(GetTimeoutError::Timeout)
    ));
    assert_eq!(q.try_get().unwrap(), n as u32, "a plain get needs no slot");
    q.put(99).unwrap();
    let q2 = q.clone();
    let waiter = std::thread::spawn(move || q2.get_leased_timeout(T).unwrap().ack().unwrap());
    std::thread::sleep(Duration::from_millis(30));
    leases.pop().unwrap().ack().unwrap();
    assert_eq!(waiter.join().unwrap(), 99);
    for l in leases {
        l.ack().unwrap();
    }
}

#[test]
fn big_and_spilled_items_are_leased_redelivered_and_their_segments_removed_on_ack() {
    let q = Queue::<Vec<u8>>::with_capacity(0, 64 << 10).unwrap();
    let big = vec![5u8; 10_000]; // in the ring, too big for a slot
    let huge = vec![6u8; 200_000]; // spilled by its put
    q.put(big.clone()).unwrap();
    q.put(huge.clone()).unwrap();
    assert_eq!(spills_of(q.name()), 1);
    let a = q.get_leased_timeout(T).unwrap();
    let b = q.get_leased_timeout(T).unwrap();
    assert_eq!((&*a, &*b), (&big, &huge));
    assert_eq!(
        spills_of(q.name()),
        2,
        "the big item got a spill for its slot"
    );
    drop(a);
    drop(b);
    let a = q.get_leased_timeout(T).unwrap();
    let b = q.get_leased_timeout(T).unwrap();
    assert_eq!((a.deliveries(), b.deliveries()), (2, 2));
    assert_eq!((a.ack().unwrap(), b.ack().unwrap()), (big, huge));
    assert_eq!(spills_of(q.name()), 0);
}

#[test]
fn hostile_bytes_in_the_lease_slots_are_an_error_not_a_panic() {
    let q = Queue::<u32>::with_capacity(0, 4096).unwrap();
    q.put(1).unwrap();
    let lease = q.get_leased_timeout(T).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(common::shm_path(q.name()))
        .unwrap();
    // The ring starts on the second page; the slots follow its 4096 bytes.
    let page = 4096u64;
    file.write_all_at(&[0xff; 64], page + 4096).unwrap();
    assert!(matches!(lease.ack(), Err(AckError::Failed(_))));
    q.put(2).unwrap();
    assert!(matches!(
        q.get_leased_timeout(T),
        Err(GetTimeoutError::Failed(_))
    ));
    // Put right, the queue works again.
    file.write_all_at(&[0; 64], page + 4096).unwrap();
    assert_eq!(*q.get_leased_timeout(T).unwrap(), 2);
}

const KILLED: &str = "a_holder_killed_with_sigkill_hands_its_item_to_the_next_consumer";

#[test]
fn a_holder_killed_with_sigkill_hands_its_item_to_the_next_consumer() {
    watchdog(Duration::from_secs(60));
    if role().as_deref() == Some("holder") {
        let q = Queue::<String>::open(&arg("QUEUE")).unwrap();
        let flag = RawValue::<u32>::open(&arg("FLAG")).unwrap();
        let lease = q.get_leased_timeout(T).unwrap();
        assert_eq!(lease.as_str(), "job");
        flag.set(1);
        std::thread::sleep(Duration::from_secs(60));
        unreachable!("killed before");
    }
    let q = Queue::<String>::new(0).unwrap();
    let flag = RawValue::<u32>::new(0).unwrap();
    q.put("job".into()).unwrap();
    q.put("later".into()).unwrap();
    let mut child = spawn(
        KILLED,
        "holder",
        &[("QUEUE", q.name()), ("FLAG", flag.name())],
    );
    wait_until("the child holds the lease", T, || flag.get() == 1);
    assert_eq!(q.lease_counts().held, 1);
    child.kill().unwrap();
    wait(&mut child, T);
    let lease = q.get_leased_timeout(T).unwrap();
    assert_eq!((lease.as_str(), lease.deliveries()), ("job", 2));
    lease.ack().unwrap();
    assert_eq!(q.get_timeout(T).unwrap(), "later");
}
