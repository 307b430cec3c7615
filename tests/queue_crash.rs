//! Crash safety: producers and consumers are SIGKILLed at random moments, 220 times, while
//! they put and get items with sequence numbers and checksums (some large enough to spill).
//! Three times: with byte strings (`Vec<u8>`, copied into the ring), with a serde type, which
//! a put serialises straight into the ring while it is small, and with byte strings a fifth of
//! which are big (64 to 214 kB) in a ring that holds them, so that they are copied in and out
//! outside the lock (see `src/queue/claim.rs`) while the kills land.
//! Afterwards: no item was torn, none was delivered twice, and every item whose `put` had
//! returned was delivered, except at most one per killed consumer (one it had fully taken).
//! `KILL_ONLY=producer` or `KILL_ONLY=consumer` kills only that role, to tell causes apart.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Rng, arg, role, spawn_slot, stamped, unstamp, wait, watchdog};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shmkit::{Queue, RawArray, RawValue};

/// What the queue carries: byte strings, or the same bytes inside a serde type.
trait Item: Serialize + DeserializeOwned + 'static {
    fn wrap(bytes: Vec<u8>) -> Self;
    fn bytes(&self) -> &[u8];
}

impl Item for Vec<u8> {
    fn wrap(bytes: Vec<u8>) -> Self {
        bytes
    }
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// A serde item: not `Vec<u8>`, so a put serialises it rather than copying bytes.
#[derive(Serialize, Deserialize)]
struct Record {
    len: u32,
    body: Vec<u8>,
}

impl Item for Record {
    fn wrap(body: Vec<u8>) -> Self {
        Record {
            len: body.len() as u32,
            body,
        }
    }
    fn bytes(&self) -> &[u8] {
        &self.body[..(self.len as usize).min(self.body.len())]
    }
}
const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;
/// Consumer slots: one per consumer, one for the parent's final drain.
const SLOTS: usize = CONSUMERS + 1;
const MAXSEQ: usize = 1 << 18;
const KILLS: usize = 220;

/// Whether this run's items are often big (set from the test, and in its children from `RING`).
static BIG_ITEMS: AtomicBool = AtomicBool::new(false);

/// Item `seq` of producer `p`: [p][seq: u32][filler][fnv of the rest], some of them 70 kB; with
/// `BIG_ITEMS`, a fifth of them 64 to 214 kB.
fn item(p: usize, seq: usize) -> Vec<u8> {
    let filler = if BIG_ITEMS.load(Ordering::Relaxed) && seq % 5 == 2 {
        (64 << 10) + seq.wrapping_mul(7919) % 150_000
    } else if seq % 97 == 13 {
        70_000
    } else {
        (seq.wrapping_mul(2_654_435_761) >> 7) % 3000
    };
    stamped(p, seq, filler)
}

/// Checks an item and returns (producer, seq), or None if it is torn or malformed.
fn check(v: &[u8]) -> Option<(usize, usize)> {
    unstamp(v).filter(|&(p, seq)| p < PRODUCERS && seq < MAXSEQ && v == item(p, seq))
}

struct Shared<T> {
    queue: Queue<T>,
    /// Per producer: every seq below it may have been put.
    attempt: RawArray<u64>,
    /// Per producer and seq: 1 once that item's put returned. (Not a high-water mark: the seq
    /// a killed producer was putting is skipped by its successor and may never be put.)
    returned: RawArray<u8>,
    /// Per slot, producer and seq: how many times that item was received.
    received: RawArray<u8>,
    bad: RawValue<u32>,
    stop: RawValue<u32>,
}

impl<T: Item> Shared<T> {
    fn open() -> Shared<T> {
        Shared {
            queue: Queue::open(&arg("QUEUE")).unwrap(),
            attempt: RawArray::open(&arg("ATTEMPT")).unwrap(),
            returned: RawArray::open(&arg("RETURNED")).unwrap(),
            received: RawArray::open(&arg("RECEIVED")).unwrap(),
            bad: RawValue::open(&arg("BAD")).unwrap(),
            stop: RawValue::open(&arg("STOP")).unwrap(),
        }
    }

    fn record(&self, slot: usize, v: &[u8]) {
        match check(v) {
            Some((p, seq)) => {
                let i = (slot * PRODUCERS + p) * MAXSEQ + seq;
                self.received
                    .set(i, self.received.get(i).unwrap().saturating_add(1))
                    .unwrap();
            }
            None => self.bad.set(self.bad.get() + 1),
        }
    }
}

fn producer<T: Item>(s: &Shared<T>, p: usize) {
    // Resume after anything a killed predecessor may have put: no seq is put twice.
    let mut seq = s.attempt.get(p).unwrap() as usize;
    while seq < MAXSEQ - 1 {
        s.attempt.set(p, seq as u64 + 1).unwrap();
        s.queue.put(T::wrap(item(p, seq))).unwrap();
        s.returned.set(p * MAXSEQ + seq, 1).unwrap();
        seq += 1;
    }
    std::thread::sleep(Duration::from_secs(600));
}

fn consumer<T: Item>(s: &Shared<T>, slot: usize) {
    loop {
        match s.queue.get_timeout(Duration::from_millis(50)) {
            Ok(v) => s.record(slot, v.bytes()),
            Err(shmkit::GetTimeoutError::Timeout) if s.stop.get() == 1 => return,
            Err(shmkit::GetTimeoutError::Timeout) => {}
            Err(e) => panic!("consumer: {e}"),
        }
    }
}

#[test]
fn producers_and_consumers_killed_at_random_moments_lose_and_duplicate_nothing() {
    killed_at_random_moments::<Vec<u8>>(
        "producers_and_consumers_killed_at_random_moments_lose_and_duplicate_nothing",
        false,
    );
}

#[test]
fn big_items_copied_outside_the_lock_survive_kills_as_small_ones_do() {
    killed_at_random_moments::<Vec<u8>>(
        "big_items_copied_outside_the_lock_survive_kills_as_small_ones_do",
        true,
    );
}

#[test]
fn serde_items_serialised_in_place_survive_kills_as_bytes_do() {
    killed_at_random_moments::<Record>(
        "serde_items_serialised_in_place_survive_kills_as_bytes_do",
        false,
    );
}

/// `big`: a fifth of the items are big, in a ring of 1 MiB that holds them.
fn killed_at_random_moments<T: Item>(test: &str, big: bool) {
    watchdog(Duration::from_secs(600));
    let big = match role() {
        Some(_) => arg("RING") == "big",
        None => big,
    };
    BIG_ITEMS.store(big, Ordering::Relaxed);
    match role().as_deref() {
        Some("producer") => return producer(&Shared::<T>::open(), arg("SLOT").parse().unwrap()),
        Some("consumer") => return consumer(&Shared::<T>::open(), arg("SLOT").parse().unwrap()),
        _ => {}
    }
    let s = Shared::<T> {
        queue: Queue::with_capacity(64, if big { 1 << 20 } else { 64 << 10 }).unwrap(),
        attempt: RawArray::new(PRODUCERS).unwrap(),
        returned: RawArray::new(PRODUCERS * MAXSEQ).unwrap(),
        received: RawArray::new(SLOTS * PRODUCERS * MAXSEQ).unwrap(),
        bad: RawValue::new(0).unwrap(),
        stop: RawValue::new(0).unwrap(),
    };
    let names = [
        ("QUEUE", s.queue.name().to_owned()),
        ("ATTEMPT", s.attempt.name().to_owned()),
        ("RETURNED", s.returned.name().to_owned()),
        ("RECEIVED", s.received.name().to_owned()),
        ("BAD", s.bad.name().to_owned()),
        ("STOP", s.stop.name().to_owned()),
        ("RING", if big { "big" } else { "small" }.to_owned()),
    ];
    let start = |role: &str, slot: usize| -> Child { spawn_slot(test, role, &names, slot) };
    // Children 0..PRODUCERS are producers, the rest consumers.
    let mut kids: Vec<Child> = (0..PRODUCERS)
        .map(|p| start("producer", p))
        .chain((0..CONSUMERS).map(|c| start("consumer", c)))
        .collect();
    let mut rng = Rng::new();
    let mut rand = move |n: u64| rng.below(n);
    let mut consumer_kills = 0;
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_micros(500 + rand(11_500)));
        let k = match std::env::var("KILL_ONLY").as_deref() {
            Ok("producer") => rand(PRODUCERS as u64) as usize,
            Ok("consumer") => PRODUCERS + rand(CONSUMERS as u64) as usize,
            _ => rand(kids.len() as u64) as usize,
        };
        kids[k].kill().unwrap();
        let status = wait(&mut kids[k], Duration::from_secs(30));
        // A child that ended by itself (a panic: a get or put that failed) fails the test.
        assert_eq!(
            status.signal(),
            Some(9),
            "child {k} ended before it was killed: {status}"
        );
        if k < PRODUCERS {
            kids[k] = start("producer", k);
        } else {
            consumer_kills += 1;
            kids[k] = start("consumer", k - PRODUCERS);
        }
    }
    // Stop the producers (SIGKILL once more), then let the consumers drain and exit.
    for k in &mut kids[..PRODUCERS] {
        k.kill().unwrap();
        wait(k, Duration::from_secs(30));
    }
    s.stop.set(1);
    for k in &mut kids[PRODUCERS..] {
        assert!(wait(k, Duration::from_secs(120)).success());
    }
    loop {
        match s.queue.try_get() {
            Ok(v) => s.record(CONSUMERS, v.bytes()),
            Err(shmkit::TryGetError::Empty) => break,
            Err(e) => panic!("drain: {e}"),
        }
    }

    assert_eq!(s.bad.get(), 0, "torn or malformed items were delivered");
    let (mut missing, mut delivered) = (0, 0);
    for p in 0..PRODUCERS {
        let attempt = s.attempt.get(p).unwrap() as usize;
        for seq in 0..MAXSEQ {
            let total: u32 = (0..SLOTS)
                .map(|c| u32::from(s.received.get((c * PRODUCERS + p) * MAXSEQ + seq).unwrap()))
                .sum();
            assert!(total <= 1, "item ({p}, {seq}) delivered {total} times");
            assert!(
                seq < attempt || total == 0,
                "item ({p}, {seq}) was never put"
            );
            delivered += total;
            if s.returned.get(p * MAXSEQ + seq).unwrap() == 1 && total == 0 {
                missing += 1;
            }
        }
    }
    eprintln!(
        "{KILLS} kills ({consumer_kills} consumers); {delivered} items delivered; {missing} lost with killed consumers"
    );
    assert!(
        missing <= consumer_kills,
        "{missing} items lost, more than the {consumer_kills} killed consumers could have taken"
    );
    assert!(
        delivered > 1000,
        "too little traffic to mean anything: {delivered}"
    );
    // Still usable.
    s.queue.put(T::wrap(item(0, 1))).unwrap();
    assert_eq!(check(s.queue.get().unwrap().bytes()), Some((0, 1)));

    // Producers killed while writing a spill, or while waiting for room to commit it, left
    // it behind; the queue is empty, so none is referenced. A live producer's spill sweeps
    // away every one whose writer is dead, written or not.
    let spills = || {
        let prefix = format!("{}.spill-", s.queue.name());
        shmkit::shm::segments()
            .unwrap()
            .into_iter()
            .filter(|i| i.name.starts_with(&prefix))
            .collect::<Vec<_>>()
    };
    let before = spills().len();
    let huge = if big { 2 << 20 } else { 200_000 };
    s.queue
        .put_timeout(T::wrap(vec![0u8; huge]), Duration::from_secs(30))
        .unwrap(); // bigger than the ring: spills, and sweeps
    let after = spills();
    eprintln!("spills left by killed producers: {before} before the sweep");
    assert!(
        after.len() == 1 && after[0].creator_pid == Some(std::process::id()),
        "only the spill just put is left: {after:?}"
    );
    assert_eq!(
        s.queue
            .get_timeout(Duration::from_secs(30))
            .unwrap()
            .bytes()
            .len(),
        huge
    );
}
