//! Queue and JoinableQueue: the trap Python falls into (a producer that cannot exit until its
//! item is read), blocking, closing, bad input, spills, and many processes.

mod common;

use std::time::{Duration, Instant};

use common::{arg, assert_gone, role, spawn, wait, watchdog};
use serde::{Deserialize, Serialize};
use shmkit::{
    GetError, GetTimeoutError, JoinableQueue, PutError, PutTimeoutError, Queue, TryGetError,
    TryPutError,
};

const LIMIT: Duration = Duration::from_secs(60);

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The bug shmkit exists to fix: a child puts one 64 MiB item into a queue whose ring is 1 MiB
/// and returns; the parent waits for it to exit *before* calling get.
#[test]
fn a_child_that_put_64_mib_exits_before_anyone_reads_it() {
    watchdog(Duration::from_secs(120));
    if role().is_some() {
        let q: Queue<Vec<u8>> = Queue::open(&arg("QUEUE")).unwrap();
        q.put(pattern(64 << 20, 42)).unwrap();
        return;
    }
    let q = Queue::<Vec<u8>>::with_capacity(0, 1 << 20).unwrap();
    let mut kid = spawn(
        "a_child_that_put_64_mib_exits_before_anyone_reads_it",
        "producer",
        &[("QUEUE", q.name())],
    );
    let t0 = Instant::now();
    let status = wait(&mut kid, Duration::from_secs(5)); // fails the test if not exited by then
    assert!(status.success(), "{status}");
    eprintln!("producer exited {:?} after start", t0.elapsed());
    let item = q.get_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        item == pattern(64 << 20, 42),
        "the item came back different"
    );
    assert!(q.is_empty());
}

/// Python's documented hang, ported: ten children each put ['hello', 'ss' * 20000] and the
/// parent joins them all before a single get.
#[test]
fn ten_children_that_put_40_kb_each_are_joined_before_any_get() {
    watchdog(Duration::from_secs(120));
    if role().is_some() {
        let q: Queue<(String, String)> = serde_json::from_str(&arg("QUEUE")).unwrap();
        q.put(("hello".into(), "ss".repeat(20_000))).unwrap();
        return;
    }
    let q = Queue::<(String, String)>::new(0).unwrap();
    let handle = serde_json::to_string(&q).unwrap();
    let mut kids: Vec<_> = (0..10)
        .map(|_| {
            spawn(
                "ten_children_that_put_40_kb_each_are_joined_before_any_get",
                "putter",
                &[("QUEUE", &handle)],
            )
        })
        .collect();
    for k in &mut kids {
        assert!(wait(k, Duration::from_secs(30)).success());
    }
    for _ in 0..10 {
        let (a, b) = q.get_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((a.as_str(), b.len()), ("hello", 40_000));
    }
    assert!(matches!(q.try_get(), Err(TryGetError::Empty)));
}

/// Three producer processes and two consumer processes: every item arrives exactly once, and
/// each producer's items arrive in the order it put them.
#[test]
fn many_producers_and_consumers_across_processes_deliver_exactly_once_in_order() {
    watchdog(Duration::from_secs(240));
    const TEST: &str =
        "many_producers_and_consumers_across_processes_deliver_exactly_once_in_order";
    const PER: u32 = 20_000;
    match role().as_deref() {
        Some("producer") => {
            let q: Queue<(u32, u32)> = Queue::open(&arg("QUEUE")).unwrap();
            let p: u32 = arg("ID").parse().unwrap();
            for i in 0..PER {
                q.put((p, i)).unwrap();
            }
            return;
        }
        Some("consumer") => {
            let q: Queue<(u32, u32)> = Queue::open(&arg("QUEUE")).unwrap();
            let out: Queue<Vec<(u32, u32)>> = Queue::open(&arg("OUT")).unwrap();
            let mut got = Vec::new();
            while let Ok(item) = q.get_timeout(Duration::from_secs(30)) {
                got.push(item);
            }
            out.put(got).unwrap(); // ends with Closed after the parent closes the queue
            return;
        }
        _ => {}
    }
    let q = Queue::<(u32, u32)>::with_capacity(256, 8192).unwrap();
    let out = Queue::<Vec<(u32, u32)>>::new(0).unwrap();
    let vars = |id: &str| {
        vec![
            ("QUEUE", q.name().to_owned()),
            ("OUT", out.name().to_owned()),
            ("ID", id.to_owned()),
        ]
    };
    let spawn_with = |role: &str, id: &str| {
        let v = vars(id);
        let v: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
        spawn(TEST, role, &v)
    };
    let mut producers: Vec<_> = (0..3)
        .map(|p| spawn_with("producer", &p.to_string()))
        .collect();
    let mut consumers: Vec<_> = (0..2)
        .map(|c| spawn_with("consumer", &c.to_string()))
        .collect();
    for k in &mut producers {
        assert!(wait(k, LIMIT).success());
    }
    // Everything is put; let the consumers drain, then close so they stop waiting.
    let t0 = Instant::now();
    while !q.is_empty() && t0.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    q.close().unwrap();
    for k in &mut consumers {
        assert!(wait(k, LIMIT).success());
    }
    let mut seen = vec![vec![false; PER as usize]; 3];
    for _ in 0..2 {
        let got = out.get_timeout(Duration::from_secs(10)).unwrap();
        let mut last = [None::<u32>; 3];
        for (p, i) in got {
            let (p, i) = (p as usize, i as usize);
            assert!(!seen[p][i], "item ({p}, {i}) delivered twice");
            seen[p][i] = true;
            assert!(
                last[p].is_none_or(|l| (l as usize) < i),
                "producer {p}'s items out of order"
            );
            last[p] = Some(i as u32);
        }
    }
    assert!(seen.iter().flatten().all(|&s| s), "items lost");
}

#[test]
fn a_blocked_get_in_another_process_is_woken_by_a_put() {
    watchdog(Duration::from_secs(120));
    if role().is_some() {
        let q: Queue<String> = Queue::open(&arg("QUEUE")).unwrap();
        let back: Queue<String> = Queue::open(&arg("BACK")).unwrap();
        let s = q.get().unwrap(); // blocks: nothing is there yet
        back.put(s.to_uppercase()).unwrap();
        return;
    }
    let q = Queue::<String>::new(1).unwrap();
    let back = Queue::<String>::new(1).unwrap();
    let mut kid = spawn(
        "a_blocked_get_in_another_process_is_woken_by_a_put",
        "echo",
        &[("QUEUE", q.name()), ("BACK", back.name())],
    );
    std::thread::sleep(Duration::from_millis(200));
    q.put("ping".into()).unwrap();
    assert_eq!(back.get_timeout(Duration::from_secs(10)).unwrap(), "PING");
    assert!(wait(&mut kid, LIMIT).success());
}

#[test]
fn full_empty_timeouts_and_close_hand_items_back() {
    watchdog(Duration::from_secs(60));
    let q = Queue::<String>::new(2).unwrap();
    q.put("a".into()).unwrap();
    q.try_put("b".into()).unwrap();
    assert!(q.is_full());
    match q.try_put("c".into()) {
        Err(TryPutError::Full(item)) => assert_eq!(item, "c"),
        other => panic!("{other:?}"),
    }
    let t0 = Instant::now();
    match q.put_timeout("d".into(), Duration::from_millis(50)) {
        Err(e @ PutTimeoutError::Timeout(_)) => assert_eq!(e.into_inner(), "d"),
        other => panic!("{other:?}"),
    }
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert_eq!(q.len(), 2);
    q.close().unwrap();
    assert!(q.is_closed());
    assert!(matches!(q.put("e".into()), Err(PutError::Closed(e)) if e == "e"));
    assert_eq!(q.get().unwrap(), "a");
    assert_eq!(q.get().unwrap(), "b");
    assert!(matches!(q.get(), Err(GetError::Closed)));
    let e = Queue::<u8>::new(0).unwrap();
    let t0 = Instant::now();
    assert!(matches!(
        e.get_timeout(Duration::from_millis(50)),
        Err(GetTimeoutError::Timeout)
    ));
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert!(matches!(e.try_get(), Err(TryGetError::Empty)));
}

#[test]
fn close_wakes_a_blocked_getter_and_a_blocked_putter() {
    watchdog(Duration::from_secs(60));
    let empty = Queue::<u8>::new(0).unwrap();
    let full = Queue::<u8>::new(1).unwrap();
    full.put(1).unwrap();
    let (e2, f2) = (empty.clone(), full.clone());
    let getter = std::thread::spawn(move || e2.get());
    let putter = std::thread::spawn(move || f2.put(2));
    std::thread::sleep(Duration::from_millis(100));
    empty.close().unwrap();
    full.close().unwrap();
    assert!(matches!(getter.join().unwrap(), Err(GetError::Closed)));
    assert!(matches!(putter.join().unwrap(), Err(PutError::Closed(2))));
}

/// Serialises only values below 100; deserialises only values other than 13.
#[derive(Debug, PartialEq)]
struct Picky(u32);

impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 >= 100 {
            return Err(serde::ser::Error::custom("too big to serialise"));
        }
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            13 => Err(serde::de::Error::custom("13 is unlucky")),
            n => Ok(Picky(n)),
        }
    }
}

#[test]
fn a_value_that_will_not_serialise_or_deserialise_fails_alone() {
    watchdog(Duration::from_secs(60));
    let q = Queue::<Picky>::new(0).unwrap();
    q.put(Picky(1)).unwrap();
    match q.put(Picky(500)) {
        Err(PutError::Serialize { item, reason }) => {
            assert_eq!(item, Picky(500));
            assert!(reason.contains("too big"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(q.len(), 1, "a failed put leaves the queue as it was");
    q.put(Picky(13)).unwrap();
    q.put(Picky(2)).unwrap();
    assert_eq!(q.get().unwrap(), Picky(1));
    assert!(matches!(q.get(), Err(GetError::Deserialize(r)) if r.contains("Picky")));
    assert_eq!(
        q.get().unwrap(),
        Picky(2),
        "the queue stays usable after a bad item"
    );
}

/// A record whose serialised size varies from a few bytes to several KiB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sized {
    id: u64,
    name: String,
    samples: Vec<f64>,
}

fn sized(id: u64, len: usize) -> Sized {
    Sized {
        id,
        name: format!("item-{id}"),
        samples: (0..len).map(|i| i as f64 * 0.5 + id as f64).collect(),
    }
}

/// Items of every size, through a small ring many times over: those that fit in the free space
/// before the ring's end are serialised straight into it, the rest (near the end, or over
/// 4 KiB) through a buffer; either way, every item comes out whole and in order, from this
/// thread and from another process.
#[test]
fn serde_items_of_every_size_come_out_whole_and_in_order_around_the_ring() {
    watchdog(LIMIT);
    if role().as_deref() == Some("sized_producer") {
        let q = Queue::<Sized>::open(&arg("QUEUE")).unwrap();
        for id in 0..3000u64 {
            q.put(sized(id, (id as usize * 37) % 700)).unwrap();
        }
        return;
    }
    let q = Queue::<Sized>::with_capacity(0, 16 << 10).unwrap();
    let lens = [0usize, 1, 3, 100, 500, 509, 510, 511, 600, 1000, 2, 5000, 4];
    for round in 0..200u64 {
        let items: Vec<Sized> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| sized(round * 100 + i as u64, len))
            .collect();
        for item in &items {
            q.put(item.clone()).unwrap();
        }
        for item in &items {
            assert_eq!(&q.get_timeout(LIMIT).unwrap(), item);
        }
    }
    assert_eq!(q.len(), 0);
    let mut kid = spawn(
        "serde_items_of_every_size_come_out_whole_and_in_order_around_the_ring",
        "sized_producer",
        &[("QUEUE", q.name())],
    );
    for id in 0..3000u64 {
        assert_eq!(
            q.get_timeout(LIMIT).unwrap(),
            sized(id, (id as usize * 37) % 700)
        );
    }
    assert!(wait(&mut kid, LIMIT).success());
}

/// Serialises `0..len`, but fails (or panics) once it has written `fail_at` elements: a
/// failure after much of the item is already in the ring.
#[derive(Debug, Clone, PartialEq)]
struct Halting {
    len: u32,
    fail_at: Option<u32>,
    panic: bool,
}

impl Serialize for Halting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len as usize))?;
        for i in 0..self.len {
            if Some(i) == self.fail_at {
                if self.panic {
                    panic!("Halting panics at {i}");
                }
                return Err(serde::ser::Error::custom(format!("Halting stops at {i}")));
            }
            seq.serialize_element(&i)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Halting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<u32>::deserialize(d)?;
        if v.iter().enumerate().any(|(i, &x)| x != i as u32) {
            return Err(serde::de::Error::custom("not 0..len"));
        }
        Ok(Halting {
            len: v.len() as u32,
            fail_at: None,
            panic: false,
        })
    }
}

/// An item whose `Serialize` fails or panics half-way through, after writing into the ring:
/// the put reports it (or the panic reaches the caller), the queue is unchanged and unlocked,
/// and the items around it come out whole.
#[test]
fn a_serialize_that_fails_or_panics_half_way_leaves_the_queue_as_it_was() {
    watchdog(LIMIT);
    let q = Queue::<Halting>::with_capacity(0, 4096).unwrap();
    let good = |len| Halting {
        len,
        fail_at: None,
        panic: false,
    };
    q.put(good(10)).unwrap();
    for len in [200u32, 3000] {
        let bad = Halting {
            len,
            fail_at: Some(len / 2),
            panic: false,
        };
        match q.put(bad.clone()) {
            Err(PutError::Serialize { item, reason }) => {
                assert_eq!(item, bad);
                assert!(reason.contains("Halting stops at"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(q.len(), 1, "a failed put leaves the queue as it was");
    }
    let panicking = Halting {
        len: 300,
        fail_at: Some(250),
        panic: true,
    };
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.put(panicking)));
    assert!(caught.is_err(), "the panic reaches the caller");
    assert_eq!(q.len(), 1);
    q.put_timeout(good(300), LIMIT)
        .expect("the queue's lock was released by the panic");
    assert_eq!(q.get_timeout(LIMIT).unwrap(), good(10));
    assert_eq!(q.get_timeout(LIMIT).unwrap(), good(300));
    assert!(matches!(q.try_get(), Err(TryGetError::Empty)));
}

thread_local! {
    static NESTED: std::cell::RefCell<Option<Queue<Nesting>>> = const { std::cell::RefCell::new(None) };
    static NESTED_RESULT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Puts another item into the thread's `NESTED` queue from inside its own `Serialize`, and
/// fails if that put failed.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Nesting(#[serde(serialize_with = "put_while_serialising")] u32);

fn put_while_serialising<S: serde::Serializer>(n: &u32, s: S) -> Result<S::Ok, S::Error> {
    if *n == 1 {
        let put = NESTED.with(|q| q.borrow().as_ref().unwrap().put_timeout(Nesting(2), LIMIT));
        let outcome = match &put {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        NESTED_RESULT.with(|r| *r.borrow_mut() = Some(outcome));
        put.map_err(serde::ser::Error::custom)?;
    }
    s.serialize_u32(*n)
}

/// A small item is serialised while the queue is locked; a `Serialize` that puts into the same
/// queue must get an error (and the outer put then serialises it outside the lock), never a
/// deadlock.
#[test]
fn a_serialize_that_uses_the_same_queue_fails_instead_of_deadlocking() {
    watchdog(LIMIT);
    let q = Queue::<Nesting>::new(0).unwrap();
    NESTED.with(|n| *n.borrow_mut() = Some(q.clone()));
    q.put_timeout(Nesting(1), LIMIT).unwrap();
    NESTED.with(|n| n.borrow_mut().take());
    // The inner put was refused while the lock was held, then succeeded when the outer item
    // was serialised again outside it: the inner item went in first.
    assert_eq!(
        NESTED_RESULT.with(|r| r.borrow().clone()).as_deref(),
        Some("ok")
    );
    assert_eq!(q.get_timeout(LIMIT).unwrap(), Nesting(2));
    assert_eq!(q.get_timeout(LIMIT).unwrap(), Nesting(1));
    assert!(matches!(q.try_get(), Err(TryGetError::Empty)));
}

fn spills() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".spill-"))
        .collect()
}

#[test]
fn spilled_items_are_removed_when_taken_and_when_the_queue_is_destroyed() {
    watchdog(Duration::from_secs(60));
    let q = Queue::<Vec<u8>>::with_capacity(0, 4096).unwrap();
    let mine = |q: &Queue<Vec<u8>>| {
        spills()
            .into_iter()
            .filter(|s| s.starts_with(&format!("shmkit-{}.", q.name())))
            .count()
    };
    q.put(pattern(100_000, 1)).unwrap();
    q.put(pattern(10, 2)).unwrap();
    q.put(pattern(200_000, 3)).unwrap();
    assert_eq!(mine(&q), 2);
    assert_eq!(q.get().unwrap(), pattern(100_000, 1));
    assert_eq!(mine(&q), 1);
    assert_eq!(q.get().unwrap(), pattern(10, 2));
    assert_eq!(mine(&q), 1);
    let name = q.name().to_owned();
    drop(q); // destroyed with an item still spilled
    assert!(
        !spills()
            .iter()
            .any(|s| s.starts_with(&format!("shmkit-{name}.")))
    );
    assert_gone(&name);
}

#[test]
fn the_bytes_path_reuses_the_callers_buffer() {
    watchdog(Duration::from_secs(60));
    let q = Queue::<Vec<u8>>::new(0).unwrap();
    q.put_bytes(b"abc").unwrap();
    q.put(b"defg".to_vec()).unwrap();
    let mut buf = Vec::with_capacity(64);
    let ptr = buf.as_ptr();
    assert_eq!(q.get_bytes_into(&mut buf).unwrap(), 3);
    assert_eq!(buf, b"abc");
    assert_eq!(q.get_bytes_into(&mut buf).unwrap(), 4);
    assert_eq!((buf.as_slice(), buf.as_ptr()), (&b"defg"[..], ptr));
}

#[test]
fn opening_checks_kind_and_item_type() {
    watchdog(Duration::from_secs(60));
    let name = common::unique("q");
    let q = Queue::<String>::create(&name, 0, 4096).unwrap();
    assert!(matches!(
        Queue::<u32>::open(&name),
        Err(shmkit::Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        JoinableQueue::<String>::open(&name),
        Err(shmkit::Error::KindMismatch { .. })
    ));
    assert!(matches!(
        shmkit::Array::<u8>::open(&name),
        Err(shmkit::Error::KindMismatch { .. })
    ));
    assert!(matches!(
        Queue::<String>::with_capacity(0, 16),
        Err(shmkit::Error::InvalidArgument { .. })
    ));
    let again = Queue::<String>::open(&name).unwrap();
    again.put("x".into()).unwrap();
    assert_eq!(q.get().unwrap(), "x");
    drop((q, again));
    assert_gone(&name);
}

#[test]
fn joinable_queue_join_waits_for_task_done_across_processes() {
    watchdog(Duration::from_secs(120));
    if role().is_some() {
        let q: JoinableQueue<u32> = JoinableQueue::open(&arg("QUEUE")).unwrap();
        for _ in 0..5 {
            let n = q.get_timeout(Duration::from_secs(30)).unwrap();
            std::thread::sleep(Duration::from_millis(u64::from(n)));
            q.task_done().unwrap();
        }
        return;
    }
    let q = JoinableQueue::<u32>::new(0).unwrap();
    assert!(matches!(
        q.task_done(),
        Err(shmkit::TaskDoneError::TooOften)
    ));
    for n in [5, 10, 15, 20, 25] {
        q.put(n).unwrap();
    }
    assert!(matches!(
        q.join_timeout(Duration::from_millis(20)),
        Err(shmkit::JoinTimeoutError::Timeout)
    ));
    let mut kid = spawn(
        "joinable_queue_join_waits_for_task_done_across_processes",
        "worker",
        &[("QUEUE", q.name())],
    );
    q.join_timeout(Duration::from_secs(30)).unwrap();
    assert!(q.is_empty());
    assert!(matches!(
        q.task_done(),
        Err(shmkit::TaskDoneError::TooOften)
    ));
    assert!(wait(&mut kid, LIMIT).success());
}

/// `close` racing a getter or putter that is just about to sleep (in its short watch before
/// sleeping, the lock is released): the waiter must still see the close. The close lands at
/// varied moments from 0 to 150 µs after the waiter starts, so the window is hit.
#[test]
fn close_racing_a_waiter_never_strands_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    watchdog(Duration::from_secs(120));
    for i in 0..400u32 {
        let q = Queue::<u32>::new(1).unwrap();
        let putter = i % 2 == 1;
        if putter {
            q.put(0).unwrap(); // full: the thread below waits to put
        }
        let (q2, started) = (q.clone(), Arc::new(AtomicBool::new(false)));
        let started2 = Arc::clone(&started);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            started2.store(true, Ordering::SeqCst);
            let r = if putter {
                q2.put(1).map_err(|e| e.to_string())
            } else {
                q2.get().map(drop).map_err(|e| e.to_string())
            };
            let _ = tx.send(r);
        });
        while !started.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        let until = Instant::now() + Duration::from_micros(u64::from(i * 37 % 150));
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        q.close().unwrap();
        let r = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a waiter missed close() and is stranded");
        assert!(r.is_err(), "round {i}: {r:?}");
    }
}
