//! `shm::segments()` and `shm::remove_stale_if()` with a creator that is SIGKILLed. The test
//! removes only its own stale segments: other programs' are none of its business.

mod common;

use std::time::Duration;

use common::{arg, assert_gone, role, spawn, unique, wait, wait_until, watchdog};
use shmkit::shm::{Kind, segments};
use shmkit::{Array, Value};

#[test]
fn a_crashed_creators_segment_is_listed_as_stale_and_removed() {
    watchdog(Duration::from_secs(120));
    if role().is_some() {
        let _v = Value::create(&arg("NAME"), 1.0f64).unwrap();
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let name = unique("stale");
    let mut kid = spawn(
        "a_crashed_creators_segment_is_listed_as_stale_and_removed",
        "creator",
        &[("NAME", &name)],
    );
    wait_until(
        "the child to create its segment",
        Duration::from_secs(30),
        || Value::<f64>::open(&name).is_ok(),
    );
    let info = segments()
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .expect("listed");
    assert_eq!(info.kind, Some(Kind::Value));
    assert_eq!(info.creator_pid, Some(kid.id()));
    assert!(info.creator_alive && info.ready && !info.is_stale());
    assert_eq!(info.size, 4096);

    // Ours, alive: listed, not stale.
    let mine = Array::<u8>::new(10).unwrap();
    let me = segments()
        .unwrap()
        .into_iter()
        .find(|s| s.name == mine.name())
        .expect("listed");
    assert_eq!(
        (me.kind, me.creator_pid, me.creator_alive),
        (Some(Kind::Array), Some(std::process::id()), true)
    );

    kid.kill().unwrap();
    wait(&mut kid, Duration::from_secs(30));
    let info = segments()
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .expect("still there: nobody unlinked it");
    assert!(!info.creator_alive && info.is_stale());

    let removed =
        shmkit::shm::remove_stale_if(|s| s.name == name || s.name == mine.name()).unwrap();
    assert!(removed.iter().any(|s| s.name == name));
    assert!(!removed.iter().any(|s| s.name == mine.name()));
    assert_gone(&name);
    assert!(segments().unwrap().iter().any(|s| s.name == mine.name()));
}
