//! What SIGKILL leaves is reclaimed by the next shmkit process once no live process uses it:
//! `init()` looks for abandoned segments in the background. A segment a live process still
//! maps is never taken, and a pool's workers die with their SIGKILLed parent, after which its
//! segments are reclaimed too.

mod common;

use std::time::{Duration, Instant};

use common::{arg, role, shm_path, spawn, unique, wait, wait_until, watchdog};
use shmkit::{Pool, RawArray, Value};

const LIMIT: Duration = Duration::from_secs(30);
const TEST: &str = "abandoned_segments_are_reclaimed_by_the_next_process_never_while_in_use";

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn maps(pid: u32, name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .is_ok_and(|m| m.contains(&format!("/dev/shm/shmkit-{name}")))
}

/// Whether `pid` has ended (gone, or a zombie nobody reaped yet).
fn ended(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

fn pid(_: u32) -> u32 {
    std::process::id()
}

#[test]
fn abandoned_segments_are_reclaimed_by_the_next_process_never_while_in_use() {
    match role().as_deref() {
        Some("creator") => {
            shmkit::init();
            let _a = Value::create(&format!("{}-a", arg("BASE")), 1u32).unwrap();
            let _b = Value::create(&format!("{}-b", arg("BASE")), 2u32).unwrap();
            sleep_forever();
        }
        Some("user") => {
            shmkit::init();
            let b = Value::<u32>::open(&format!("{}-b", arg("BASE"))).unwrap();
            assert_eq!(b.get().unwrap(), 2);
            sleep_forever();
        }
        Some("starter") => {
            // A new program: its init() reclaims in the background (grace 0 from the env).
            shmkit::init();
            let gone = arg("GONE");
            wait_until("the background reclaim", LIMIT, || {
                !shm_path(&gone).exists()
            });
            std::process::exit(0);
        }
        Some("pool-owner") => {
            shmkit::init();
            let pids = RawArray::<u32>::open(&arg("PIDS")).unwrap();
            let pool = Pool::new(2).unwrap();
            for (i, p) in pool.pids().into_iter().enumerate() {
                pids.set(i, p).unwrap();
            }
            assert_eq!(pool.map(pid, 0..8u32).unwrap().len(), 8);
            pids.set(2, std::process::id()).unwrap();
            sleep_forever();
        }
        _ => {}
    }
    watchdog(Duration::from_secs(240));
    let base = unique("tracker");
    let (a, b) = (format!("{base}-a"), format!("{base}-b"));
    let mut creator = spawn(TEST, "creator", &[("BASE", &base)]);
    wait_until("the creator's segments", LIMIT, || shm_path(&b).exists());
    let mut user = spawn(TEST, "user", &[("BASE", &base)]);
    wait_until("the user to map b", LIMIT, || maps(user.id(), &b));
    creator.kill().unwrap();
    wait(&mut creator, LIMIT);
    assert!(
        shm_path(&a).exists() && shm_path(&b).exists(),
        "left by SIGKILL"
    );

    // The next program reclaims `a`, and leaves `b`, which the user still maps.
    let grace = ("SHMKIT_RECLAIM_GRACE", "0");
    let mut starter = spawn(TEST, "starter", &[("GONE", &a), grace]);
    assert!(wait(&mut starter, LIMIT).success(), "a was reclaimed");
    std::thread::sleep(Duration::from_millis(200));
    assert!(shm_path(&b).exists(), "b is in use: never reclaimed");

    // Once its last user is gone, `b` goes too.
    user.kill().unwrap();
    wait(&mut user, LIMIT);
    let mut starter = spawn(TEST, "starter", &[("GONE", &b), grace]);
    assert!(wait(&mut starter, LIMIT).success(), "b was reclaimed");

    // A pool's workers die with their SIGKILLed parent, and what they all used is reclaimed.
    let pids = RawArray::<u32>::new(3).unwrap();
    let mut owner = spawn(TEST, "pool-owner", &[("PIDS", pids.name())]);
    wait_until("the pool", LIMIT, || pids.get(2).unwrap() != 0);
    let workers = [pids.get(0).unwrap(), pids.get(1).unwrap()];
    let owner_pid = owner.id();
    owner.kill().unwrap();
    let killed = Instant::now();
    wait(&mut owner, LIMIT);
    wait_until("the workers to die", LIMIT, || {
        workers.iter().all(|&w| ended(w))
    });
    eprintln!(
        "pool workers ended {:?} after their parent's SIGKILL",
        killed.elapsed()
    );
    let theirs = |s: &shmkit::shm::SegmentInfo| {
        s.creator_pid
            .is_some_and(|p| p == owner_pid || workers.contains(&p))
    };
    assert!(
        shmkit::shm::segments().unwrap().iter().any(theirs),
        "left by SIGKILL"
    );
    shmkit::shm::reclaim_abandoned(Duration::ZERO).unwrap();
    let left: Vec<_> = shmkit::shm::segments()
        .unwrap()
        .into_iter()
        .filter(theirs)
        .collect();
    assert!(
        left.is_empty(),
        "the pool's segments were reclaimed: {left:?}"
    );
}
