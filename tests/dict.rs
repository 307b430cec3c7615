//! `Dict` and `List`, the way Python's `Manager().dict()` and `.list()` are used: many processes
//! inserting, updating the same key, appending; growth to a million entries while others read;
//! writers SIGKILLed at random moments; wrong types on open; nothing left behind.

mod common;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::time::{Duration, Instant};

use common::{arg, assert_gone, role, spawn, wait, wait_until, watchdog};
use shmkit::{Dict, Error, List, ListError, Queue, RawArray, RawValue};

const T: Duration = Duration::from_secs(60);

/// The storage generations of the dict or list `name` in /dev/shm.
fn generations(name: &str) -> usize {
    let prefix = format!("shmkit-{name}.spill-");
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .count()
}

fn spawn_all(test: &str, role: &str, n: usize, vars: &[(&str, &str)]) -> Vec<Child> {
    (0..n)
        .map(|i| {
            let slot = i.to_string();
            let mut v = vars.to_vec();
            v.push(("SLOT", &slot));
            spawn(test, role, &v)
        })
        .collect()
}

fn join_all(kids: Vec<Child>) {
    for mut k in kids {
        let status = wait(&mut k, T);
        assert!(status.success(), "a child failed: {status}");
    }
}

#[test]
fn a_dict_behaves_like_a_hash_map() {
    let d = Dict::<String, Vec<u32>>::new().unwrap();
    let mut model = HashMap::new();
    assert!(d.is_empty().unwrap());
    for i in 0..3000u32 {
        let k = format!("key-{}", i % 700);
        let v: Vec<u32> = (0..i % 13).collect();
        match i % 5 {
            0 => assert_eq!(d.remove(&k).unwrap(), model.remove(&k)),
            1 => assert_eq!(d.get(&k).unwrap(), model.get(&k).cloned()),
            _ => assert_eq!(d.insert(k.clone(), v.clone()).unwrap(), model.insert(k, v)),
        }
    }
    assert_eq!(d.len().unwrap(), model.len());
    assert_eq!(d.to_hash_map().unwrap(), model);
    let mut keys = d.keys().unwrap();
    keys.sort();
    let mut want: Vec<_> = model.keys().cloned().collect();
    want.sort();
    assert_eq!(keys, want);
    assert_eq!(d.values().unwrap().len(), model.len());
    assert!(d.contains_key(&"key-1".into()).unwrap() == model.contains_key("key-1"));

    // setdefault, update, extend, clear.
    assert_eq!(
        d.get_or_insert_with("new".into(), || vec![7]).unwrap(),
        vec![7]
    );
    assert_eq!(
        d.get_or_insert_with("new".into(), || vec![8]).unwrap(),
        vec![7]
    );
    let new = d
        .update("new".into(), |v| {
            v.map(|mut v| {
                v.push(9);
                v
            })
        })
        .unwrap();
    assert_eq!(new, Some(vec![7, 9]));
    assert_eq!(d.update("new".into(), |_| None).unwrap(), None);
    assert!(!d.contains_key(&"new".into()).unwrap());
    d.extend([("a".to_string(), vec![1]), ("b".to_string(), vec![2])])
        .unwrap();
    assert_eq!(d.get(&"b".into()).unwrap(), Some(vec![2]));
    // A closure that uses its own dict gets an error, not a hang.
    let inner = d.clone();
    let mut nested = None;
    d.update("a".into(), |v| {
        nested = Some(inner.get(&"b".into()).is_err());
        v
    })
    .unwrap();
    assert_eq!(nested, Some(true));
    d.clear().unwrap();
    assert_eq!(d.len().unwrap(), 0);
    assert_eq!(d.get(&"a".into()).unwrap(), None);
    d.insert("after".into(), vec![]).unwrap();
    assert_eq!(d.len().unwrap(), 1);
}

#[test]
fn a_list_behaves_like_a_vec() {
    let l = List::<String>::new().unwrap();
    let mut model: Vec<String> = Vec::new();
    for i in 0..2000usize {
        let s = format!("item {i}");
        match i % 9 {
            0 if !model.is_empty() => assert_eq!(l.pop().unwrap(), model.pop()),
            1 if !model.is_empty() => {
                let at = i % model.len();
                assert_eq!(
                    l.set(at, s.clone()).unwrap(),
                    std::mem::replace(&mut model[at], s)
                );
            }
            2 if i.is_multiple_of(4) => {
                let at = i % (model.len() + 1);
                l.insert(at, s.clone()).unwrap();
                model.insert(at, s);
            }
            3 if !model.is_empty() && i.is_multiple_of(3) => {
                let at = i % model.len();
                assert_eq!(l.remove(at).unwrap(), model.remove(at));
            }
            4 => {
                l.extend([s.clone(), s.clone()]).unwrap();
                model.extend([s.clone(), s]);
            }
            _ => {
                l.push(s.clone()).unwrap();
                model.push(s);
            }
        }
    }
    assert_eq!(l.to_vec().unwrap(), model);
    assert_eq!(l.len().unwrap(), model.len());
    assert_eq!(l.get(3).unwrap(), model.get(3).cloned());
    assert_eq!(l.get(model.len()).unwrap(), None);
    assert!(matches!(
        l.set(model.len(), "x".into()),
        Err(ListError::OutOfRange { .. })
    ));
    assert!(matches!(
        l.insert(model.len() + 1, "x".into()),
        Err(ListError::OutOfRange { .. })
    ));
    assert!(matches!(
        l.remove(model.len()),
        Err(ListError::OutOfRange { .. })
    ));
    l.update(0, |s| s.to_uppercase()).unwrap();
    assert_eq!(l.get(0).unwrap(), Some(model[0].to_uppercase()));
    l.truncate(5).unwrap();
    assert_eq!(l.iter().unwrap().count(), 5);
    l.clear().unwrap();
    assert!(l.is_empty().unwrap());
    assert_eq!(l.pop().unwrap(), None);
}

#[test]
fn wrong_types_or_kinds_on_open_are_errors_and_nothing_is_left() {
    let name = common::unique("dict");
    let d = Dict::<String, u64>::create(&name).unwrap();
    d.insert("x".into(), 1).unwrap();
    assert!(matches!(
        Dict::<String, i64>::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        Dict::<u64, u64>::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        List::<u64>::open(&name),
        Err(Error::KindMismatch { .. })
    ));
    assert!(matches!(
        Dict::<String, u64>::create(&name),
        Err(Error::AlreadyExists { .. })
    ));
    let again = Dict::<String, u64>::open_or_create(&name).unwrap();
    assert_eq!(again.get(&"x".into()).unwrap(), Some(1));
    drop((d, again));
    assert_gone(&name);
    assert_eq!(generations(&name), 0, "generations left");
}

#[test]
fn handles_travel_through_a_queue_and_see_the_same_dict() {
    let d = Dict::<u32, String>::new().unwrap();
    let q = Queue::<Dict<u32, String>>::new(0).unwrap();
    q.put(d.clone()).unwrap();
    let other = q.get_timeout(T).unwrap();
    other.insert(1, "one".into()).unwrap();
    assert_eq!(d.get(&1).unwrap().as_deref(), Some("one"));
    let l = List::<u32>::new().unwrap();
    let t = std::thread::spawn({
        let l = l.clone();
        move || (0..1000).for_each(|i| l.push(i).unwrap())
    });
    (1000..2000).for_each(|i| l.push(i).unwrap());
    t.join().unwrap();
    let mut all = l.to_vec().unwrap();
    all.sort();
    assert_eq!(all, (0..2000).collect::<Vec<_>>());
}

const TEN: &str = "ten_processes_insert_and_update_and_append_and_lose_nothing";

#[test]
fn ten_processes_insert_and_update_and_append_and_lose_nothing() {
    watchdog(Duration::from_secs(300));
    if role().as_deref() == Some("worker") {
        let w: u64 = arg("SLOT").parse().unwrap();
        let d = Dict::<String, u64>::open(&arg("DICT")).unwrap();
        let l = List::<u64>::open(&arg("LIST")).unwrap();
        for i in 0..1000u64 {
            d.insert(format!("{w}-{i}"), w * 1_000_000 + i).unwrap();
            d.update("shared".into(), |n| Some(n.unwrap_or(0) + 1))
                .unwrap();
            l.push(w * 1000 + i).unwrap();
        }
        return;
    }
    let (d, l) = (
        Dict::<String, u64>::new().unwrap(),
        List::<u64>::new().unwrap(),
    );
    let kids = spawn_all(TEN, "worker", 10, &[("DICT", d.name()), ("LIST", l.name())]);
    join_all(kids);
    assert_eq!(d.len().unwrap(), 10_001);
    assert_eq!(
        d.get(&"shared".into()).unwrap(),
        Some(10_000),
        "no update lost"
    );
    for w in 0..10u64 {
        for i in 0..1000u64 {
            assert_eq!(d.get(&format!("{w}-{i}")).unwrap(), Some(w * 1_000_000 + i));
        }
    }
    let mut items = l.to_vec().unwrap();
    items.sort();
    assert_eq!(
        items,
        (0..10_000).collect::<Vec<_>>(),
        "every item exactly once"
    );
}

const GROW: &str = "a_dict_grows_to_a_million_entries_while_other_processes_read";

#[test]
fn a_dict_grows_to_a_million_entries_while_other_processes_read() {
    watchdog(Duration::from_secs(600));
    if role().as_deref() == Some("reader") {
        let d = Dict::<u64, u64>::open(&arg("DICT")).unwrap();
        let done = RawValue::<u64>::open(&arg("DONE")).unwrap();
        let reads = RawArray::<u64>::open(&arg("READS")).unwrap();
        let slot: usize = arg("SLOT").parse().unwrap();
        let mut x = 88_172_645_463_325_252u64 ^ slot as u64;
        let mut n = 0;
        loop {
            let written = done.get();
            if written >= 1_000_000 && n > 0 {
                break;
            }
            if written == 0 {
                continue;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = x % written;
            assert_eq!(d.get(&k).unwrap(), Some(k * 3), "key {k} of {written}");
            n += 1;
        }
        reads.set(slot, n).unwrap();
        return;
    }
    let d = Dict::<u64, u64>::new().unwrap();
    let done = RawValue::<u64>::new(0).unwrap();
    let reads = RawArray::<u64>::new(2).unwrap();
    let kids = spawn_all(
        GROW,
        "reader",
        2,
        &[
            ("DICT", d.name()),
            ("DONE", done.name()),
            ("READS", reads.name()),
        ],
    );
    for k in 0..1_000_000u64 {
        d.insert(k, k * 3).unwrap();
        if k % 1000 == 999 {
            done.set(k + 1);
        }
    }
    join_all(kids);
    assert_eq!(d.len().unwrap(), 1_000_000);
    assert!(reads.to_vec().iter().all(|&n| n > 0));
    eprintln!("reads while growing: {:?}", reads.to_vec());
}

const KILL: &str = "writers_sigkilled_at_random_moments_leave_every_returned_insert";
const WRITERS: usize = 2;
const PER_WRITER: u64 = 40_000;

#[test]
fn writers_sigkilled_at_random_moments_leave_every_returned_insert() {
    watchdog(Duration::from_secs(600));
    if role().as_deref() == Some("writer") {
        let w: u64 = arg("SLOT").parse().unwrap();
        let d = Dict::<(u64, u64), Vec<u8>>::open(&arg("DICT")).unwrap();
        let l = List::<(u64, u64)>::open(&arg("LIST")).unwrap();
        let attempt = RawArray::<u64>::open(&arg("ATTEMPT")).unwrap();
        let returned = RawArray::<u8>::open(&arg("RETURNED")).unwrap();
        let mut i = attempt.get(w as usize).unwrap();
        while i < PER_WRITER {
            attempt.set(w as usize, i + 1).unwrap();
            // Some values big enough to make the heap grow often.
            let v = vec![
                (i % 251) as u8;
                if i.is_multiple_of(97) {
                    5000
                } else {
                    (i % 40) as usize
                }
            ];
            d.insert((w, i), v).unwrap();
            if i.is_multiple_of(3) {
                d.update((w, i / 2), |v| v).unwrap();
            }
            if i.is_multiple_of(5) {
                l.push((w, i)).unwrap();
            }
            returned.set((w * PER_WRITER + i) as usize, 1).unwrap();
            i += 1;
        }
        std::thread::sleep(Duration::from_secs(600));
        return;
    }
    let d = Dict::<(u64, u64), Vec<u8>>::new().unwrap();
    let l = List::<(u64, u64)>::new().unwrap();
    let attempt = RawArray::<u64>::new(WRITERS).unwrap();
    let returned = RawArray::<u8>::new(WRITERS * PER_WRITER as usize).unwrap();
    let names = [
        ("DICT", d.name().to_owned()),
        ("LIST", l.name().to_owned()),
        ("ATTEMPT", attempt.name().to_owned()),
        ("RETURNED", returned.name().to_owned()),
    ];
    let start = |w: usize| {
        let slot = w.to_string();
        let mut vars: Vec<(&str, &str)> = names.iter().map(|(k, v)| (*k, v.as_str())).collect();
        vars.push(("SLOT", &slot));
        spawn(KILL, "writer", &vars)
    };
    let mut kids: Vec<Child> = (0..WRITERS).map(start).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let began = Instant::now();
    let mut kills = 0;
    while kills < 200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_micros(300 + x % 5000));
        let k = (x >> 20) as usize % WRITERS;
        kids[k].kill().unwrap();
        let status = wait(&mut kids[k], T);
        assert_eq!(
            status.signal(),
            Some(9),
            "writer {k} ended by itself: {status}"
        );
        kills += 1;
        kids[k] = start(k);
    }
    wait_until("the writers finish", Duration::from_secs(300), || {
        (0..WRITERS).all(|w| attempt.get(w).unwrap() >= PER_WRITER)
    });
    // Let the last ones finish their final insert, then stop them.
    std::thread::sleep(Duration::from_millis(200));
    for k in &mut kids {
        k.kill().unwrap();
        wait(k, T);
    }
    let all = d.to_hash_map().unwrap();
    assert_eq!(d.len().unwrap(), all.len(), "the count matches the entries");
    let mut present = 0;
    for w in 0..WRITERS as u64 {
        for i in 0..PER_WRITER {
            let want = vec![
                (i % 251) as u8;
                if i.is_multiple_of(97) {
                    5000
                } else {
                    (i % 40) as usize
                }
            ];
            match all.get(&(w, i)) {
                Some(v) => {
                    assert_eq!(v, &want, "entry ({w}, {i}) torn");
                    present += 1;
                }
                None => assert_eq!(
                    returned.get((w * PER_WRITER + i) as usize).unwrap(),
                    0,
                    "entry ({w}, {i}) lost after its insert returned"
                ),
            }
        }
    }
    let items = l.to_vec().unwrap();
    let mut seen = std::collections::HashSet::new();
    for it in &items {
        assert!(it.1 % 5 == 0 && all.contains_key(it), "list item {it:?}");
        seen.insert(*it);
    }
    eprintln!(
        "{kills} kills in {:.1?}; {present} entries, {} list items ({} distinct)",
        began.elapsed(),
        items.len(),
        seen.len()
    );
    assert_eq!(items.len(), seen.len(), "a list item appended twice");
    // A killed writer skips the item it was inserting: at most one per kill is absent.
    assert!(present >= WRITERS * PER_WRITER as usize - kills);
    // Still usable, and growing.
    for i in 0..1000 {
        d.insert((9, i), vec![1; 100]).unwrap();
    }
    assert_eq!(d.get(&(9, 999)).unwrap(), Some(vec![1; 100]));
}

const REWRITE: &str = "processes_killed_in_the_middle_of_rewriting_the_storage_leave_it_whole";

/// `List::insert(0, _)` rewrites the whole list into a new generation every time, and inserts
/// of big values make a dict rebuild often: a process killed at a random moment is most
/// likely in the middle of one. Afterwards every insert that returned is there, the storage
/// is whole, and the generations the dead process was writing are gone.
#[test]
fn processes_killed_in_the_middle_of_rewriting_the_storage_leave_it_whole() {
    watchdog(Duration::from_secs(300));
    const PREFILL: u64 = 5000;
    if role().as_deref() == Some("rewriter") {
        let l = List::<u64>::open(&arg("LIST")).unwrap();
        let d = Dict::<u64, Vec<u8>>::open(&arg("DICT")).unwrap();
        let done = RawArray::<u64>::open(&arg("DONE")).unwrap();
        let mut n = done.get(0).unwrap();
        loop {
            // Announce before, record after: the one in flight at a kill may or may not be in.
            done.set(1, n + 1).unwrap();
            l.insert(0, PREFILL + n).unwrap();
            d.insert(n, vec![n as u8; 20_000]).unwrap();
            n += 1;
            done.set(0, n).unwrap();
        }
    }
    let l = List::<u64>::new().unwrap();
    l.extend(0..PREFILL).unwrap();
    let d = Dict::<u64, Vec<u8>>::new().unwrap();
    let done = RawArray::<u64>::new(2).unwrap();
    let vars = [
        ("LIST", l.name()),
        ("DICT", d.name()),
        ("DONE", done.name()),
    ];
    let mut x = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    for _ in 0..30 {
        let mut kid = spawn(REWRITE, "rewriter", &vars);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(20 + x % 40));
        kid.kill().unwrap();
        let status = wait(&mut kid, T);
        assert_eq!(
            status.signal(),
            Some(9),
            "the rewriter ended by itself: {status}"
        );
        // The next run resumes after the last recorded insert; one in flight may be in too.
        let (recorded, announced) = (done.get(0).unwrap(), done.get(1).unwrap());
        let len = l.len().unwrap() as u64;
        assert!(
            len == PREFILL + recorded || len == PREFILL + announced,
            "{len} items after {recorded} recorded inserts"
        );
        if len == PREFILL + announced {
            done.set(0, announced).unwrap();
            // Its dict insert may not have happened: do it, as the writer would have.
            d.insert(announced - 1, vec![(announced - 1) as u8; 20_000])
                .unwrap();
        }
    }
    let n = done.get(0).unwrap();
    let items = l.to_vec().unwrap();
    let want: Vec<u64> = (PREFILL..PREFILL + n).rev().chain(0..PREFILL).collect();
    assert_eq!(items, want, "every insert that returned, in order, once");
    for k in 0..n {
        assert_eq!(d.get(&k).unwrap(), Some(vec![k as u8; 20_000]), "entry {k}");
    }
    // One generation each is left: the dead writers' unfinished ones were removed.
    for name in [l.name(), d.name()] {
        assert_eq!(generations(name), 1, "generations of {name}");
    }
    eprintln!("{n} inserts across 30 kills");
}
