//! `Process`: functions run in child processes (this test binary started again; each test
//! begins with `shmkit::init()`, which runs the child's function and exits).

mod common;

use std::time::Duration;

use common::watchdog;
use shmkit::{Error, Process, ProcessError, ProcessTimeoutError, Value};

const LIMIT: Duration = Duration::from_secs(60);

fn square(x: u64) -> u64 {
    x * x
}

fn checked_div((a, b): (i64, i64)) -> Result<i64, String> {
    if b == 0 {
        Err("division by zero".into())
    } else {
        Ok(a / b)
    }
}

fn boom(msg: String) -> u8 {
    panic!("{msg}")
}

fn exit_with(code: i32) {
    std::process::exit(code)
}

fn who_am_i(_: ()) -> (String, u32, Option<(String, u32)>) {
    let me = shmkit::current_process();
    let parent = shmkit::parent_process().map(|p| (p.name, p.pid));
    (me.name, me.pid, parent)
}

fn sleep_forever(_: ()) {
    std::thread::sleep(Duration::from_secs(600))
}

fn add_to(v: Value<u64>) -> u32 {
    v.update(|x| *x += 5).unwrap();
    shmkit::current_pid()
}

#[test]
fn a_function_runs_in_a_child_and_its_result_comes_back() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let mut p = Process::start(square, 12u64).unwrap();
    assert_ne!(p.pid(), std::process::id());
    assert!(p.name().starts_with("Process-"));
    assert_eq!(p.join_timeout(LIMIT).unwrap(), 144);
    assert_eq!(p.exit_code(), Some(0));
    assert!(!p.is_alive());
    // A closure that captures nothing works too.
    let mut c = Process::builder()
        .name("doubler")
        .start(|x: u32| x * 2, 21)
        .unwrap();
    assert_eq!(c.name(), "doubler");
    assert_eq!(c.join_timeout(LIMIT).unwrap(), 42);
}

#[test]
fn shmkit_handles_travel_as_arguments() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let v = Value::new(1u64).unwrap();
    let mut p = Process::start(add_to, v.clone()).unwrap();
    let child_pid = p.join_timeout(LIMIT).unwrap();
    assert_eq!(child_pid, p.pid());
    assert_eq!(v.get().unwrap(), 6);
}

#[test]
fn panics_errors_exits_and_signals_give_python_exit_codes() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let mut p = Process::start(boom, "it broke".to_string()).unwrap();
    assert!(
        matches!(p.join_timeout(LIMIT), Err(ProcessTimeoutError::Process(ProcessError::Panicked(m))) if m == "it broke")
    );
    assert_eq!(p.exit_code(), Some(1));

    let mut e = Process::start(checked_div, (1, 0)).unwrap();
    assert_eq!(
        e.join_timeout(LIMIT).unwrap(),
        Err("division by zero".to_string())
    );
    assert_eq!(
        e.exit_code(),
        Some(1),
        "a function that returns Err exits with 1"
    );
    let mut ok = Process::start(checked_div, (9, 3)).unwrap();
    assert_eq!(
        (ok.join_timeout(LIMIT).unwrap(), ok.exit_code()),
        (Ok(3), Some(0))
    );

    let mut x = Process::start(exit_with, 3).unwrap();
    assert!(matches!(
        x.join_timeout(LIMIT),
        Err(ProcessTimeoutError::Process(ProcessError::Exited(_)))
    ));
    assert_eq!(x.exit_code(), Some(3));

    let mut t = Process::start(sleep_forever, ()).unwrap();
    assert!(t.is_alive());
    assert!(matches!(
        t.join_timeout(Duration::from_millis(50)),
        Err(ProcessTimeoutError::Timeout)
    ));
    t.terminate().unwrap();
    assert!(matches!(
        t.join_timeout(LIMIT),
        Err(ProcessTimeoutError::Process(ProcessError::Exited(_)))
    ));
    assert_eq!(t.exit_code(), Some(-15));
    let mut k = Process::start(sleep_forever, ()).unwrap();
    k.kill().unwrap();
    assert!(matches!(
        k.join_timeout(LIMIT),
        Err(ProcessTimeoutError::Process(ProcessError::Exited(_)))
    ));
    assert_eq!(k.exit_code(), Some(-9));
}

fn start_daemon_grandchild(pid_slot: Value<u32>) {
    let d = Process::builder().daemon().start(
        |slot: Value<u32>| {
            slot.set(shmkit::current_pid()).unwrap();
            std::thread::sleep(Duration::from_secs(600));
        },
        pid_slot,
    );
    drop(d); // exit without joining it: dropping the handle does not stop the child
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn a_daemon_child_does_not_outlive_its_parent() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let slot = Value::new(0u32).unwrap();
    let mut parent = Process::start(start_daemon_grandchild, slot.clone()).unwrap();
    parent.join_timeout(LIMIT).unwrap();
    let grandchild = slot.get().unwrap();
    assert_ne!(grandchild, 0, "the daemon started");
    common::wait_until("the daemon to die with its parent", LIMIT, || {
        std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
            .map_or(true, |s| s.contains(") Z "))
    });
}

/// This test does NOT call `shmkit::init()`: its child runs the test again, finds itself an
/// uninitialised child, and may not start another (no fork bomb); the parent gets a clear error.
#[test]
fn a_child_without_init_is_a_clear_error_not_a_fork_bomb() {
    watchdog(Duration::from_secs(120));
    assert!(matches!(
        Process::start(square, 2u64),
        Err(Error::InitNotCalled)
    ));
    assert_ne!(shmkit::parent_pid(), 0);
}

/// Runs this test binary again, as a plain `std::process::Command` that inherits the child's
/// environment (shmkit's variable included), filtered to the test below, and returns what
/// that program printed.
fn run_inheriting_program(_: ()) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "a_program_a_child_runs_inherits_nothing_from_shmkit",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SHMKIT_TEST_ROLE", "inheritor")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `init` never removes its environment variable (doing so is sound only while no other
/// thread reads the environment, which a safe function cannot know). A program the child runs
/// inherits the variable, and its `init` must see that it was not started by shmkit: it
/// returns, and the program runs as itself.
#[test]
fn a_program_a_child_runs_inherits_nothing_from_shmkit() {
    shmkit::init();
    if common::role().as_deref() == Some("inheritor") {
        assert!(std::env::var_os("SHMKIT_CHILD").is_some(), "inherited");
        println!("ran as itself");
        return;
    }
    watchdog(Duration::from_secs(120));
    let mut p = Process::start(run_inheriting_program, ()).unwrap();
    let printed = p.join_timeout(LIMIT).unwrap();
    assert!(printed.contains("ran as itself"), "{printed}");
}

/// `current_process()` in a child has the name its parent gave it, `parent_process()` names the
/// parent, and `active_children()` lists running children only. Signalling a child that has
/// ended and been reaped is a no-op: its pid may already be another process's.
#[test]
fn current_parent_and_active_children() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    assert_eq!(shmkit::current_process().name, "MainProcess");
    assert!(shmkit::parent_process().is_none());
    assert!(shmkit::cpu_count() >= 1);
    let mut p = Process::builder()
        .name("asker")
        .start(who_am_i, ())
        .unwrap();
    let (name, pid, parent) = p.join_timeout(LIMIT).unwrap();
    assert_eq!((name.as_str(), pid), ("asker", p.pid()));
    assert_eq!(
        parent,
        Some(("MainProcess".to_string(), std::process::id()))
    );
    assert!(!p.is_alive());
    p.terminate().unwrap(); // reaped: nothing is signalled
    p.kill().unwrap();
    assert_eq!(p.exit_code(), Some(0), "unchanged by the no-op signals");

    let sleeper = Process::builder()
        .name("sleeper")
        .start(sleep_forever, ())
        .unwrap();
    let listed = shmkit::active_children();
    assert!(
        listed
            .iter()
            .any(|c| c.pid == sleeper.pid() && c.name == "sleeper"),
        "{listed:?}"
    );
    assert!(
        !listed.iter().any(|c| c.pid == p.pid()),
        "ended: not active"
    );
    sleeper.kill().unwrap();
    common::wait_until("the sleeper to be gone", LIMIT, || {
        !shmkit::active_children()
            .iter()
            .any(|c| c.pid == sleeper.pid())
    });
}
