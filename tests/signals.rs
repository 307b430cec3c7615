//! Ctrl-C, SIGTERM and SIGHUP leave nothing in `/dev/shm`: a child that keeps creating and
//! dropping segments (named ones, anonymous ones, a queue with a spilled item) is stopped by
//! each signal at random moments; it dies of that signal, none of its segments is left, and
//! the next run with the same names succeeds (30 rounds of each). A handler the program installed first still
//! runs, and an ignored signal stays ignored.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{arg, role, shm_path, spawn, unique, wait, wait_until, watchdog};
use shmkit::{Array, Queue, Value};

const LIMIT: Duration = Duration::from_secs(30);

fn named(base: &str) -> [String; 2] {
    [format!("{base}-value"), format!("{base}-queue")]
}

/// Creates the named segments, then churns anonymous ones until it is killed.
fn churn(base: &str) -> ! {
    let [value, queue] = named(base);
    let v = Value::create(&value, 1u64).expect("the name is free");
    let q: Queue<Vec<u8>> = Queue::create(&queue, 0, 4096).expect("the name is free");
    q.put(vec![7; 100_000]).unwrap(); // bigger than the ring: a spill segment
    let mut i = 0u64;
    loop {
        i += 1;
        let round = || -> Result<(), Box<dyn std::error::Error>> {
            let a = Array::<u32>::new(64)?;
            a.set(0, i as u32)?;
            let q2: Queue<Vec<u8>> = Queue::with_capacity(0, 4096)?;
            q2.put(vec![1; 10_000])?;
            if i.is_multiple_of(2) {
                assert_eq!(q2.get()?.len(), 10_000);
            }
            *v.lock()? += 1;
            Ok(())
        };
        if let Err(e) = round() {
            // The signal may reach another thread of this process, whose handler unlinks the
            // names while this one goes on: then opening a spill by name fails until the
            // process ends a moment later. Any other error is a failure.
            assert!(!shm_path(&value).exists(), "churn failed: {e}");
            loop {
                std::thread::park();
            }
        }
    }
}

fn signal(pid: u32, name: &str) {
    let ok = std::process::Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -s {name} {pid}");
}

/// The names in `/dev/shm` now.
fn shm_names() -> std::collections::HashSet<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// Segments `pid` left: those whose header names it as creator, and, for segments killed
/// before their header was written, those whose names say so (an anonymous name carries its
/// creator's pid, the named ones start with `base`). Names in `before` (taken before the child
/// started) are not its own: pids are reused (pid_max is 32768 here), and a process SIGKILLed
/// by an earlier test under the same pid may have left a segment that no one has reclaimed yet.
fn left_by(pid: u32, base: &str, before: &std::collections::HashSet<String>) -> Vec<String> {
    let mut left: Vec<String> = shmkit::shm::segments()
        .unwrap()
        .into_iter()
        .filter(|s| s.creator_pid == Some(pid))
        .map(|s| s.name)
        .filter(|n| !before.contains(&format!("shmkit-{n}")))
        .collect();
    for entry in std::fs::read_dir("/dev/shm").unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        if (file.starts_with(&format!("shmkit-anon-{pid}-"))
            || file.starts_with(&format!("shmkit-{base}")))
            && !before.contains(&file)
        {
            left.push(file);
        }
    }
    left
}

#[test]
fn each_signal_at_random_moments_leaves_nothing_and_the_names_are_free_again() {
    shmkit::init();
    if role().as_deref() == Some("churn") {
        churn(&arg("BASE"));
    }
    watchdog(Duration::from_secs(240));
    let test = "each_signal_at_random_moments_leaves_nothing_and_the_names_are_free_again";
    for (sig, num) in [("INT", 2), ("TERM", 15), ("HUP", 1)] {
        let base = unique("signals");
        for round in 0..30u64 {
            let before = shm_names();
            let mut child = spawn(test, "churn", &[("BASE", &base)]);
            let [value, queue] = named(&base);
            wait_until("the child's named segments", LIMIT, || {
                shm_path(&queue).exists()
            });
            // A pseudo-random moment within the churn: 0 to 20 ms.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64;
            std::thread::sleep(Duration::from_micros((nanos ^ (round * 7919)) % 20_000));
            signal(child.id(), sig);
            let status = wait(&mut child, LIMIT);
            assert_eq!(
                status.signal(),
                Some(num),
                "SIG{sig} ends the child: {status}"
            );
            assert!(!shm_path(&value).exists(), "SIG{sig} left {value}");
            assert!(!shm_path(&queue).exists(), "SIG{sig} left {queue}");
            let left = left_by(child.id(), &base, &before);
            assert!(left.is_empty(), "SIG{sig} round {round} left {left:?}");
            // The same names are free for the next round.
        }
    }
}

static TERM_SEEN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM_SEEN.store(true, Ordering::SeqCst);
}

#[test]
fn a_handler_installed_first_still_runs_and_an_ignored_signal_stays_ignored() {
    if role().as_deref() == Some("own-handler") {
        // SAFETY: installs a handler that only stores to an atomic, and ignores SIGHUP.
        unsafe {
            libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
        }
        shmkit::init();
        let name = arg("NAME");
        let v = Value::create(&name, 5u32).unwrap();
        while !TERM_SEEN.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // shmkit removed the name, then the program's handler ran; the handle still works.
        let code = if shm_path(&name).exists() || v.get().ok() != Some(5) {
            3
        } else {
            0
        };
        std::process::exit(code);
    }
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let name = unique("own-handler");
    let test = "a_handler_installed_first_still_runs_and_an_ignored_signal_stays_ignored";
    let mut child = spawn(test, "own-handler", &[("NAME", &name)]);
    wait_until("the child's segment", LIMIT, || shm_path(&name).exists());
    signal(child.id(), "HUP");
    std::thread::sleep(Duration::from_millis(100));
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP was ignored");
    assert!(
        shm_path(&name).exists(),
        "an ignored signal removes nothing"
    );
    signal(child.id(), "TERM");
    let status = wait(&mut child, LIMIT);
    assert_eq!(
        status.code(),
        Some(0),
        "the program's handler ran: {status}"
    );
    assert!(!shm_path(&name).exists());
}
