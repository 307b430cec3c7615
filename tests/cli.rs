//! The `shmkit` command, run as a user would, on segments made by this test and by a child
//! SIGKILLed while holding a lock.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{arg, role, spawn, unique, wait, wait_until, watchdog};
use shmkit::{Lock, Queue, RawValue, Value};

fn shmkit(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .args(args)
        .output()
        .expect("run shmkit");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn json(args: &[&str]) -> serde_json::Value {
    let (ok, out) = shmkit(args);
    assert!(ok, "shmkit {args:?} failed: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn ls_inspect_and_clean_see_what_processes_left() {
    watchdog(Duration::from_secs(120));
    const TEST: &str = "ls_inspect_and_clean_see_what_processes_left";
    if role().is_some() {
        let lock = Lock::create(&arg("LOCK")).unwrap();
        lock.acquire().unwrap();
        RawValue::<u32>::open(&arg("FLAG")).unwrap().set(1);
        std::thread::sleep(Duration::from_secs(60)); // killed here, holding it
        return;
    }
    let prefix = unique("cli");
    let value = Value::create(&format!("{prefix}-value"), 2.5f64).unwrap();
    let queue = Queue::<String>::create(&format!("{prefix}-queue"), 0, 4096).unwrap();
    for s in ["a", "b", "c"] {
        queue.put(s.to_string()).unwrap();
    }
    let flag = RawValue::new(0u32).unwrap();
    let lock_name = format!("{prefix}-lock");
    let mut kid = spawn(
        TEST,
        "holder",
        &[("LOCK", &lock_name), ("FLAG", flag.name())],
    );
    wait_until(
        "the child to hold its lock",
        Duration::from_secs(30),
        || flag.get() == 1,
    );

    // ls: every segment, with kind, type, creator and a queue's items.
    let all = json(&["ls", "--json"]);
    let find = |name: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed"))
    };
    let v = find(value.name());
    assert_eq!(
        (v["kind"].as_str(), v["type_name"].as_str()),
        (Some("Value"), Some("f64"))
    );
    assert_eq!(v["creator_pid"], std::process::id());
    assert_eq!(find(queue.name())["queue"]["items"], 3);
    let (ok, text) = shmkit(&["ls"]);
    assert!(
        ok && text.contains(value.name()) && text.contains("3 items"),
        "{text}"
    );

    // inspect: a lock held by a live child, then by a dead one.
    let held = json(&["inspect", &lock_name, "--json"]);
    assert_eq!(held["lock"]["holder_alive"], true);
    kid.kill().unwrap();
    wait(&mut kid, Duration::from_secs(30));
    let dead = json(&["inspect", &lock_name, "--json"]);
    assert_eq!(dead["lock"]["holder_alive"], false);
    assert_eq!(dead["creator_alive"], false);
    let (ok, text) = shmkit(&["inspect", &lock_name]);
    assert!(ok && text.contains("dead"), "{text}");
    assert!(
        !shmkit(&["inspect", "no-such-segment"]).0,
        "an unknown name fails"
    );

    // clean --unused: the dead child's lock is kept while this process maps it.
    let names_in = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect()
    };
    let mapped = Lock::open(&lock_name).unwrap();
    let unused = &[
        "clean",
        "--unused",
        "--dry-run",
        "--prefix",
        &prefix,
        "--json",
    ];
    assert!(names_in(json(unused)).is_empty(), "in use: not listed");
    let (ok, text) = shmkit(&["clean", "--unused", "--prefix", &prefix]);
    assert!(ok && text.contains("removed 0 stale"), "{text}");
    assert!(common::shm_path(&lock_name).exists(), "in use: kept");
    drop(mapped);
    assert_eq!(
        names_in(json(unused)),
        vec![lock_name.clone()],
        "unused now"
    );

    // clean: a dry run lists the dead child's lock and removes nothing; then it is removed.
    let dry = json(&["clean", "--dry-run", "--prefix", &prefix, "--json"]);
    let names: Vec<&str> = dry
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, [lock_name.as_str()], "only the stale one, only ours");
    assert!(common::shm_path(&lock_name).exists());
    let (ok, text) = shmkit(&["clean", "--prefix", &prefix]);
    assert!(ok && text.contains("removed 1 stale"), "{text}");
    common::assert_gone(&lock_name);
    assert!(
        common::shm_path(value.name()).exists(),
        "live segments stay"
    );
}
