//! Opening with the wrong kind, type or length, and opening truncated, uninitialised or garbage
//! segments: each gives its own precise error, never a panic or a fault.

mod common;

use std::time::Duration;

use common::{Remove, assert_gone, shm_path, unique, watchdog};
use shmkit::{Array, Error, LockTimeoutError, RawArray, RawValue, Value};

#[test]
fn wrong_type_kind_or_length_is_refused_precisely() {
    watchdog(Duration::from_secs(60));
    let vname = unique("wrong-v");
    let aname = unique("wrong-a");
    let v = Value::create(&vname, 1.5f64).unwrap();
    let a = Array::create_from_slice(&aname, &[1i32; 10]).unwrap();

    let e = Value::<i64>::open(&vname).unwrap_err();
    assert!(
        matches!(&e, Error::TypeMismatch { expected, found, .. } if expected.starts_with("i64") && found.starts_with("f64")),
        "{e}"
    );
    assert!(matches!(
        Value::<f32>::open(&vname),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        Array::<f64>::open(&vname),
        Err(Error::KindMismatch { .. })
    ));
    assert!(matches!(
        RawValue::<f64>::open(&vname),
        Err(Error::KindMismatch { .. })
    ));
    // Same size and alignment, another type: the name fingerprint tells them apart.
    assert!(matches!(
        Array::<u32>::open(&aname),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        Array::<i32>::open_with_len(&aname, 11),
        Err(Error::LengthMismatch {
            expected: 11,
            found: 10,
            ..
        })
    ));
    assert!(matches!(
        Value::<i32>::open(&aname),
        Err(Error::KindMismatch { .. })
    ));
    assert!(matches!(
        RawArray::<i32>::open(&aname),
        Err(Error::KindMismatch { .. })
    ));
    assert_eq!(
        Array::<i32>::open_with_len(&aname, 10)
            .unwrap()
            .to_vec()
            .unwrap(),
        vec![1; 10]
    );

    assert!(matches!(
        Value::create(&vname, 0.0f64),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        Value::<f64>::open(&unique("missing")),
        Err(Error::NotFound { .. })
    ));
    for bad in ["", "a/b", "x y", ".dot"] {
        assert!(
            matches!(Value::create(bad, 0u8), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
    }
    drop((v, a));
    assert_gone(&vname);
    assert_gone(&aname);
}

/// Writes `bytes` as the whole content of segment `name`, as a broken or hostile peer could.
/// Writes `bytes` as segment `name`, with the mode shmkit gives its segments (0600).
fn write_segment(name: &str, bytes: &[u8]) -> Remove {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(shm_path(name), bytes).unwrap();
    std::fs::set_permissions(shm_path(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    Remove(name.to_owned())
}

/// A segment another user could write, or that another user owns, is refused even with a
/// valid header: its owner could rewrite or truncate it under us (a SIGBUS).
#[test]
fn a_planted_segment_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    watchdog(Duration::from_secs(60));
    let v = Value::create(&unique("planted"), 1.5f64).unwrap();
    assert_eq!(Value::<f64>::open(v.name()).unwrap().get().unwrap(), 1.5);
    let path = shm_path(v.name());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    match Value::<f64>::open(v.name()) {
        Err(Error::ForeignOwner { mode, .. }) => assert_eq!(mode, 0o666),
        other => panic!("a segment others may write was accepted: {other:?}"),
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Owned by another user (only root can give a file away; as root, check it too).
    if std::os::unix::fs::chown(&path, Some(12_345), None).is_ok() {
        match Value::<f64>::open(v.name()) {
            Err(Error::ForeignOwner { owner_uid, .. }) => assert_eq!(owner_uid, 12_345),
            other => panic!("another user's segment was accepted: {other:?}"),
        }
        let me = shmkit::shm::segments().unwrap();
        assert!(me.iter().any(|s| s.name == v.name()), "still listed");
    }
}

#[test]
fn uninitialised_truncated_and_garbage_segments_fail_cleanly() {
    watchdog(Duration::from_secs(60));
    let short = Duration::from_millis(50);

    // Created but never sized or published (a creator that died at once).
    let n = unique("empty");
    let _r = write_segment(&n, &[]);
    assert!(matches!(
        Value::<f64>::open_timeout(&n, short),
        Err(Error::Uninitialized { .. })
    ));

    // Sized but the header was never published.
    let n = unique("zeros");
    let _r = write_segment(&n, &[0; 4096]);
    assert!(matches!(
        Value::<f64>::open_timeout(&n, short),
        Err(Error::Uninitialized { .. })
    ));

    // Shorter than a header.
    let n = unique("tiny");
    let _r = write_segment(&n, &[0x5a; 100]);
    assert!(matches!(
        Value::<f64>::open(&n),
        Err(Error::Truncated { actual: 100, .. })
    ));

    // Garbage: the state word is neither "being built" nor "ready".
    let n = unique("garbage");
    let junk: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _r = write_segment(&n, &junk);
    assert!(matches!(Value::<f64>::open(&n), Err(Error::Corrupt { .. })));

    // A real header copied into a file that is too short for the payload it describes.
    let real = unique("real");
    let a = Array::<i32>::create(&real, 10_000).unwrap();
    let image = std::fs::read(shm_path(&real)).unwrap();
    let n = unique("cut");
    let _r = write_segment(&n, &image[..4096]);
    assert!(matches!(
        Array::<i32>::open(&n),
        Err(Error::Truncated {
            actual: 4096,
            needed: 45_056,
            ..
        })
    ));

    // Published state, but not our magic.
    let mut not_ours = image.clone();
    not_ours[8] ^= 0xff;
    let n = unique("magic");
    let _r = write_segment(&n, &not_ours);
    let e = Array::<i32>::open(&n).unwrap_err();
    assert!(matches!(e, Error::BadMagic { .. }), "{e:?}");

    // One flipped bit in the fields: the checksum catches it.
    let mut flipped = image.clone();
    flipped[60] ^= 0x01;
    let n = unique("flip");
    let _r = write_segment(&n, &flipped);
    assert!(matches!(Array::<i32>::open(&n), Err(Error::Corrupt { .. })));

    // A valid header whose lock bytes were overwritten with garbage: the garbage names a holder
    // that does not exist, so the lock is taken over and reported as poisoned, not hung on.
    let mut bad_lock = image.clone();
    bad_lock[256..272].fill(0xee);
    let n = unique("lock");
    let _r = write_segment(&n, &bad_lock);
    let scribbled = Array::<i32>::open(&n).unwrap();
    match scribbled.lock_timeout(Duration::from_secs(5)) {
        Err(LockTimeoutError::OwnerDied(g)) => {
            assert_eq!(g.len(), 10_000);
            g.mark_consistent();
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(scribbled.lock().is_ok());

    // The intact copy opens and reads.
    let n = unique("copy");
    let _r = write_segment(&n, &image);
    assert_eq!(Array::<i32>::open(&n).unwrap().len(), 10_000);
    drop(a);
    assert_gone(&real);
}

#[test]
fn replayed_fuzz_inputs_return_without_panicking() {
    watchdog(Duration::from_secs(60));
    // Seeds in the shapes the fuzzer explores; plus every committed regression input.
    let real = unique("seed");
    let v = Value::create(&real, 3.0f64).unwrap();
    let image = std::fs::read(shm_path(&real)).unwrap();
    drop(v);
    for ctrl in 0..16u8 {
        let mut data = vec![ctrl];
        data.extend_from_slice(&image);
        shmkit::fuzzing::open_segment_bytes(&data);
        data.truncate(300);
        shmkit::fuzzing::open_segment_bytes(&data);
        shmkit::fuzzing::open_segment_bytes(&[ctrl]);
        // Patches that flip the lock's owner-died bit and the kind, from a valid image.
        shmkit::fuzzing::open_segment_bytes(&[ctrl | 8, 3, 1, 0x40, 24, 0, 1]);
    }
    let regressions = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    type Harness = fn(&[u8]);
    let targets: &[(&str, Harness)] = &[
        ("segment_open", shmkit::fuzzing::open_segment_bytes),
        ("queue_ops", shmkit::fuzzing::queue_ops),
        ("queue_ring", shmkit::fuzzing::queue_ring),
        ("dict_ops", shmkit::fuzzing::dict_ops),
        ("dict_bytes", shmkit::fuzzing::dict_bytes),
        #[cfg(feature = "pool")]
        ("pool_messages", shmkit::fuzzing::pool_messages),
    ];
    for &(target, harness) in targets {
        for entry in std::fs::read_dir(regressions.join(target))
            .into_iter()
            .flatten()
            .flatten()
        {
            harness(&std::fs::read(entry.path()).unwrap());
        }
    }
}

/// Free bytes in `/dev/shm` for this user.
fn shm_free_bytes() -> u64 {
    let path = std::ffi::CString::new("/dev/shm").unwrap();
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `st` is writable for one statvfs.
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) }, 0);
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    st.f_bavail * st.f_frsize
}

/// Python's `shared_memory` maps a sparse file, and a write into a page a full `/dev/shm`
/// cannot back kills the process with SIGBUS (a container's 64 MiB `/dev/shm` is the usual
/// case). shmkit reserves every page when it makes the segment: a segment larger than the free
/// space is `NoSpace` at creation, nothing is left behind, and a segment that fits is usable.
#[test]
fn a_segment_larger_than_free_shared_memory_is_an_error_not_a_sigbus() {
    let len = usize::try_from(shm_free_bytes() + (1 << 30)).unwrap();
    let name = unique("nospace");
    match Array::<u8>::create(&name, len) {
        Err(Error::NoSpace { name: n, size }) => {
            assert_eq!(n, name);
            assert!(size >= len as u64, "{size} < {len}");
        }
        Err(e) => panic!("expected NoSpace, got {e}"),
        Ok(_) => panic!("a {len}-byte array was made in a /dev/shm with less room"),
    }
    assert_gone(&name);
    let fits = Array::<u8>::create(&name, 1 << 20).unwrap();
    fits.set((1 << 20) - 1, 7).unwrap();
    assert_eq!(fits.get((1 << 20) - 1).unwrap(), 7);
}
