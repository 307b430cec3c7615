//! Leased gets under fire: producers and consumers are SIGKILLed at random moments, at least
//! 1,000 times, while more than 1,000,000 items (with sequence numbers and checksums, a few
//! too big for a lease slot or for the ring) go through `get_leased` and `ack`. Afterwards: no
//! item was torn, none whose `put` returned was lost, and an item was delivered more than once
//! only because a consumer died holding it: duplicates are at most the consumers killed.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::time::{Duration, Instant};

use common::{Rng, arg, role, spawn_slot, stamped, unstamp, wait, watchdog};
use shmkit::{GetTimeoutError, Queue, RawArray, RawValue};

const TEST: &str =
    "leased_items_survive_a_thousand_sigkills_none_lost_duplicates_only_from_killed_holders";
const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;
/// Items per producer.
const MAXSEQ: usize = 520_000;
const KILLS: usize = 1000;

/// Item `seq` of producer `p`: [p][seq: u32][filler][fnv of the rest]. Most are small; one in
/// 4,099 is 2 kB (in the ring, too big for a lease slot), one in 65,537 is 70 kB (spilled).
fn item(p: usize, seq: usize) -> Vec<u8> {
    let filler = if seq % 65_537 == 11 {
        70_000
    } else if seq % 4099 == 7 {
        2000
    } else {
        seq % 41
    };
    stamped(p, seq, filler)
}

/// Checks an item and returns (producer, seq), or None if it is torn or malformed.
fn check(v: &[u8]) -> Option<(usize, usize)> {
    unstamp(v).filter(|&(p, seq)| p < PRODUCERS && seq < MAXSEQ && v == item(p, seq))
}

struct Shared {
    queue: Queue<Vec<u8>>,
    /// Per producer: every seq below it may have been put.
    attempt: RawArray<u64>,
    /// Per producer and seq: 1 once that item's put returned.
    returned: RawArray<u8>,
    /// Per producer and seq: how many times a consumer recorded it (before its ack).
    received: RawArray<u8>,
    /// Per producer: 1 once it put its last item.
    finished: RawArray<u8>,
    bad: RawValue<u32>,
}

impl Shared {
    fn open() -> Shared {
        Shared {
            queue: Queue::open(&arg("QUEUE")).unwrap(),
            attempt: RawArray::open(&arg("ATTEMPT")).unwrap(),
            returned: RawArray::open(&arg("RETURNED")).unwrap(),
            received: RawArray::open(&arg("RECEIVED")).unwrap(),
            finished: RawArray::open(&arg("FINISHED")).unwrap(),
            bad: RawValue::open(&arg("BAD")).unwrap(),
        }
    }

    fn record(&self, v: &[u8]) {
        match check(v) {
            Some((p, seq)) => {
                let i = p * MAXSEQ + seq;
                self.received
                    .set(i, self.received.get(i).unwrap().saturating_add(1))
                    .unwrap();
            }
            None => self.bad.set(self.bad.get() + 1),
        }
    }
}

fn producer(s: &Shared, p: usize) {
    // Resume after anything a killed predecessor may have put: no seq is put twice.
    let mut seq = s.attempt.get(p).unwrap() as usize;
    while seq < MAXSEQ {
        s.attempt.set(p, seq as u64 + 1).unwrap();
        s.queue.put(item(p, seq)).unwrap();
        s.returned.set(p * MAXSEQ + seq, 1).unwrap();
        seq += 1;
    }
    s.finished.set(p, 1).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

fn consumer(s: &Shared) {
    loop {
        match s.queue.get_leased_timeout(Duration::from_secs(30)) {
            Ok(lease) => {
                s.record(&lease);
                lease.ack().unwrap();
            }
            Err(GetTimeoutError::Closed) => return,
            Err(e) => panic!("consumer: {e}"),
        }
    }
}

#[test]
fn leased_items_survive_a_thousand_sigkills_none_lost_duplicates_only_from_killed_holders() {
    watchdog(Duration::from_secs(900));
    match role().as_deref() {
        Some("producer") => return producer(&Shared::open(), arg("SLOT").parse().unwrap()),
        Some("consumer") => return consumer(&Shared::open()),
        _ => {}
    }
    let s = Shared {
        queue: Queue::with_capacity(64, 64 << 10).unwrap(),
        attempt: RawArray::new(PRODUCERS).unwrap(),
        returned: RawArray::new(PRODUCERS * MAXSEQ).unwrap(),
        received: RawArray::new(PRODUCERS * MAXSEQ).unwrap(),
        finished: RawArray::new(PRODUCERS).unwrap(),
        bad: RawValue::new(0).unwrap(),
    };
    // Every redelivery here comes from a kill: no limit, so nothing is dead-lettered.
    s.queue.set_max_deliveries(None).unwrap();
    let names = [
        ("QUEUE", s.queue.name().to_owned()),
        ("ATTEMPT", s.attempt.name().to_owned()),
        ("RETURNED", s.returned.name().to_owned()),
        ("RECEIVED", s.received.name().to_owned()),
        ("FINISHED", s.finished.name().to_owned()),
        ("BAD", s.bad.name().to_owned()),
    ];
    let start = |role: &str, slot: usize| -> Child { spawn_slot(TEST, role, &names, slot) };
    // Children 0..PRODUCERS are producers, the rest consumers.
    let mut kids: Vec<Child> = (0..PRODUCERS)
        .map(|p| start("producer", p))
        .chain((0..CONSUMERS).map(|c| start("consumer", c)))
        .collect();
    let mut rng = Rng::new();
    let mut rand = move |n: u64| rng.below(n);
    let finished = |p: usize| s.finished.get(p).unwrap() == 1;
    let began = Instant::now();
    let (mut kills, mut consumer_kills) = (0, 0);
    // Kill until both the kill count and the production are done; once a producer has put
    // everything, only the others are killed.
    while kills < KILLS || !(0..PRODUCERS).all(finished) {
        std::thread::sleep(Duration::from_micros(200 + rand(4000)));
        let live: Vec<usize> = (0..PRODUCERS)
            .filter(|&p| !finished(p))
            .chain(PRODUCERS..PRODUCERS + CONSUMERS)
            .collect();
        let k = live[rand(live.len() as u64) as usize];
        kids[k].kill().unwrap();
        let status = wait(&mut kids[k], Duration::from_secs(30));
        // A child that ended by itself (a panic: a get, put or ack that failed) fails the test.
        assert_eq!(
            status.signal(),
            Some(9),
            "child {k} ended before it was killed: {status}"
        );
        kills += 1;
        if k < PRODUCERS {
            kids[k] = start("producer", k);
        } else {
            consumer_kills += 1;
            kids[k] = start("consumer", k - PRODUCERS);
        }
    }
    for k in &mut kids[..PRODUCERS] {
        k.kill().unwrap();
        wait(k, Duration::from_secs(30));
    }
    // Closed: the consumers take what is left, including items whose holder was killed last,
    // and end once nothing is waiting and no lease is out.
    s.queue.close().unwrap();
    for k in &mut kids[PRODUCERS..] {
        let status = wait(k, Duration::from_secs(120));
        assert!(status.success(), "a consumer failed: {status}");
    }
    let elapsed = began.elapsed();

    assert_eq!(s.bad.get(), 0, "torn or malformed items were delivered");
    let (mut lost, mut duplicates, mut delivered) = (0, 0, 0u64);
    for p in 0..PRODUCERS {
        let attempt = s.attempt.get(p).unwrap() as usize;
        for seq in 0..MAXSEQ {
            let i = p * MAXSEQ + seq;
            let total = u32::from(s.received.get(i).unwrap());
            assert!(
                seq < attempt || total == 0,
                "item ({p}, {seq}) was never put"
            );
            delivered += u64::from(total.min(1));
            duplicates += total.saturating_sub(1);
            if s.returned.get(i).unwrap() == 1 && total == 0 {
                lost += 1;
            }
        }
    }
    let c = s.queue.lease_counts();
    eprintln!(
        "{kills} kills ({consumer_kills} consumers) in {elapsed:.1?}; {delivered} items delivered; \
         {lost} lost; {duplicates} delivered twice (consumers killed holding them)"
    );
    assert_eq!(lost, 0, "items whose put returned were never delivered");
    assert!(
        duplicates <= consumer_kills,
        "{duplicates} duplicates, more than the {consumer_kills} consumers killed"
    );
    assert!(kills >= KILLS);
    assert!(
        delivered >= 1_000_000,
        "fewer than a million items went through: {delivered}"
    );
    assert_eq!(
        (c.held, c.returned, c.dead_lettered, c.discarded),
        (0, 0, 0, 0)
    );
    assert!(s.queue.is_empty());
}
