//! Lock, RLock, Semaphore, Event, Condition, Barrier and Pipe across real processes.

mod common;

use std::time::{Duration, Instant};

use common::{arg, role, spawn, wait, wait_until, watchdog};
use shmkit::{
    Array, Barrier, BarrierTimeoutError, BarrierTryError, BrokenBarrier, Condition, Connection,
    End, Event, Lock, LockTimeoutError, NotLocked, NotOwner, Pipe, RLock, RawValue, RecvError,
    RecvTimeoutError, Semaphore, SendError, Timeout, TooManyReleases, TryLockError, Value,
    WaitError, WouldBlock,
};

const LIMIT: Duration = Duration::from_secs(60);

/// Five parties (four child processes and the parent) pass a barrier ten times in lockstep:
/// nobody leaves a pass before all have arrived, exactly one gets index 0 each pass, and the
/// action runs exactly once per pass.
#[test]
fn five_parties_pass_a_barrier_in_lockstep_ten_times() {
    watchdog(Duration::from_secs(120));
    const TEST: &str = "five_parties_pass_a_barrier_in_lockstep_ten_times";
    let party = |barrier: Barrier,
                 arrivals: Array<u32>,
                 indexes: Array<u32>,
                 actions: Value<u32>,
                 me: usize| {
        let barrier = barrier.with_action(move || actions.update(|a| *a += 1).unwrap());
        for round in 0..10 {
            arrivals.update(|a| a[round] += 1).unwrap();
            let index = barrier.wait_timeout(Duration::from_secs(30)).unwrap();
            assert_eq!(
                arrivals.get(round).unwrap(),
                5,
                "left pass {round} before everyone arrived"
            );
            indexes.set(round * 5 + me, index).unwrap();
        }
    };
    if role().is_some() {
        let me: usize = arg("ME").parse().unwrap();
        return party(
            Barrier::open(&arg("BARRIER")).unwrap(),
            Array::open(&arg("ARRIVALS")).unwrap(),
            Array::open(&arg("INDEXES")).unwrap(),
            Value::open(&arg("ACTIONS")).unwrap(),
            me,
        );
    }
    let barrier = Barrier::new(5).unwrap();
    let (arrivals, indexes) = (
        Array::<u32>::new(10).unwrap(),
        Array::<u32>::new(50).unwrap(),
    );
    let actions = Value::new(0u32).unwrap();
    let mut kids: Vec<_> = (1..5)
        .map(|me| {
            let me = me.to_string();
            let vars = [
                ("BARRIER", barrier.name()),
                ("ARRIVALS", arrivals.name()),
                ("INDEXES", indexes.name()),
                ("ACTIONS", actions.name()),
                ("ME", &me),
            ];
            spawn(TEST, "party", &vars)
        })
        .collect();
    party(
        barrier.clone(),
        arrivals.clone(),
        indexes.clone(),
        actions.clone(),
        0,
    );
    for k in &mut kids {
        assert!(wait(k, LIMIT).success());
    }
    let idx = indexes.to_vec().unwrap();
    for round in 0..10 {
        let mut pass: Vec<u32> = idx[round * 5..round * 5 + 5].to_vec();
        pass.sort();
        assert_eq!(
            pass,
            [0, 1, 2, 3, 4],
            "pass {round}: indexes must be distinct, one of them 0"
        );
    }
    assert_eq!(actions.get().unwrap(), 10, "the action runs once per pass");
}

/// Six processes wait on a condition; `notify(2)` lets exactly two of them go.
#[test]
fn notify_two_wakes_exactly_two_of_six_waiters() {
    watchdog(Duration::from_secs(120));
    const TEST: &str = "notify_two_wakes_exactly_two_of_six_waiters";
    if role().is_some() {
        let cond = Condition::open(&arg("COND")).unwrap();
        let (ready, woke) = (
            Value::<u32>::open(&arg("READY")).unwrap(),
            Value::<u32>::open(&arg("WOKE")).unwrap(),
        );
        cond.acquire().unwrap();
        ready.update(|r| *r += 1).unwrap();
        cond.wait_timeout(Duration::from_secs(60))
            .expect("never notified");
        woke.update(|w| *w += 1).unwrap();
        cond.release().unwrap();
        return;
    }
    let cond = Condition::new().unwrap();
    let (ready, woke) = (Value::new(0u32).unwrap(), Value::new(0u32).unwrap());
    let vars = [
        ("COND", cond.name()),
        ("READY", ready.name()),
        ("WOKE", woke.name()),
    ];
    let mut kids: Vec<_> = (0..6).map(|_| spawn(TEST, "waiter", &vars)).collect();
    wait_until("six waiters", LIMIT, || ready.get().unwrap() == 6);
    // Each waiter counted itself under the condition's lock and released it only by waiting:
    // once we hold the lock, all six are waiting.
    cond.acquire().unwrap();
    assert!(matches!(Condition::notify(&cond, 2), Ok(())));
    cond.release().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        woke.get().unwrap(),
        2,
        "notify(2) must let exactly two waiters go"
    );
    cond.acquire().unwrap();
    cond.notify_all().unwrap();
    cond.release().unwrap();
    for k in &mut kids {
        assert!(wait(k, LIMIT).success());
    }
    assert_eq!(woke.get().unwrap(), 6);
    assert!(
        matches!(cond.notify(1), Err(NotOwner)),
        "notify without the lock"
    );
    assert!(
        matches!(cond.wait(), Err(WaitError::NotOwner)),
        "wait without the lock"
    );
}

/// A semaphore of 2 limits four processes to two at a time, measured by a shared counter.
#[test]
fn a_semaphore_of_two_limits_four_processes_to_two_at_a_time() {
    watchdog(Duration::from_secs(120));
    const TEST: &str = "a_semaphore_of_two_limits_four_processes_to_two_at_a_time";
    if role().is_some() {
        let sem = Semaphore::open(&arg("SEM")).unwrap();
        let (inside, most) = (
            Value::<i32>::open(&arg("INSIDE")).unwrap(),
            Value::<i32>::open(&arg("MOST")).unwrap(),
        );
        for _ in 0..40 {
            let permit = sem.acquire_timeout(Duration::from_secs(30)).unwrap();
            let now = inside.update(|n| {
                *n += 1;
                *n
            });
            most.update(|m| *m = (*m).max(now.unwrap())).unwrap();
            std::thread::sleep(Duration::from_micros(500));
            inside.update(|n| *n -= 1).unwrap();
            drop(permit);
        }
        return;
    }
    let sem = Semaphore::new(2).unwrap();
    let (inside, most) = (Value::new(0i32).unwrap(), Value::new(0i32).unwrap());
    let vars = [
        ("SEM", sem.name()),
        ("INSIDE", inside.name()),
        ("MOST", most.name()),
    ];
    let mut kids: Vec<_> = (0..4).map(|_| spawn(TEST, "worker", &vars)).collect();
    for k in &mut kids {
        assert!(wait(k, LIMIT).success());
    }
    assert_eq!(
        most.get().unwrap(),
        2,
        "at most two inside, and two did get in together"
    );
    assert_eq!((inside.get().unwrap(), sem.value()), (0, 2));
}

#[test]
fn bounded_semaphores_refuse_extra_releases_and_timeouts_are_honoured() {
    watchdog(Duration::from_secs(60));
    let b = Semaphore::bounded(1).unwrap();
    assert!(matches!(b.release(), Err(TooManyReleases)));
    let held = b.try_acquire().unwrap();
    assert!(matches!(b.try_acquire(), Err(WouldBlock)));
    let t0 = Instant::now();
    assert!(matches!(
        b.acquire_timeout(Duration::from_millis(50)),
        Err(Timeout)
    ));
    assert!(t0.elapsed() >= Duration::from_millis(50));
    drop(held); // the permit gives its unit back
    assert_eq!(b.value(), 1);
    b.acquire().forget(); // Python's style: acquire here, release later (or elsewhere)
    assert_eq!(b.value(), 0);
    b.release().unwrap();
    assert_eq!(b.value(), 1);
    let u = Semaphore::new(0).unwrap();
    u.release().unwrap();
    u.release().unwrap();
    assert_eq!(
        u.value(),
        2,
        "an unbounded semaphore may go above its start"
    );
}

/// Python lets anyone release a `Lock`. A guard whose hold was released that way must not,
/// when dropped, release the hold a third party took since: here another process releases the
/// parent's guarded hold and takes the lock itself.
#[test]
fn a_guard_never_releases_a_hold_someone_took_after_an_ownerless_release() {
    watchdog(Duration::from_secs(120));
    const TEST: &str = "a_guard_never_releases_a_hold_someone_took_after_an_ownerless_release";
    if role().is_some() {
        let lock = Lock::open(&arg("LOCK")).unwrap();
        lock.release().unwrap(); // the parent's hold, released by another process
        lock.acquire_timeout(Duration::from_secs(10)).unwrap();
        RawValue::<u32>::open(&arg("FLAG")).unwrap().set(1);
        std::thread::sleep(Duration::from_secs(60)); // holds it until killed
        return;
    }
    let lock = Lock::new().unwrap();
    let flag = RawValue::new(0u32).unwrap();
    let guard = lock.lock().unwrap();
    let mut kid = spawn(
        TEST,
        "thief",
        &[("LOCK", lock.name()), ("FLAG", flag.name())],
    );
    wait_until("the child to take the lock", LIMIT, || flag.get() == 1);
    drop(guard);
    assert!(
        lock.is_locked(),
        "the stale guard released the child's hold"
    );
    assert!(matches!(lock.try_acquire(), Err(TryLockError::WouldBlock)));
    kid.kill().unwrap();
    wait(&mut kid, LIMIT);

    // The same thread taking the lock again after its guarded hold was released: the old
    // guard leaves the newer hold alone too.
    let lock = Lock::new().unwrap();
    let old = lock.lock().unwrap();
    lock.release().unwrap();
    let newer = lock.try_lock().unwrap();
    drop(old);
    assert!(
        lock.is_locked(),
        "the stale guard released a newer hold of its own thread"
    );
    drop(newer);
    assert!(!lock.is_locked());
    let held = lock.lock_timeout(Duration::from_secs(1)).unwrap();
    assert!(matches!(lock.try_lock(), Err(TryLockError::Deadlock)));
    drop(held);
    assert!(!lock.is_locked());
}

/// The child holds a Lock and is SIGKILLed: the next acquirer gets it, told the owner died.
/// Another process may release a Lock it did not acquire (it has no owner).
#[test]
fn a_lock_holder_sigkilled_and_a_lock_released_by_another_process() {
    watchdog(Duration::from_secs(120));
    const TEST: &str = "a_lock_holder_sigkilled_and_a_lock_released_by_another_process";
    match role().as_deref() {
        Some("holder") => {
            let lock = Lock::open(&arg("LOCK")).unwrap();
            lock.acquire().unwrap();
            RawValue::<u32>::open(&arg("FLAG")).unwrap().set(1);
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        Some("releaser") => return Lock::open(&arg("LOCK")).unwrap().release().unwrap(),
        _ => {}
    }
    let lock = Lock::new().unwrap();
    let flag = RawValue::new(0u32).unwrap();
    let mut kid = spawn(
        TEST,
        "holder",
        &[("LOCK", lock.name()), ("FLAG", flag.name())],
    );
    wait_until("the child to hold the lock", LIMIT, || flag.get() == 1);
    assert!(matches!(lock.try_acquire(), Err(TryLockError::WouldBlock)));
    kid.kill().unwrap();
    wait(&mut kid, LIMIT);
    assert!(matches!(
        lock.acquire_timeout(Duration::from_secs(1)),
        Err(LockTimeoutError::OwnerDied(()))
    ));
    assert!(lock.is_locked());
    let mut releaser = spawn(TEST, "releaser", &[("LOCK", lock.name())]);
    assert!(wait(&mut releaser, LIMIT).success());
    assert!(!lock.is_locked());
    assert!(matches!(lock.release(), Err(NotLocked)));
    let guard = lock.lock().unwrap();
    assert!(matches!(lock.try_acquire(), Err(TryLockError::Deadlock)));
    drop(guard);
    assert!(!lock.is_locked());
}

#[test]
fn an_rlock_is_reentrant_for_its_owner_only() {
    watchdog(Duration::from_secs(60));
    let r = RLock::new().unwrap();
    r.acquire().unwrap();
    r.acquire().unwrap();
    assert!(r.is_owned());
    let r2 = r.clone();
    std::thread::spawn(move || {
        assert!(matches!(r2.release(), Err(NotOwner)));
        assert!(matches!(r2.try_acquire(), Err(TryLockError::WouldBlock)));
    })
    .join()
    .unwrap();
    r.release().unwrap();
    assert!(r.is_owned(), "held once more");
    r.release().unwrap();
    assert!(!r.is_owned());
    assert!(matches!(r.release(), Err(NotOwner)));
    let r3 = r.clone();
    std::thread::spawn(move || r3.acquire_timeout(Duration::from_secs(5)).unwrap())
        .join()
        .unwrap();
}

#[test]
fn an_event_set_in_one_process_releases_a_waiter_in_another() {
    watchdog(Duration::from_secs(120));
    if role().is_some() {
        let (go, done) = (
            Event::open(&arg("GO")).unwrap(),
            Event::open(&arg("DONE")).unwrap(),
        );
        assert!(go.wait_timeout(Duration::from_secs(30)));
        done.set();
        return;
    }
    let (go, done) = (Event::new().unwrap(), Event::new().unwrap());
    let t0 = Instant::now();
    assert!(!done.wait_timeout(Duration::from_millis(50)));
    assert!(t0.elapsed() >= Duration::from_millis(50));
    let mut kid = spawn(
        "an_event_set_in_one_process_releases_a_waiter_in_another",
        "waiter",
        &[("GO", go.name()), ("DONE", done.name())],
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(!done.is_set());
    go.set();
    assert!(done.wait_timeout(Duration::from_secs(30)));
    assert!(wait(&mut kid, LIMIT).success());
    go.clear();
    assert!(!go.is_set());
}

/// A barrier handle with a default timeout (Python's `Barrier(parties, timeout=...)`): a `wait`
/// that passes it breaks the barrier, as Python's does.
#[test]
fn a_default_timeout_breaks_the_barrier() {
    watchdog(Duration::from_secs(60));
    let b = Barrier::new(2)
        .unwrap()
        .with_timeout(Duration::from_millis(30));
    let t0 = Instant::now();
    assert!(matches!(b.wait(), Err(BrokenBarrier)));
    assert!(t0.elapsed() >= Duration::from_millis(30));
    assert!(b.is_broken());
}

/// `try_wait` passes only as the last party to arrive; otherwise it does not arrive at all.
#[test]
fn try_wait_passes_a_barrier_only_as_its_last_party() {
    watchdog(Duration::from_secs(60));
    let b = Barrier::new(2).unwrap();
    assert!(matches!(b.try_wait(), Err(BarrierTryError::WouldBlock)));
    assert_eq!(b.n_waiting(), 0, "a refused try_wait does not arrive");
    let b2 = b.clone();
    let first = std::thread::spawn(move || b2.wait_timeout(Duration::from_secs(30)));
    wait_until("a waiter", LIMIT, || b.n_waiting() == 1);
    assert_eq!(b.try_wait().unwrap(), 1, "the last to arrive");
    assert_eq!(first.join().unwrap().unwrap(), 0);
    b.abort();
    assert!(matches!(b.try_wait(), Err(BarrierTryError::Broken)));
}

#[test]
fn abort_reset_and_timeout_break_a_barrier_for_every_waiter() {
    watchdog(Duration::from_secs(60));
    let b = Barrier::new(3).unwrap();
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || b.wait())
        })
        .collect();
    wait_until("two waiters", LIMIT, || b.n_waiting() == 2);
    b.abort();
    for w in waiters {
        assert!(matches!(w.join().unwrap(), Err(BrokenBarrier)));
    }
    assert!(matches!(b.wait(), Err(BrokenBarrier)), "broken until reset");
    b.reset();
    let b2 = b.clone();
    let late = std::thread::spawn(move || b2.wait_timeout(Duration::from_secs(10)));
    wait_until("a waiter", LIMIT, || b.n_waiting() == 1);
    let t0 = Instant::now();
    assert!(matches!(
        b.wait_timeout(Duration::from_millis(50)),
        Err(BarrierTimeoutError::Timeout)
    ));
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert!(
        matches!(late.join().unwrap(), Err(BarrierTimeoutError::Broken)),
        "a timeout breaks it for all"
    );
    assert!(matches!(
        Barrier::new(0),
        Err(shmkit::Error::InvalidArgument { .. })
    ));
}

/// Request/response over a duplex pipe handed to a child; then the child is SIGKILLed and the
/// parent's recv reports end-of-file instead of blocking forever.
#[test]
fn a_pipe_to_a_child_answers_and_reports_eof_when_the_child_is_killed() {
    watchdog(Duration::from_secs(120));
    if role().is_some() {
        let conn: Connection<String> = serde_json::from_str(&arg("CONN")).unwrap();
        let s = conn.recv().unwrap();
        conn.send(&s.to_uppercase()).unwrap();
        conn.send_bytes(b"last words").unwrap();
        std::thread::sleep(Duration::from_secs(60)); // killed here, without closing
        return;
    }
    let (mine, theirs) = Pipe::<String>::duplex().unwrap();
    let mut kid = spawn(
        "a_pipe_to_a_child_answers_and_reports_eof_when_the_child_is_killed",
        "child",
        &[("CONN", &serde_json::to_string(&theirs).unwrap())],
    );
    mine.send("hello").unwrap();
    assert!(mine.poll(Duration::from_secs(30)));
    assert_eq!(mine.recv().unwrap(), "HELLO");
    kid.kill().unwrap();
    wait(&mut kid, LIMIT);
    let t0 = Instant::now();
    assert_eq!(
        mine.recv_bytes().unwrap(),
        b"last words",
        "what was sent before the death arrives"
    );
    assert!(matches!(mine.recv_bytes(), Err(RecvError::Eof)));
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        mine.send_bytes(b"anyone?"),
        Err(SendError::BrokenPipe)
    ));
}

#[test]
fn closing_one_end_gives_the_other_eof_after_what_was_sent() {
    watchdog(Duration::from_secs(60));
    let (r, w) = Pipe::<u64>::simplex().unwrap();
    assert!(
        matches!(r.send_bytes(b"x"), Err(SendError::BrokenPipe)),
        "the read end of a one-way pipe"
    );
    w.send(&42u64).unwrap();
    w.close();
    assert!(matches!(w.send(&1u64), Err(SendError::BrokenPipe)));
    assert!(r.poll(Duration::ZERO));
    assert_eq!(r.recv().unwrap(), 42);
    assert!(matches!(r.recv(), Err(RecvError::Eof)));
    let (a, b) = Pipe::<u8>::duplex().unwrap();
    // A typed end cannot be received as another type: an error, never a misread.
    let as_text = serde_json::to_string(&b).unwrap();
    let wrong = serde_json::from_str::<Connection<f64>>(&as_text).unwrap_err();
    assert!(wrong.to_string().contains("stores"), "{wrong}");
    assert!(!a.poll(Duration::from_millis(20)));
    assert!(matches!(
        a.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    ));
    assert!(matches!(a.try_recv(), Err(shmkit::TryRecvError::Empty)));
    b.send(&7).unwrap();
    assert_eq!(a.recv_timeout(Duration::from_secs(5)).unwrap(), 7);
    drop(b); // the holder's last handle: closes that end
    assert!(matches!(a.recv_bytes(), Err(RecvError::Eof)));
}

/// A child opens a named pipe by name; an RLock held twice by one process blocks another until
/// it is released twice.
#[test]
fn named_pipes_and_rlocks_across_processes() {
    watchdog(Duration::from_secs(120));
    const TEST: &str = "named_pipes_and_rlocks_across_processes";
    if role().is_some() {
        let conn = Connection::<String>::open(&arg("PIPE"), End::B).unwrap();
        // Opening it with other types is an error, not a misread (Python would misread).
        assert!(matches!(
            Connection::<f64>::open(&arg("PIPE"), End::B),
            Err(shmkit::Error::TypeMismatch { .. })
        ));
        let r = RLock::open(&arg("RLOCK")).unwrap();
        r.acquire().unwrap();
        r.acquire().unwrap();
        conn.send("held twice").unwrap();
        assert_eq!(conn.recv().unwrap(), "release");
        r.release().unwrap();
        conn.send("released once").unwrap();
        assert_eq!(conn.recv().unwrap(), "release");
        r.release().unwrap();
        conn.send("released").unwrap();
        return;
    }
    let name = common::unique("pipe");
    let (mine, _theirs) = Pipe::<String>::create_duplex(&name).unwrap();
    assert_eq!(mine.name(), name);
    let r = RLock::new().unwrap();
    let mut kid = spawn(TEST, "child", &[("PIPE", &name), ("RLOCK", r.name())]);
    assert_eq!(mine.recv().unwrap(), "held twice");
    assert!(matches!(r.try_acquire(), Err(TryLockError::WouldBlock)));
    mine.send("release").unwrap();
    assert_eq!(mine.recv().unwrap(), "released once");
    assert!(
        matches!(r.try_acquire(), Err(TryLockError::WouldBlock)),
        "still held once"
    );
    mine.send("release").unwrap();
    assert_eq!(mine.recv().unwrap(), "released");
    r.acquire_timeout(Duration::from_secs(10)).unwrap();
    assert!(wait(&mut kid, LIMIT).success());
    assert!(matches!(
        Connection::<u8>::open("no-such-pipe", End::A),
        Err(shmkit::Error::NotFound { .. })
    ));
}

/// Two processes wait on an empty semaphore; one is SIGKILLed in its sleep. A release still
/// reaches the other.
#[test]
fn a_waiter_killed_in_its_sleep_leaves_a_semaphore_usable() {
    watchdog(Duration::from_secs(120));
    const TEST: &str = "a_waiter_killed_in_its_sleep_leaves_a_semaphore_usable";
    if role().is_some() {
        let sem = Semaphore::open(&arg("SEM")).unwrap();
        sem.acquire_timeout(Duration::from_secs(30))
            .expect("never got the unit")
            .forget();
        return;
    }
    let sem = Semaphore::new(0).unwrap();
    let mut doomed = spawn(TEST, "waiter", &[("SEM", sem.name())]);
    let mut survivor = spawn(TEST, "waiter", &[("SEM", sem.name())]);
    std::thread::sleep(Duration::from_millis(300)); // both asleep in acquire
    doomed.kill().unwrap();
    wait(&mut doomed, LIMIT);
    sem.release().unwrap();
    assert!(wait(&mut survivor, LIMIT).success());
    assert_eq!(sem.value(), 0);
}
