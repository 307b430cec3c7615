//! `Pool`: Python's Pool API with real worker processes (this test binary started again; each
//! test begins with `shmkit::init()`, which runs the worker's loop in a worker), including
//! workers killed in the middle of a task.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{wait_until, watchdog};
use serde::{Deserialize, Serialize};
use shmkit::{Error, Pool, PoolJoinError, ResultTimeoutError, TaskError, TryResultError, Value};

const LIMIT: Duration = Duration::from_secs(60);

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn describe(name: String, times: usize, sep: char) -> String {
    vec![name; times].join(&sep.to_string())
}

fn odd_fails(x: i64) -> Result<i64, String> {
    if x % 2 == 0 {
        Ok(x / 2)
    } else {
        Err(format!("{x} is odd"))
    }
}

fn seven_panics(x: u32) -> u32 {
    assert!(x != 7, "seven is not allowed");
    x
}

fn sleep_ms(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    shmkit::current_pid()
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn reversed(mut v: Vec<u8>) -> Vec<u8> {
    v.reverse();
    v
}

fn pid(_: ()) -> u32 {
    shmkit::current_pid()
}

fn counted((counter, x): (Value<u64>, u32)) -> u32 {
    std::thread::sleep(Duration::from_millis(5));
    counter.update(|c| *c += 1).unwrap();
    assert!(x != 3, "three fails");
    x
}

/// Item 5 publishes its worker's pid and waits to be killed; the others are quick.
fn victim((flag, x): (Value<u32>, u32)) -> u32 {
    if x == 5 {
        flag.set(shmkit::current_pid()).unwrap();
        std::thread::sleep(Duration::from_secs(30));
    }
    x * 10
}

fn abort_on_zero(x: u32) -> u32 {
    if x == 0 {
        std::process::abort();
    }
    x
}

/// Serialises only when `ok`.
#[derive(Debug, Clone, Copy, Deserialize)]
struct Picky {
    ok: bool,
}

impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.ok {
            s.serialize_bool(true)
        } else {
            Err(serde::ser::Error::custom("Picky refuses to serialise"))
        }
    }
}

fn unwrap_picky(p: Picky) -> bool {
    p.ok
}

fn make_picky(ok: bool) -> Picky {
    Picky { ok }
}

/// Deserialises only an even number.
#[derive(Debug, Serialize)]
struct Even(u32);

impl<'de> Deserialize<'de> for Even {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if v % 2 == 0 {
            Ok(Even(v))
        } else {
            Err(serde::de::Error::custom(format!("{v} is not even")))
        }
    }
}

fn half(e: Even) -> u32 {
    e.0 / 2
}

static GREETING: AtomicU64 = AtomicU64::new(0);

fn set_greeting(v: u64) {
    GREETING.store(v, Ordering::Relaxed);
}

fn greeting(_: ()) -> u64 {
    GREETING.load(Ordering::Relaxed)
}

fn picky_init(_: Picky) {}

fn failing_init(_: ()) {
    panic!("the initializer gives up");
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn map_starmap_and_imap_give_every_result_in_order() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.processes(), 2);
    let expect: Vec<u64> = (0..1000u64).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..1000u64).unwrap(), expect);
    assert_eq!(pool.chunksize(7).map(square, 0..1000u64).unwrap(), expect);
    assert_eq!(
        pool.map(square, Vec::<u64>::new()).unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(
        pool.map_async(square, [3u64, 4])
            .get_timeout(LIMIT)
            .unwrap(),
        [9, 16]
    );

    let pairs: Vec<(u64, u64)> = (0..100).map(|i| (i, 2 * i)).collect();
    let sums = pool.starmap(add, pairs).unwrap();
    assert_eq!(sums, (0..100).map(|i| 3 * i).collect::<Vec<u64>>());
    let described = pool
        .starmap(
            describe,
            [("ab".to_string(), 3usize, '-'), ("c".into(), 1, '+')],
        )
        .unwrap();
    assert_eq!(described, ["ab-ab-ab", "c"]);

    let ordered: Vec<u64> = pool
        .imap(square, 0..200u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ordered, expect[..200]);
    let mut unordered: Vec<u64> = pool
        .chunksize(3)
        .imap_unordered(square, 0..200u64)
        .collect::<Result<_, _>>()
        .unwrap();
    unordered.sort();
    assert_eq!(unordered, expect[..200]);
    // imap reads its input lazily: an endless input works.
    let first: Vec<u64> = pool
        .imap(square, 0u64..)
        .take(50)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, expect[..50]);
    // Arguments and results larger than the queues' rings (1 MiB) travel too.
    let big: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    let back = pool.apply(reversed, big.clone()).unwrap();
    assert_eq!(back.len(), big.len());
    assert!(back.iter().rev().eq(big.iter()));
    // Python's default chunk size for map: ceil(len / (4 × workers)).
    let pids: Vec<u32> = pool.map(pid, vec![(); 8]).unwrap();
    assert!(pids.iter().all(|p| pool.pids().contains(p)));
    pool.close();
    pool.join().unwrap();
}

#[test]
fn apply_async_runs_callbacks_in_the_parent_before_get_returns() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let pool = Pool::new(2).unwrap();
    assert_ne!(pool.apply(sleep_ms, 0).unwrap(), shmkit::current_pid());

    let seen = Arc::new(Mutex::new(Vec::new()));
    let me = std::process::id();
    let results: Vec<_> = [60u64, 1, 30]
        .into_iter()
        .map(|ms| {
            let seen = seen.clone();
            pool.apply_async(sleep_ms, ms).on_success(move |worker| {
                // The callback runs in this (the parent) process.
                assert_eq!(std::process::id(), me);
                seen.lock().unwrap().push((ms, *worker));
            })
        })
        .collect();
    for r in &results {
        let worker = r.get_timeout(LIMIT).unwrap();
        assert!(seen.lock().unwrap().iter().any(|&(_, w)| w == worker));
        assert!(r.is_ready());
        assert_eq!(r.is_successful(), Some(true));
    }
    assert_eq!(seen.lock().unwrap().len(), 3);

    // get_timeout gives up without losing the task; wait then finds it done.
    let slow = pool.apply_async(sleep_ms, 300);
    assert_eq!(
        slow.get_timeout(Duration::from_millis(10)),
        Err(ResultTimeoutError::Timeout)
    );
    assert_eq!(slow.try_get(), Err(TryResultError::NotReady));
    assert!(!slow.is_ready());
    assert_eq!(slow.is_successful(), None);
    assert!(slow.wait_timeout(LIMIT));
    assert!(slow.get().is_ok());

    // An error goes to the error callback, not the success one.
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e2 = errors.clone();
    let r = pool
        .apply_async(seven_panics, 7)
        .on_success(|_| panic!("no value expected"))
        .on_error(move |e| e2.lock().unwrap().push(e.clone()));
    assert!(
        matches!(r.get_timeout(LIMIT), Err(ResultTimeoutError::Task(TaskError::Panicked(m))) if m.contains("seven"))
    );
    assert_eq!(errors.lock().unwrap().len(), 1);
    assert_eq!(r.is_successful(), Some(false));
    // A callback that panics is reported, and the pool goes on delivering results.
    let clumsy = pool
        .apply_async(square, 5)
        .on_success(|_| panic!("a clumsy callback"));
    assert_eq!(clumsy.get_timeout(LIMIT), Ok(25));
    assert_eq!(pool.apply(square, 6), Ok(36));
    // A callback registered after the end runs at once.
    let late = Arc::new(AtomicU64::new(0));
    let l2 = late.clone();
    let _ = r.on_error(move |_| {
        l2.store(1, Ordering::Relaxed);
    });
    assert_eq!(late.load(Ordering::Relaxed), 1);
}

#[test]
fn a_failing_task_fails_alone_and_map_waits_for_every_chunk() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let pool = Pool::new(2).unwrap();
    assert!(
        matches!(pool.apply(seven_panics, 7), Err(TaskError::Panicked(m)) if m.contains("seven is not allowed"))
    );
    assert_eq!(pool.apply(seven_panics, 8), Ok(8));
    assert_eq!(
        pool.apply(odd_fails, 3),
        Err(TaskError::Failed("3 is odd".into()))
    );
    assert_eq!(pool.apply(odd_fails, 4), Ok(Ok(2)));

    // map reports the first failure, but only after every chunk has run.
    let counter = Value::new(0u64).unwrap();
    let items: Vec<(Value<u64>, u32)> = (0..40).map(|x| (counter.clone(), x)).collect();
    let err = pool.chunksize(2).map(counted, items).unwrap_err();
    assert!(matches!(err, TaskError::Panicked(m) if m.contains("three fails")));
    assert_eq!(counter.get().unwrap(), 40);

    // imap yields the error at its item and goes on.
    let got: Vec<_> = pool.imap(seven_panics, 5..10).collect();
    assert_eq!(got.len(), 5);
    assert!(got[2].is_err());
    assert!(got.iter().enumerate().all(|(i, r)| i == 2 || r.is_ok()));
    assert_eq!(pool.map(square, 0..4u64).unwrap(), [0, 1, 4, 9]);
}

#[test]
fn arguments_and_results_that_do_not_serialise_fail_their_task_only() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let pool = Pool::new(2).unwrap();
    let r = pool.apply(unwrap_picky, Picky { ok: false });
    assert!(matches!(r, Err(TaskError::Serialize(m)) if m.contains("Picky refuses")));
    assert_eq!(pool.apply(unwrap_picky, Picky { ok: true }), Ok(true));
    let r = pool.apply(make_picky, false);
    assert!(matches!(r, Err(TaskError::Serialize(m)) if m.contains("result did not serialise")));
    let r = pool.apply(half, Even(3));
    assert!(matches!(r, Err(TaskError::Deserialize(m)) if m.contains("argument")));
    // In a map, the bad item fails it; its chunk neighbours are fine.
    let got: Vec<_> = pool
        .chunksize(4)
        .imap(
            unwrap_picky,
            [true, false, true, true].map(|ok| Picky { ok }),
        )
        .collect();
    assert!(got[0].is_ok() && got[1].is_err() && got[2].is_ok() && got[3].is_ok());
    assert_eq!(pool.map(half, [Even(2), Even(8)]).unwrap(), [1, 4]);
}

#[test]
fn a_worker_killed_during_map_fails_its_task_and_is_replaced() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let pool = Pool::new(2).unwrap();
    let before = pool.pids();
    let flag = Value::new(0u32).unwrap();
    let killer = {
        let flag = flag.clone();
        std::thread::spawn(move || {
            wait_until("the victim task to start", LIMIT, || {
                flag.get().unwrap() != 0
            });
            let pid = flag.get().unwrap();
            // SAFETY-free: plain kill(2) through the command line tool.
            std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
            pid
        })
    };
    let items: Vec<(Value<u32>, u32)> = (0..20).map(|x| (flag.clone(), x)).collect();
    let started = Instant::now();
    let got: Vec<_> = pool.imap(victim, items.clone()).collect();
    let victim_pid = killer.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "map waited for the sleeping task"
    );
    for (i, r) in got.iter().enumerate() {
        if i == 5 {
            assert!(
                matches!(r, Err(TaskError::WorkerDied { pid, status }) if *pid == victim_pid && status.contains("signal 9")),
                "{r:?}"
            );
        } else {
            assert_eq!(r.as_ref().unwrap(), &(i as u32 * 10));
        }
    }
    // map reports it as its error; the pool has replaced the worker and still works.
    flag.set(0).unwrap();
    let killer = {
        let flag = flag.clone();
        std::thread::spawn(move || {
            wait_until("the victim task to start", LIMIT, || {
                flag.get().unwrap() != 0
            });
            let pid = flag.get().unwrap().to_string();
            std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap();
        })
    };
    let err = pool.chunksize(3).map(victim, items).unwrap_err();
    killer.join().unwrap();
    assert!(matches!(err, TaskError::WorkerDied { .. }), "{err:?}");
    wait_until("a replacement worker", LIMIT, || pool.pids().len() == 2);
    assert!(!pool.pids().contains(&victim_pid));
    assert_ne!(pool.pids(), before);
    assert_eq!(pool.map(square, 0..10u64).unwrap()[9], 81);

    // A worker that aborts on its own is a dead worker too.
    let r = pool.apply(abort_on_zero, 0);
    assert!(
        matches!(&r, Err(TaskError::WorkerDied { status, .. }) if status.contains("signal 6")),
        "{r:?}"
    );
    assert_eq!(pool.apply(abort_on_zero, 4), Ok(4));
}

#[test]
fn short_tasks_do_not_wait_behind_a_long_one_while_a_worker_is_idle() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let pool = Pool::new(2).unwrap();
    // Many quick tasks first: the pool learns that tasks are short, and prefetches.
    assert_eq!(pool.map(square, 0..2000u64).unwrap().len(), 2000);
    let long = pool.apply_async(sleep_ms, 3_000);
    let short: Vec<_> = (0..20).map(|_| pool.apply_async(sleep_ms, 1)).collect();
    let short_pids: Vec<u32> = short
        .iter()
        .map(|r| r.get_timeout(LIMIT).unwrap())
        .collect();
    assert!(
        !long.is_ready(),
        "the long task finished before the short ones"
    );
    let long_pid = long.get_timeout(LIMIT).unwrap();
    assert!(
        short_pids.iter().all(|&p| p != long_pid),
        "a short task ran behind the long one on worker {long_pid}: {short_pids:?}"
    );
}

#[test]
fn terminate_fails_every_queued_task_and_kills_the_workers() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let pool = Pool::new(2).unwrap();
    let pids = pool.pids();
    let results: Vec<_> = (0..500).map(|_| pool.apply_async(sleep_ms, 20)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let errors = Arc::new(AtomicU64::new(0));
    let last = results[499].clone();
    let e2 = errors.clone();
    let last = last.on_error(move |e| {
        assert_eq!(e, &TaskError::Terminated);
        e2.fetch_add(1, Ordering::Relaxed);
    });
    pool.terminate();
    let mut terminated = 0;
    for r in &results {
        match r.get_timeout(Duration::from_secs(5)) {
            Ok(_) => {}
            Err(ResultTimeoutError::Task(TaskError::Terminated)) => terminated += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(terminated > 400, "only {terminated} of 500 were terminated");
    assert_eq!(errors.load(Ordering::Relaxed), 1);
    assert!(last.is_ready());
    for pid in pids {
        assert!(!alive(pid), "worker {pid} outlived terminate");
    }
    assert_eq!(pool.apply(square, 2), Err(TaskError::Terminated));
}

#[test]
fn maxtasksperchild_replaces_workers_and_initializer_runs_in_each() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(2)
        .initializer(set_greeting, 42u64)
        .build()
        .unwrap();
    let pids: Vec<u32> = (0..6).map(|_| pool.apply(pid, ()).unwrap()).collect();
    let mut distinct = pids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{pids:?}");
    assert_eq!(pids[0], pids[1]);
    assert_ne!(pids[1], pids[2]);
    assert_eq!(pool.apply(greeting, ()).unwrap(), 42);
    assert_eq!(pool.map(greeting, vec![(); 10]).unwrap(), vec![42; 10]);

    // An initializer that fails breaks the pool: every task fails, none hangs.
    let broken = Pool::builder()
        .processes(2)
        .initializer(failing_init, ())
        .build()
        .unwrap();
    let r = broken.apply_async(square, 3);
    assert!(
        matches!(r.get_timeout(LIMIT), Err(ResultTimeoutError::Task(TaskError::Initializer(m))) if m.contains("gives up"))
    );
    assert!(matches!(
        broken.map(square, 0..10u64),
        Err(TaskError::Initializer(_))
    ));
}

/// `apply` with several arguments, the way `starmap` takes them; an `imap` result waited for
/// with a timeout (Python's `IMapIterator.next(timeout)`), which loses nothing when it expires.
#[test]
fn apply_star_and_imap_next_timeout() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.apply_star(add, (2, 3)).unwrap(), 5);
    let r = pool.apply_star_async(describe, ("x".to_string(), 3, '-'));
    assert_eq!(r.get_timeout(LIMIT).unwrap(), describe("x".into(), 3, '-'));
    let mut it = pool.imap(nap, [300u64, 0]);
    assert!(matches!(
        it.next_timeout(Duration::from_millis(5)),
        Some(Err(ResultTimeoutError::Timeout))
    ));
    assert_eq!(it.next_timeout(LIMIT).unwrap().unwrap(), 300);
    assert_eq!(it.next_timeout(LIMIT).unwrap().unwrap(), 0);
    assert!(it.next_timeout(LIMIT).is_none(), "exhausted");
}

/// A fallible task's value without a nested `Result`: `try_apply`, `try_map` (and the
/// executor's `try_submit`) give the `Ok`'s value, and an `Err` as `TaskError::Failed`.
#[test]
fn fallible_tasks_come_back_without_a_nested_result() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let pool = Pool::new(2).unwrap();
    assert_eq!(
        pool.apply(odd_fails, 4).unwrap(),
        Ok(2),
        "apply keeps the Result"
    );
    assert_eq!(pool.try_apply(odd_fails, 4), Ok(2));
    assert!(matches!(pool.try_apply(odd_fails, 3), Err(TaskError::Failed(m)) if m.contains('3')));
    let r = pool.try_apply_async(odd_fails, 8);
    assert_eq!(r.get_timeout(LIMIT), Ok(4));
    assert_eq!(pool.try_map(odd_fails, [2i64, 4, 6]), Ok(vec![1, 2, 3]));
    assert!(matches!(
        pool.try_map(odd_fails, [2i64, 5, 6]),
        Err(TaskError::Failed(_))
    ));
    let executor = shmkit::futures::Executor::new(1).unwrap();
    assert_eq!(
        executor.try_submit(odd_fails, 10).result_timeout(LIMIT),
        Ok(5)
    );
}

#[test]
fn lifecycle_errors_are_clear() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    assert!(matches!(Pool::new(0), Err(Error::InvalidArgument { .. })));
    // As Python's Pool(maxtasksperchild=0), which raises ValueError.
    assert!(matches!(
        Pool::builder().max_tasks_per_child(0).build(),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Pool::builder()
            .initializer(picky_init, Picky { ok: false })
            .build(),
        Err(Error::InvalidArgument { .. })
    ));
    let pool = Pool::new(1).unwrap();
    assert!(matches!(pool.join(), Err(PoolJoinError::StillOpen)));
    let r = pool.apply_async(sleep_ms, 50);
    pool.close();
    assert_eq!(pool.apply(square, 2), Err(TaskError::Closed));
    // join lets the submitted task finish, then stops the workers.
    let pids = pool.pids();
    pool.join_timeout(LIMIT).unwrap();
    assert!(r.get_timeout(Duration::ZERO).is_ok());
    for pid in pids {
        assert!(!alive(pid));
    }

    // Dropping a pool terminates it.
    let pool = Pool::new(2).unwrap();
    let pids = pool.pids();
    let r = pool.apply_async(sleep_ms, 10_000);
    drop(pool);
    assert_eq!(
        r.get_timeout(LIMIT),
        Err(ResultTimeoutError::Task(TaskError::Terminated))
    );
    for pid in pids {
        assert!(!alive(pid));
    }
}

#[test]
fn pools_and_results_can_be_shared_between_threads() {
    shmkit::init();
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Pool>();
    send_sync::<shmkit::AsyncResult<Vec<u64>>>();
    send_sync::<shmkit::futures::Executor>();
    send_sync::<shmkit::futures::Future<String>>();
    watchdog(Duration::from_secs(120));
    let pool = Arc::new(Pool::new(2).unwrap());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || pool.map(square, t * 100..(t + 1) * 100).unwrap())
        })
        .collect();
    for (t, h) in threads.into_iter().enumerate() {
        let t = t as u64;
        let expect: Vec<u64> = (t * 100..(t + 1) * 100).map(|x| x * x).collect();
        assert_eq!(h.join().unwrap(), expect);
    }
}
