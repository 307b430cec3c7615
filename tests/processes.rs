//! Value, Array and the robust lock across real processes: each test re-executes this binary
//! to run its child role (see `common`).

mod common;

use std::time::{Duration, Instant};

use common::{arg, role, spawn, wait, wait_until, watchdog};
use shmkit::{Array, LockError, LockTimeoutError, RawValue, Value};

const CHILD_LIMIT: Duration = Duration::from_secs(120);

#[test]
fn two_processes_add_to_one_value_under_its_lock() {
    watchdog(Duration::from_secs(240));
    if role().is_some() {
        let v: Value<f64> = serde_json::from_str(&arg("VALUE")).unwrap();
        for _ in 0..100_000 {
            v.update(|x| *x += 1.0).unwrap();
        }
        return;
    }
    let v = Value::new(0.0f64).unwrap();
    let handle = serde_json::to_string(&v).unwrap();
    let mut kids: Vec<_> = (0..2)
        .map(|_| {
            spawn(
                "two_processes_add_to_one_value_under_its_lock",
                "adder",
                &[("VALUE", &handle)],
            )
        })
        .collect();
    for k in &mut kids {
        assert!(wait(k, CHILD_LIMIT).success());
    }
    assert_eq!(v.get().unwrap(), 200_000.0);
}

#[test]
fn a_child_fills_an_array_and_the_parent_sums_it() {
    watchdog(Duration::from_secs(240));
    const N: usize = 1 << 20;
    if role().is_some() {
        let a: Array<i32> = Array::open_with_len(&arg("ARRAY"), N).unwrap();
        let mut g = a.lock().unwrap();
        for (i, x) in g.iter_mut().enumerate() {
            *x = i as i32;
        }
        return;
    }
    let a = Array::<i32>::new(N).unwrap();
    let mut kid = spawn(
        "a_child_fills_an_array_and_the_parent_sums_it",
        "filler",
        &[("ARRAY", a.name())],
    );
    assert!(wait(&mut kid, CHILD_LIMIT).success());
    let g = a.lock_timeout(Duration::from_secs(5)).unwrap();
    let sum: i64 = g.iter().map(|&x| i64::from(x)).sum();
    assert_eq!(sum, (N as i64) * (N as i64 - 1) / 2);
}

/// The child takes the lock, leaves the value half-updated, says so through a raw flag, and then
/// dies (SIGKILL from the parent, or its own abort()).
fn holder_child() {
    let v: Value<u64> = Value::open(&arg("VALUE")).unwrap();
    let flag: RawValue<u32> = RawValue::open(&arg("FLAG")).unwrap();
    let mut g = v.lock().unwrap();
    *g = 42;
    flag.set(1);
    if role().as_deref() == Some("abort") {
        std::process::abort();
    }
    std::thread::sleep(Duration::from_secs(60));
    drop(g);
}

fn dead_holder_is_reported(test: &str, how: &str) {
    let v = Value::new(7u64).unwrap();
    let flag = RawValue::new(0u32).unwrap();
    let mut kid = spawn(test, how, &[("VALUE", v.name()), ("FLAG", flag.name())]);
    wait_until(
        "the child to hold the lock",
        Duration::from_secs(30),
        || flag.get() == 1,
    );
    if how == "sigkill" {
        kid.kill().unwrap(); // SIGKILL
    }
    let status = wait(&mut kid, CHILD_LIMIT);
    assert!(!status.success());

    // The next locker must not hang: within a second it gets owner-died, with the data.
    let t0 = Instant::now();
    match v.lock_timeout(Duration::from_secs(1)) {
        Err(LockTimeoutError::OwnerDied(g)) => assert_eq!(*g, 42),
        other => panic!("expected OwnerDied after {:?}, got {other:?}", t0.elapsed()),
    }
    // Not marked consistent: everyone keeps being told, as with std's poisoning.
    assert!(v.is_poisoned());
    assert!(matches!(v.get(), Err(LockError::OwnerDied(42))));
    match v.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            *g = 0;
            g.mark_consistent();
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(!v.is_poisoned());
    assert_eq!(v.get().unwrap(), 0);
    v.set(1).unwrap();
    assert_eq!(*v.try_lock().unwrap(), 1);
}

#[test]
fn a_lock_holder_killed_with_sigkill_yields_owner_died() {
    watchdog(Duration::from_secs(120));
    if role().is_some() {
        return holder_child();
    }
    dead_holder_is_reported(
        "a_lock_holder_killed_with_sigkill_yields_owner_died",
        "sigkill",
    );
}

#[test]
fn a_lock_holder_that_aborts_yields_owner_died() {
    watchdog(Duration::from_secs(120));
    if role().is_some() {
        return holder_child();
    }
    dead_holder_is_reported("a_lock_holder_that_aborts_yields_owner_died", "abort");
}

/// Workers hammer an array under its lock (write a stripe, check it) while the parent SIGKILLs
/// them at random moments, many times. After every kill the lock must be obtainable at once,
/// and a consistent stripe must be restorable.
#[test]
fn workers_killed_at_random_moments_never_freeze_the_lock() {
    watchdog(Duration::from_secs(240));
    const TEST: &str = "workers_killed_at_random_moments_never_freeze_the_lock";
    if role().is_some() {
        let a: Array<u64> = Array::open(&arg("ARRAY")).unwrap();
        for round in 1u64.. {
            let r = a.update(|s| {
                for x in s.iter_mut() {
                    *x = round;
                }
            });
            if let Err(LockError::OwnerDied(())) = r {
                a.lock().map_or_else(
                    |e| e.into_inner().unwrap().mark_consistent(),
                    |g| g.mark_consistent(),
                );
            }
        }
        return;
    }
    let a = Array::<u64>::new(4096).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let mut owner_died = 0;
    for _ in 0..25 {
        let mut kids: Vec<_> = (0..2)
            .map(|_| spawn(TEST, "worker", &[("ARRAY", a.name())]))
            .collect();
        // xorshift: a random moment in the first 30 ms of their work.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(2_000 + seed % 30_000));
        for k in &mut kids {
            let _ = k.kill();
            wait(k, CHILD_LIMIT);
        }
        let g = match a.lock_timeout(Duration::from_secs(1)) {
            Ok(g) => g,
            Err(LockTimeoutError::OwnerDied(g)) => {
                owner_died += 1;
                g
            }
            Err(e) => panic!("lock unusable after killing its users: {e:?}"),
        };
        // Whatever the state of the data, the holder can repair it and mark it consistent.
        g.mark_consistent();
        drop(g);
        a.update(|s| s.fill(0)).unwrap();
    }
    eprintln!("{owner_died} of 25 rounds found the lock held by a killed worker");
}

/// More processes than cores, all contending: mutual exclusion must hold (an exact count) and
/// nobody may be left asleep.
#[test]
fn more_processes_than_cores_keep_an_exact_count() {
    watchdog(Duration::from_secs(240));
    const TEST: &str = "more_processes_than_cores_keep_an_exact_count";
    if role().is_some() {
        let v: Value<u64> = Value::open(&arg("VALUE")).unwrap();
        for _ in 0..50_000 {
            // A read, a yield-prone gap and a write: only the lock keeps this exact.
            let mut g = v.lock().unwrap();
            let x = *g;
            std::hint::black_box(&x);
            *g = x + 1;
        }
        return;
    }
    let v = Value::new(0u64).unwrap();
    let mut kids: Vec<_> = (0..6)
        .map(|_| spawn(TEST, "adder", &[("VALUE", v.name())]))
        .collect();
    for k in &mut kids {
        assert!(wait(k, CHILD_LIMIT).success());
    }
    assert_eq!(v.get().unwrap(), 300_000);
}

/// Waiters asleep on a held lock; one is SIGKILLed while it sleeps. When the holder lets go,
/// the surviving waiters must all get the lock (a killed sleeper must not swallow the hand-off).
#[test]
fn a_waiter_killed_while_asleep_does_not_strand_the_others() {
    watchdog(Duration::from_secs(120));
    const TEST: &str = "a_waiter_killed_while_asleep_does_not_strand_the_others";
    if role().is_some() {
        let v: Value<u64> = Value::open(&arg("VALUE")).unwrap();
        let waiting: Array<u32> = Array::open(&arg("WAITING")).unwrap();
        let slot: usize = arg("SLOT").parse().unwrap();
        waiting.set(slot, 1).unwrap();
        v.update(|x| *x += 1).unwrap();
        return;
    }
    let v = Value::new(0u64).unwrap();
    let waiting = Array::<u32>::new(4).unwrap();
    let held = v.lock().unwrap();
    let mut kids: Vec<_> = (0..4)
        .map(|i| {
            spawn(
                TEST,
                "waiter",
                &[
                    ("VALUE", v.name()),
                    ("WAITING", waiting.name()),
                    ("SLOT", &i.to_string()),
                ],
            )
        })
        .collect();
    wait_until(
        "all waiters to be about to lock",
        Duration::from_secs(30),
        || waiting.to_vec().unwrap().iter().all(|&w| w == 1),
    );
    std::thread::sleep(Duration::from_millis(100)); // let them fall asleep in lock()
    kids[0].kill().unwrap();
    wait(&mut kids[0], CHILD_LIMIT);
    drop(held);
    for k in &mut kids[1..] {
        assert!(wait(k, Duration::from_secs(30)).success());
    }
    assert_eq!(v.get().unwrap(), 3);
}
