//! `futures::Executor`: the `concurrent.futures` facade, with real worker processes.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{wait_until, watchdog};
use shmkit::Value;
use shmkit::futures::{Executor, MapOptions, ReturnWhen, Shutdown, as_completed, wait};
use shmkit::{ResultTimeoutError, TaskError, Timeout, TryResultError};

const LIMIT: Duration = Duration::from_secs(60);

fn sleep_then(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn worker_pid(_: ()) -> u32 {
    shmkit::current_pid()
}

fn fails(x: u64) -> u64 {
    panic!("task {x} fails")
}

fn hang_and_report(flag: Value<u32>) -> u32 {
    flag.set(shmkit::current_pid()).unwrap();
    std::thread::sleep(Duration::from_secs(30));
    0
}

#[test]
fn submit_result_callbacks_and_cancel() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let executor = Executor::new(1).unwrap();
    let first = executor.submit(sleep_then, 300);
    wait_until("the first task to run", LIMIT, || first.is_running());
    // One worker, busy: the next one waits in the parent and can be cancelled.
    let second = executor.submit(sleep_then, 1);
    let third = executor.submit(sleep_then, 2);
    assert!(!second.is_done() && !second.is_running());
    let cancelled_cb = Arc::new(AtomicU32::new(0));
    let c2 = cancelled_cb.clone();
    second.add_done_callback(move |f| {
        assert!(f.is_cancelled());
        c2.fetch_add(1, Ordering::Relaxed);
    });
    assert!(second.cancel());
    assert!(second.is_cancelled() && second.is_done());
    assert_eq!(cancelled_cb.load(Ordering::Relaxed), 1);
    assert_eq!(second.result(), Err(TaskError::Cancelled));
    assert!(!first.cancel(), "a running future cannot be cancelled");

    // A done callback may ask its future for the result.
    let seen = Arc::new(Mutex::new(None));
    let s2 = seen.clone();
    third.add_done_callback(move |f| *s2.lock().unwrap() = Some(f.result()));
    assert_eq!(first.result_timeout(LIMIT), Ok(300));
    assert_eq!(third.result_timeout(LIMIT), Ok(2));
    wait_until("the done callback", LIMIT, || {
        seen.lock().unwrap().is_some()
    });
    assert_eq!(seen.lock().unwrap().clone(), Some(Ok(2)));
    // Already done: the callback runs at once, here.
    let here = Arc::new(AtomicU32::new(0));
    let h2 = here.clone();
    first.add_done_callback(move |_| {
        h2.store(1, Ordering::Relaxed);
    });
    assert_eq!(here.load(Ordering::Relaxed), 1);
    assert!(!first.cancel());

    let failing = executor.submit(fails, 9);
    assert!(matches!(failing.error(), Some(TaskError::Panicked(m)) if m.contains("task 9 fails")));
    assert!(first.error().is_none());
    // result_timeout gives up and the future goes on.
    let slow = executor.submit(sleep_then, 200);
    assert_eq!(
        slow.result_timeout(Duration::from_millis(5)),
        Err(ResultTimeoutError::Timeout)
    );
    assert_eq!(slow.try_result(), Err(TryResultError::NotReady));
    assert_eq!(slow.result_timeout(LIMIT), Ok(200));
    let mapped: Vec<_> = executor.map(sleep_then, [3, 1, 2]).collect();
    assert_eq!(mapped, [Ok(3), Ok(1), Ok(2)]);
}

#[test]
fn as_completed_and_wait_follow_completion_order() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let executor = Executor::new(2).unwrap();
    let futures: Vec<_> = [400u64, 20]
        .map(|ms| executor.submit(sleep_then, ms))
        .into();
    let order: Vec<u64> = as_completed(&futures, Some(LIMIT))
        .map(|f| f.unwrap().result().unwrap())
        .collect();
    assert_eq!(order, [20, 400]);

    let futures: Vec<_> = [500u64, 10]
        .map(|ms| executor.submit(sleep_then, ms))
        .into();
    let w = wait(&futures, Some(LIMIT), ReturnWhen::FirstCompleted);
    assert_eq!(w.done.len(), 1);
    assert_eq!(w.done[0].result(), Ok(10));
    assert_eq!(w.not_done.len(), 1);
    // A timeout returns what is done so far.
    let w = wait(
        &futures,
        Some(Duration::from_millis(1)),
        ReturnWhen::AllCompleted,
    );
    assert_eq!((w.done.len(), w.not_done.len()), (1, 1));
    let w = wait(&futures, Some(LIMIT), ReturnWhen::AllCompleted);
    assert_eq!((w.done.len(), w.not_done.len()), (2, 0));

    let mixed = vec![executor.submit(sleep_then, 600), executor.submit(fails, 1)];
    let w = wait(&mixed, Some(LIMIT), ReturnWhen::FirstException);
    assert_eq!(w.done.len(), 1);
    assert!(w.done[0].error().is_some());
    // as_completed with a timeout that passes yields Timeout once and ends.
    let slow = vec![executor.submit(sleep_then, 2_000)];
    let got: Vec<_> = as_completed(&slow, Some(Duration::from_millis(10))).collect();
    assert!(matches!(got[..], [Err(Timeout)]));
}

/// `Executor.map(timeout=, chunksize=)`, `max_tasks_per_child`, `exception(timeout)`, and a
/// future passed twice to `wait` or `as_completed` counted once (CPython's bpo-20369).
#[test]
fn map_with_options_max_tasks_and_duplicate_futures() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let executor = Executor::builder()
        .max_workers(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let chunked = MapOptions {
        timeout: Some(LIMIT),
        chunksize: Some(3),
    };
    let got: Vec<_> = executor.map_with(sleep_then, 0..7u64, chunked).collect();
    assert_eq!(got, (0..7).map(Ok).collect::<Vec<_>>());
    let tight = MapOptions {
        timeout: Some(Duration::from_millis(50)),
        chunksize: None,
    };
    let got: Vec<_> = executor
        .map_with(sleep_then, [0u64, 2_000, 0], tight)
        .collect();
    assert_eq!(got.len(), 2, "a timeout ends the iteration: {got:?}");
    assert_eq!(got[1], Err(ResultTimeoutError::Timeout));
    // max_tasks_per_child: the worker is replaced every two tasks.
    let pids: Vec<u32> = (0..4)
        .map(|_| {
            executor
                .submit(worker_pid, ())
                .result_timeout(LIMIT)
                .unwrap()
        })
        .collect();
    let mut distinct = pids.clone();
    distinct.dedup();
    assert!(distinct.len() >= 2, "{pids:?}");
    assert!(matches!(
        Executor::builder().max_tasks_per_child(0).build(),
        Err(shmkit::Error::InvalidArgument { .. })
    ));

    let slow = executor.submit(sleep_then, 300);
    assert_eq!(slow.error_timeout(Duration::from_millis(5)), Err(Timeout));
    assert_eq!(slow.error_timeout(LIMIT), Ok(None));
    let failing = executor.submit(fails, 1);
    assert!(matches!(
        failing.error_timeout(LIMIT),
        Ok(Some(TaskError::Panicked(_)))
    ));

    let f = executor.submit(sleep_then, 1);
    let twice = [f.clone(), f.clone()];
    let w = wait(&twice, Some(LIMIT), ReturnWhen::AllCompleted);
    assert_eq!((w.done.len(), w.not_done.len()), (1, 0));
    assert_eq!(as_completed(&twice, Some(LIMIT)).count(), 1);
}

#[test]
fn shutdown_cancels_pending_futures_and_refuses_new_ones() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let executor = Executor::new(1).unwrap();
    let running = executor.submit(sleep_then, 200);
    wait_until("the first task to run", LIMIT, || running.is_running());
    let pending: Vec<_> = (0..20).map(|_| executor.submit(sleep_then, 1)).collect();
    executor.shutdown(Shutdown::Wait {
        cancel_pending: true,
    });
    assert_eq!(running.result_timeout(Duration::ZERO), Ok(200));
    assert!(pending.iter().all(|f| f.is_cancelled()));
    let late = executor.submit(sleep_then, 1);
    assert_eq!(
        late.result_timeout(LIMIT),
        Err(ResultTimeoutError::Task(TaskError::Closed))
    );
    assert_eq!(
        late.try_result(),
        Err(TryResultError::Task(TaskError::Closed))
    );
    assert!(executor.pids().is_empty());

    // shutdown(wait = false) returns at once; the running task still finishes.
    let executor = Executor::new(1).unwrap();
    let running = executor.submit(sleep_then, 2_000);
    executor.shutdown(Shutdown::NoWait {
        cancel_pending: false,
    });
    assert!(!running.is_done());
    assert_eq!(running.result_timeout(LIMIT), Ok(2_000));
    drop(executor);
}

#[test]
fn a_killed_worker_breaks_the_executor_instead_of_hanging() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let executor = Executor::new(2).unwrap();
    let flag = Value::new(0u32).unwrap();
    let victim = executor.submit(hang_and_report, flag.clone());
    let pending: Vec<_> = (0..10).map(|_| executor.submit(sleep_then, 100)).collect();
    wait_until("the task to start", LIMIT, || flag.get().unwrap() != 0);
    let pid = flag.get().unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(
        matches!(victim.result_timeout(LIMIT), Err(ResultTimeoutError::Task(TaskError::Broken(m))) if m.contains(&pid.to_string()))
    );
    for f in &pending {
        match f.result_timeout(LIMIT) {
            Ok(_) | Err(ResultTimeoutError::Task(TaskError::Broken(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pending.iter().any(|f| f.error().is_some()));
    let later = executor.submit(sleep_then, 1);
    assert!(matches!(
        later.result_timeout(LIMIT),
        Err(ResultTimeoutError::Task(TaskError::Broken(_)))
    ));
}
