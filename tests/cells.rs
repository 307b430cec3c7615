//! Value, Array, RawValue and RawArray within one process: API behaviour, ownership of names,
//! memory cost, serde, threads, self-deadlock and panic poisoning.

mod common;

use std::time::Duration;

use common::{assert_gone, shm_path, unique, watchdog};
use std::error::Error as _;

use shmkit::{
    AccessError, Array, Error, LockError, LockTimeoutError, OutOfRange, RawArray, RawValue,
    TryLockError, Value,
};

#[test]
fn value_get_set_update_and_guard() {
    watchdog(Duration::from_secs(60));
    let v = Value::new(0.0f64).unwrap();
    assert_eq!(v.get().unwrap(), 0.0);
    v.set(2.5).unwrap();
    assert_eq!(
        v.update(|x| {
            *x *= 2.0;
            *x
        })
        .unwrap(),
        5.0
    );
    {
        let mut g = v.lock().unwrap();
        *g += 1.0;
        assert!(matches!(v.try_lock(), Err(TryLockError::Deadlock)));
    }
    assert_eq!(v.get().unwrap(), 6.0);
}

#[test]
fn array_access_in_and_out_of_range() {
    watchdog(Duration::from_secs(60));
    let a = Array::from_slice(&(0..10).collect::<Vec<i32>>()).unwrap();
    assert_eq!(a.len(), 10);
    assert!(!a.is_empty());
    assert_eq!(a.get(9).unwrap(), 9);
    a.set(0, 5).unwrap();
    assert!(matches!(
        a.get(10),
        Err(AccessError::OutOfRange { index: 10, len: 10 })
    ));
    assert!(matches!(
        a.set(usize::MAX, 1),
        Err(AccessError::OutOfRange { .. })
    ));
    assert_eq!(a.to_vec().unwrap()[..3], [5, 1, 2]); // the failed set wrote nothing
    assert_eq!(a.update(|s| s.iter().sum::<i32>()).unwrap(), 50);
    let z = Array::<u64>::new(0).unwrap();
    assert!(z.is_empty());
    assert!(z.lock().unwrap().is_empty());
    let e: Error = a.get(11).unwrap_err().into();
    assert_eq!(e.to_string(), "index 11 is out of range for length 10");
}

#[test]
fn a_thread_locking_twice_gets_deadlock_not_a_hang() {
    watchdog(Duration::from_secs(60));
    let a = Array::<u8>::new(4).unwrap();
    let _g = a.lock().unwrap();
    assert!(matches!(a.lock(), Err(LockError::Deadlock)));
    assert!(matches!(a.get(0), Err(AccessError::Deadlock)));
    assert!(matches!(
        a.lock_timeout(Duration::from_millis(10)),
        Err(LockTimeoutError::Deadlock)
    ));
}

#[test]
fn threads_share_handles_and_the_lock_excludes_them() {
    watchdog(Duration::from_secs(60));
    let v = Value::new(0u64).unwrap();
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let v = v.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    v.update(|x| *x += 1).unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(v.get().unwrap(), 40_000);
}

#[test]
fn try_lock_for_honours_its_timeout_when_another_thread_holds_the_lock() {
    watchdog(Duration::from_secs(60));
    let v = Value::new(1u32).unwrap();
    let v2 = v.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let _g = v2.lock().unwrap();
        tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(v.try_lock(), Err(TryLockError::WouldBlock)));
    let t0 = std::time::Instant::now();
    assert!(matches!(
        v.lock_timeout(Duration::from_millis(50)),
        Err(LockTimeoutError::Timeout)
    ));
    assert!(
        t0.elapsed() >= Duration::from_millis(50),
        "returned early: {:?}",
        t0.elapsed()
    );
    assert!(v.lock_timeout(Duration::from_secs(10)).is_ok());
    holder.join().unwrap();
}

#[test]
fn a_holder_that_panics_poisons_the_value_until_marked_consistent() {
    watchdog(Duration::from_secs(60));
    let v = Value::new(10i32).unwrap();
    let v2 = v.clone();
    let r = std::thread::spawn(move || {
        let mut g = v2.lock().unwrap();
        *g = -1;
        panic!("half-way through an update");
    })
    .join();
    assert!(r.is_err());
    assert!(v.is_poisoned());
    assert!(matches!(v.get(), Err(LockError::OwnerDied(-1))));
    let e: Error = v.set(3).unwrap_err().into();
    assert!(matches!(
        e.source().and_then(|s| s.downcast_ref::<LockError<()>>()),
        Some(LockError::OwnerDied(()))
    ));
    v.lock()
        .unwrap_err()
        .into_inner()
        .unwrap()
        .mark_consistent();
    assert_eq!(v.get().unwrap(), 3);
}

#[test]
fn handles_serialise_as_their_name_and_reopen_on_deserialise() {
    watchdog(Duration::from_secs(60));
    let v = Value::new(4u16).unwrap();
    let a = Array::from_slice(&[1u8, 2, 3]).unwrap();
    let json = serde_json::to_string(&(&v, &a)).unwrap();
    assert_eq!(json, format!("[{:?},{:?}]", v.name(), a.name()));
    let (v2, a2): (Value<u16>, Array<u8>) = serde_json::from_str(&json).unwrap();
    v2.set(5).unwrap();
    assert_eq!(v.get().unwrap(), 5);
    assert_eq!(a2.to_vec().unwrap(), [1, 2, 3]);
    // Deserialising into the wrong type is an error, not a misread.
    assert!(serde_json::from_str::<Value<u32>>(&format!("{:?}", v.name())).is_err());
    assert!(serde_json::from_str::<Value<u16>>("\"no-such-segment\"").is_err());
}

#[test]
fn raw_cells_need_no_lock_and_check_ranges() {
    watchdog(Duration::from_secs(60));
    let v = RawValue::new(1.0f32).unwrap();
    v.set(2.0);
    assert_eq!(RawValue::<f32>::open(v.name()).unwrap().get(), 2.0);
    let a = RawArray::<i16>::new(3).unwrap();
    a.set(2, -7).unwrap();
    assert_eq!(a.to_vec(), [0, 0, -7]);
    assert!(matches!(a.set(3, 1), Err(OutOfRange { index: 3, len: 3 })));
    assert!(matches!(a.get(3), Err(OutOfRange { .. })));
    let b = RawArray::from_slice(&[9u8; 5]).unwrap();
    assert_eq!(RawArray::<u8>::open(b.name()).unwrap().get(4).unwrap(), 9);
}

#[test]
fn memory_cost_is_one_page_per_value_and_pages_for_arrays() {
    watchdog(Duration::from_secs(60));
    let page = 4096;
    let v = Value::new(0.0f64).unwrap();
    assert_eq!(std::fs::metadata(shm_path(v.name())).unwrap().len(), page);
    let a = Array::<i32>::new(1 << 20).unwrap();
    assert_eq!(
        std::fs::metadata(shm_path(a.name())).unwrap().len(),
        page + 4 * (1 << 20)
    );
    let b = Array::<u8>::new(page as usize + 1).unwrap();
    assert_eq!(
        std::fs::metadata(shm_path(b.name())).unwrap().len(),
        3 * page
    );
}

#[test]
fn the_creator_owns_the_name_and_openers_keep_their_mapping() {
    watchdog(Duration::from_secs(60));
    let name = unique("own");
    let created = Value::create(&name, 1u64).unwrap();
    let clone = created.clone();
    let opened = Value::<u64>::open(&name).unwrap();
    drop(created);
    assert!(
        shm_path(&name).exists(),
        "a clone of the creator's handle is still alive"
    );
    drop(clone);
    assert_gone(&name);
    // The opener's mapping stays valid after the name is gone.
    opened.set(9).unwrap();
    assert_eq!(opened.get().unwrap(), 9);
    assert!(matches!(
        Value::<u64>::open(&name),
        Err(Error::NotFound { .. })
    ));
    drop(opened);

    // open_or_create: only the creating call owns the name.
    let first = Value::open_or_create(&name, 5u8).unwrap();
    let second = Value::open_or_create(&name, 6u8).unwrap();
    assert_eq!(second.get().unwrap(), 5);
    drop(second);
    assert!(shm_path(&name).exists());
    drop(first);
    assert_gone(&name);
}

#[test]
fn an_owner_never_unlinks_a_newer_segment_of_the_same_name() {
    watchdog(Duration::from_secs(60));
    let name = unique("reuse");
    let old = Value::create(&name, 1u8).unwrap();
    shmkit::shm::remove(&name).unwrap();
    let new = Value::create(&name, 2u8).unwrap();
    drop(old);
    assert_eq!(Value::<u8>::open(&name).unwrap().get().unwrap(), 2);
    drop(new);
    assert_gone(&name);
    assert!(matches!(
        shmkit::shm::remove(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn anonymous_segments_are_removed_with_their_last_handle() {
    watchdog(Duration::from_secs(60));
    let a = Array::<u32>::new(100).unwrap();
    let name = a.name().to_owned();
    assert!(name.starts_with("anon-"));
    assert!(shm_path(&name).exists());
    drop(a);
    assert_gone(&name);
}

#[test]
fn handles_are_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + serde::Serialize + serde::de::DeserializeOwned>() {}
    check::<Value<f64>>();
    check::<Array<i32>>();
    check::<RawValue<u8>>();
    check::<RawArray<[u16; 4]>>();
}
