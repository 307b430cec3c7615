//! A handle handed to another process belongs to it: whatever the sender does with its own
//! copies once the send has returned (drops them, closes a pipe end, exits), the receiver can
//! open and use what it was sent, and nothing is left in `/dev/shm` afterwards. Every handle
//! kind, moved into `Process::start`, a clone dropped right after `start`, sent through a
//! `Queue`, as a pool task's argument, and with the sender gone before the receiver opens it.

mod common;

use std::time::Duration;

use common::{assert_gone, watchdog};
use serde::{Deserialize, Serialize};
use shmkit::{
    Array, Barrier, Condition, Connection, Event, GetError, JoinableQueue, Lock, Pipe, Pool,
    Process, Queue, RLock, RawArray, RawValue, Semaphore, Value,
};

const LIMIT: Duration = Duration::from_secs(60);

/// One handle of every kind.
#[derive(Serialize, Deserialize)]
struct Bundle {
    value: Value<u32>,
    array: Array<u16>,
    raw_value: RawValue<u64>,
    raw_array: RawArray<u8>,
    queue: Queue<String>,
    joinable: JoinableQueue<u8>,
    lock: Lock,
    rlock: RLock,
    semaphore: Semaphore,
    event: Event,
    condition: Condition,
    barrier: Barrier,
    conn: Connection<String>,
}

/// A bundle whose every handle holds something to read back, and the pipe end it talks to.
fn bundle() -> (Bundle, Connection<String>) {
    let (ours, theirs) = Pipe::<String>::duplex().unwrap();
    let queue = Queue::new(0).unwrap();
    queue.put("queued".to_string()).unwrap();
    let joinable = JoinableQueue::new(0).unwrap();
    joinable.put(9).unwrap();
    let event = Event::new().unwrap();
    event.set();
    let b = Bundle {
        value: Value::new(41).unwrap(),
        array: Array::from_slice(&[1, 2, 3]).unwrap(),
        raw_value: RawValue::new(7).unwrap(),
        raw_array: RawArray::from_slice(&[5, 6]).unwrap(),
        queue,
        joinable,
        lock: Lock::new().unwrap(),
        rlock: RLock::new().unwrap(),
        semaphore: Semaphore::new(1).unwrap(),
        event,
        condition: Condition::new().unwrap(),
        barrier: Barrier::new(1).unwrap(),
        conn: theirs,
    };
    (b, ours)
}

/// Uses every handle; returns what it read, in one string, and the names of the segments.
fn use_bundle(b: Bundle) -> Result<(String, Vec<String>), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let value = b.value.get().map_err(|x| e(&x))?;
    let array = b.array.to_vec().map_err(|x| e(&x))?;
    let queued = b.queue.get_timeout(LIMIT).map_err(|x| e(&x))?;
    let joined = b.joinable.get_timeout(LIMIT).map_err(|x| e(&x))?;
    b.joinable.task_done().map_err(|x| e(&x))?;
    drop(b.lock.lock().map_err(|x| e(&x))?);
    b.rlock.acquire().map_err(|x| e(&x))?;
    b.rlock.release().map_err(|x| e(&x))?;
    drop(b.semaphore.acquire_timeout(LIMIT).map_err(|x| e(&x))?);
    b.condition.acquire().map_err(|x| e(&x))?;
    b.condition.release().map_err(|x| e(&x))?;
    let index = b.barrier.wait_timeout(LIMIT).map_err(|x| e(&x))?;
    b.conn.send("over the pipe").map_err(|x| e(&x))?;
    let read = format!(
        "{value} {array:?} {} {:?} {queued} {joined} {} {index}",
        b.raw_value.get(),
        b.raw_array.to_vec(),
        b.event.is_set(),
    );
    let names = vec![
        b.value.name().to_owned(),
        b.array.name().to_owned(),
        b.raw_value.name().to_owned(),
        b.raw_array.name().to_owned(),
        b.queue.name().to_owned(),
        b.joinable.name().to_owned(),
        b.lock.name().to_owned(),
        b.rlock.name().to_owned(),
        b.semaphore.name().to_owned(),
        b.event.name().to_owned(),
        b.condition.name().to_owned(),
        b.barrier.name().to_owned(),
        // Not the pipe's: the parent still holds its other end.
    ];
    Ok((read, names))
}

const READ: &str = "41 [1, 2, 3] 7 [5, 6] queued 9 true 0";

fn check(outcome: (String, Vec<String>), ours: &Connection<String>) {
    assert_eq!(outcome.0, READ);
    assert_eq!(ours.recv_timeout(LIMIT).unwrap(), "over the pipe");
    assert!(
        ours.recv_timeout(LIMIT).unwrap_err().is_eof(),
        "the child's end closed when it ended"
    );
    for name in outcome.1 {
        common::wait_until("the segment to be removed", LIMIT, || {
            !common::shm_path(&name).exists()
        });
    }
}

#[test]
fn every_handle_kind_moved_into_start_works_in_the_child() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let (b, ours) = bundle();
    // Moved: the parent keeps no copy of any of these handles.
    let mut p = Process::start(use_bundle, b).unwrap();
    check(p.join_timeout(LIMIT).unwrap().unwrap(), &ours);
}

#[test]
fn a_clone_dropped_right_after_start_is_still_the_childs() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let (b, ours) = bundle();
    let copy: Bundle = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
    let mut p = Process::start(use_bundle, copy).unwrap();
    drop(b); // the creator's own handles, the instant `start` has returned
    check(p.join_timeout(LIMIT).unwrap().unwrap(), &ours);
}

/// CPython's documentation's first `Pipe` example: the parent closes its copy of the child's
/// end right after `start`, then receives what the child sends.
fn greet(conn: Connection<(String, u32)>) -> Result<(), String> {
    conn.send(&("hello".to_string(), 42))
        .map_err(|e| e.to_string())
}

#[test]
fn the_python_docs_pipe_example_works() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    for _ in 0..5 {
        let (parent, child) = Pipe::<(String, u32)>::duplex().unwrap();
        let mut p = Process::start(greet, child.clone()).unwrap();
        child.close(); // this process's copy only: the child holds that end
        assert_eq!(
            parent.recv_timeout(LIMIT).unwrap(),
            ("hello".to_string(), 42)
        );
        p.join_timeout(LIMIT).unwrap().unwrap();
        assert!(parent.recv_timeout(LIMIT).unwrap_err().is_eof());
    }
    // And with the end moved into `start`.
    let (parent, child) = Pipe::<(String, u32)>::duplex().unwrap();
    let mut p = Process::start(greet, child).unwrap();
    assert_eq!(parent.recv_timeout(LIMIT).unwrap().1, 42);
    p.join_timeout(LIMIT).unwrap().unwrap();
}

fn read_value(v: Value<u32>) -> u32 {
    v.get().unwrap()
}

fn take_and_read(q: Queue<Value<u32>>) -> Result<u32, String> {
    let v = q.get_timeout(LIMIT).map_err(|e| e.to_string())?;
    let got = v.get().map_err(|e| e.to_string())?;
    Ok(got)
}

#[test]
fn a_handle_sent_through_a_queue_outlives_the_senders_copy() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let q = Queue::<Value<u32>>::new(0).unwrap();
    let v = Value::new(5u32).unwrap();
    let name = v.name().to_owned();
    q.put(v).unwrap(); // moved into the queue: no copy is left here
    let mut p = Process::start(take_and_read, q.clone()).unwrap();
    assert_eq!(p.join_timeout(LIMIT).unwrap(), Ok(5));
    common::wait_until("the value to be removed", LIMIT, || {
        !common::shm_path(&name).exists()
    });
}

#[test]
fn a_handle_as_a_pool_tasks_argument_outlives_the_senders_copy() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let pool = Pool::new(2).unwrap();
    let names: Vec<String> = (0..20u32)
        .map(|i| {
            let v = Value::new(i).unwrap();
            let name = v.name().to_owned();
            let r = pool.apply_async(read_value, v); // moved
            assert_eq!(r.get_timeout(LIMIT).unwrap(), i);
            name
        })
        .collect();
    let values: Vec<Value<u32>> = (0..50).map(|i| Value::new(i).unwrap()).collect();
    let more: Vec<String> = values.iter().map(|v| v.name().to_owned()).collect();
    assert_eq!(
        pool.map(read_value, values).unwrap(),
        (0..50).collect::<Vec<_>>()
    );
    drop(pool);
    for name in names.iter().chain(&more) {
        common::wait_until("the value to be removed", LIMIT, || {
            !common::shm_path(name).exists()
        });
    }
}

/// Takes a value and a payload, and reads both.
fn take_pair(q: Queue<(Value<u32>, Vec<u64>)>) -> Result<(u32, usize), String> {
    let (v, payload) = q.get_timeout(LIMIT).map_err(|e| e.to_string())?;
    Ok((v.get().map_err(|e| e.to_string())?, payload.len()))
}

/// A put first tries to serialise an item straight into the ring (4 KiB at most); this one is
/// bigger, so the try is given up after the handle in it was noted, and the item is encoded
/// again. The handle must count one hand-over, not two: with two, the receiver's claim would
/// not be the last, no one would adopt the segment, and its name would stay in `/dev/shm`.
#[test]
fn a_handle_in_an_item_too_big_to_serialise_in_place_is_handed_over_once() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let q = Queue::<(Value<u32>, Vec<u64>)>::new(0).unwrap();
    let mut names = Vec::new();
    for (i, len) in [(1u32, 2000usize), (2, 3), (3, 2000)] {
        let v = Value::new(i).unwrap();
        names.push(v.name().to_owned());
        q.put((v, vec![u64::MAX; len])).unwrap(); // 10 bytes an element: 20 kB, or 30 B
        let mut p = Process::start(take_pair, q.clone()).unwrap();
        assert_eq!(p.join_timeout(LIMIT).unwrap(), Ok((i, len)));
    }
    for name in &names {
        common::wait_until("the value to be removed", LIMIT, || {
            !common::shm_path(name).exists()
        });
    }
}

/// Creates a value and sends it away, then exits before anyone opens it.
fn send_and_exit(q: Queue<Value<u32>>) -> Result<String, String> {
    let v = Value::new(77u32).map_err(|e| e.to_string())?;
    let name = v.name().to_owned();
    q.put(v).map_err(|e| e.to_string())?;
    Ok(name)
}

#[test]
fn the_sender_may_exit_before_the_receiver_opens_the_handle() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let q = Queue::<Value<u32>>::new(0).unwrap();
    let mut sender = Process::start(send_and_exit, q.clone()).unwrap();
    let name = sender.join_timeout(LIMIT).unwrap().unwrap();
    assert!(!sender.is_alive());
    assert!(common::shm_path(&name).exists(), "left for its receiver");
    let mut receiver = Process::start(take_and_read, q.clone()).unwrap();
    assert_eq!(receiver.join_timeout(LIMIT).unwrap(), Ok(77));
    common::wait_until("the value to be removed", LIMIT, || {
        !common::shm_path(&name).exists()
    });
    assert_gone(&name);
}

#[test]
fn a_handle_that_cannot_be_opened_names_its_segment_and_why() {
    shmkit::init();
    watchdog(Duration::from_secs(60));
    let q = Queue::<Value<u32>>::new(0).unwrap();
    let v = Value::new(1u32).unwrap();
    let name = v.name().to_owned();
    q.put(v.clone()).unwrap();
    shmkit::shm::remove(&name).unwrap(); // gone before the receiver opens it
    match q.get_timeout(LIMIT) {
        Err(shmkit::GetTimeoutError::Deserialize(why)) => {
            assert!(
                why.contains(&name) && why.contains("does not exist"),
                "{why}"
            )
        }
        other => panic!("expected a deserialisation error, got {other:?}"),
    }
    drop(v);
    let q2 = Queue::<u8>::new(0).unwrap();
    q2.close().unwrap();
    assert!(matches!(q2.get(), Err(GetError::Closed)));
}
