//! `RedisPool` and `Worker` against a real Redis server (`SHMKIT_REDIS_URL`, which `.ci/run`
//! sets after starting one); without the `redis` feature or the variable these tests are
//! reported as ignored. Worker processes (this test binary, re-executed) stand for hosts:
//! several serve one pool, one is SIGKILLed or stopped mid-task, a task kills every worker
//! that runs it, and foreign or hostile entries arrive on the pool's stream.

#![cfg_attr(not(feature = "redis"), allow(unused))]

#[macro_use]
mod common;

use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[cfg(feature = "redis")]
mod with_redis {
    use super::*;
    use common::{arg, role, spawn, wait, wait_until, watchdog};
    use shmkit::redis::{RedisOptions, RedisPool, Worker};
    use shmkit::{RawValue, ResultTimeoutError, TaskError};
    use std::process::Child;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use common::redis_url as url;

    #[shmkit::task]
    fn square(x: u64) -> u64 {
        x * x
    }

    #[shmkit::task]
    fn add(a: i64, b: i64) -> i64 {
        a + b
    }

    /// Which worker ran an item (slowly enough that several workers share a map).
    #[shmkit::task]
    fn whose(_: u32) -> u32 {
        std::thread::sleep(Duration::from_millis(20));
        std::process::id()
    }

    #[shmkit::task]
    fn length(v: Vec<u8>) -> usize {
        v.len()
    }

    #[shmkit::task]
    fn halve(x: i32) -> Result<i32, String> {
        if x % 2 == 0 {
            Ok(x / 2)
        } else {
            Err(format!("{x} is odd"))
        }
    }

    #[shmkit::task(name = "panics")]
    fn boom(x: u8) -> u8 {
        assert!(x != 1, "one is not allowed");
        x
    }

    /// The first run marks the flag and stalls (to be killed or stopped); a later run returns
    /// its pid at once.
    #[shmkit::task]
    fn stall_once(flag: String) -> u32 {
        let flag = RawValue::<u32>::open(&flag).expect("flag");
        if flag.get() == 0 {
            flag.set(1);
            std::thread::sleep(Duration::from_secs(3));
            flag.set(2);
            return 0;
        }
        std::process::id()
    }

    /// Kills whichever worker runs it.
    #[shmkit::task]
    fn poison(flag: String) -> u32 {
        let flag = RawValue::<u32>::open(&flag).expect("flag");
        flag.set(flag.get() + 1);
        std::process::abort()
    }

    /// An outcome within `T`: a test fails, never hangs, if no worker answers.
    fn within<V: 'static>(r: shmkit::AsyncResult<V>) -> Result<V, TaskError> {
        match r.get_timeout(T) {
            Ok(v) => Ok(v),
            Err(ResultTimeoutError::Task(e)) => Err(e),
            Err(e) => panic!("no outcome within {T:?}: {e}"),
        }
    }

    fn lease_opts(ms: u64) -> RedisOptions {
        let mut o = RedisOptions::default();
        o.lease = Duration::from_millis(ms);
        o
    }

    /// In a worker child: serves the pool named by `POOL` until killed.
    fn serve_if_worker() {
        if role().as_deref() == Some("worker") {
            let lease = arg("LEASE_MS").parse().unwrap();
            let w = Worker::with_options(&url(), &arg("POOL"), lease_opts(lease)).unwrap();
            let _ = w.run();
            unreachable!("a worker serves until killed");
        }
    }

    /// Worker processes, killed when the test ends (however it ends).
    struct Workers {
        test: &'static str,
        pool: String,
        lease_ms: u64,
        children: Vec<Child>,
    }

    impl Workers {
        fn start(test: &'static str, pool: &str, lease_ms: u64, n: usize) -> Workers {
            let mut w = Workers {
                test,
                pool: pool.to_owned(),
                lease_ms,
                children: Vec::new(),
            };
            for _ in 0..n {
                w.add();
            }
            w
        }

        fn add(&mut self) -> u32 {
            let lease = self.lease_ms.to_string();
            let child = spawn(
                self.test,
                "worker",
                &[("POOL", &self.pool), ("LEASE_MS", &lease)],
            );
            let pid = child.id();
            self.children.push(child);
            pid
        }

        fn kill(&mut self, pid: u32) {
            let i = self.children.iter().position(|c| c.id() == pid).unwrap();
            let mut c = self.children.remove(i);
            c.kill().unwrap();
            wait(&mut c, T);
        }
    }

    impl Drop for Workers {
        fn drop(&mut self) {
            for c in &mut self.children {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    pub const CALLS: &str = "map_starmap_imap_apply_and_callbacks_across_worker_processes";

    pub fn calls() {
        serve_if_worker();
        watchdog(Duration::from_secs(120));
        let name = common::unique("calls");
        let workers = Workers::start(CALLS, &name, 30_000, 3);
        let pool = RedisPool::connect(&url(), &name).unwrap();

        let squares = within(pool.map_async(square, 0..1000u64)).unwrap();
        assert_eq!(squares, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());
        assert_eq!(
            within(pool.map_async(square, Vec::<u64>::new())).unwrap(),
            Vec::<u64>::new()
        );

        let sums = pool.starmap(add, (0..100i64).map(|i| (i, -2 * i))).unwrap();
        assert_eq!(sums, (0..100i64).map(|i| -i).collect::<Vec<_>>());
        assert_eq!(within(pool.apply_star_async(add, (40, 2))).unwrap(), 42);
        let sums = pool.starmap_async(add, [(1, 2), (3, 4)]);
        assert_eq!(sums.get_timeout(T).unwrap(), [3, 7]);
        // Pool::connect is the same pool under the name "default".
        assert_eq!(shmkit::Pool::connect(&url()).unwrap().name(), "default");

        let ordered: Vec<u64> = pool.imap(square, 0..50u64).map(|r| r.unwrap()).collect();
        assert_eq!(ordered, (0..50u64).map(|x| x * x).collect::<Vec<_>>());
        let mut it = pool.imap(square, [3u64]);
        assert_eq!(it.next_timeout(T).unwrap().unwrap(), 9);
        assert!(it.next_timeout(T).is_none());

        // Callbacks run before get() returns, as in Python.
        let seen = Arc::new(AtomicU32::new(0));
        let s = Arc::clone(&seen);
        let r = pool
            .apply_async(square, 12)
            .on_success(move |v| s.store(*v as u32, Ordering::SeqCst));
        assert_eq!(r.get_timeout(T).unwrap(), 144);
        assert_eq!(seen.load(Ordering::SeqCst), 144);
        let failed = Arc::new(AtomicU32::new(0));
        let f = Arc::clone(&failed);
        let r = pool
            .apply_async(halve, 3)
            .on_error(move |_| f.store(1, Ordering::SeqCst));
        assert!(
            matches!(r.get_timeout(T), Err(ResultTimeoutError::Task(TaskError::Failed(m))) if m == "3 is odd")
        );
        assert_eq!(failed.load(Ordering::SeqCst), 1);

        // A panic fails its item alone; map reports it once every chunk has finished.
        let one = pool.chunksize(1);
        assert!(
            matches!(one.apply(boom, 1), Err(TaskError::Panicked(m)) if m.contains("one is not allowed"))
        );
        assert!(matches!(
            within(one.map_async(boom, [0u8, 1, 2])),
            Err(TaskError::Panicked(_))
        ));

        // Several workers share a map.
        let pids = within(one.map_async(whose, 0..60)).unwrap();
        let mut distinct = pids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() >= 2, "one worker ran all: {distinct:?}");
        let worker_pids: Vec<u32> = workers.children.iter().map(Child::id).collect();
        assert!(distinct.iter().all(|p| worker_pids.contains(p)));

        // A closure is not a named task: refused at the call, nothing sent.
        let r = one.map(|x: u64| x + 1, [1u64]);
        assert!(matches!(r, Err(TaskError::UnknownTask(m)) if m.contains("not a #[shmkit::task]")));

        // Oversize arguments: refused before anything is sent.
        let mut o = RedisOptions::default();
        o.max_size = 1000;
        let small = RedisPool::with_options(&url(), &name, o).unwrap();
        assert!(
            matches!(within(small.apply_async(length, vec![0u8; 5000])), Err(TaskError::Serialize(m)) if m.contains("larger than the limit"))
        );
        assert_eq!(
            within(small.apply_async(length, vec![0u8; 10])).unwrap(),
            10
        );
        assert_eq!(small.outstanding(), 0);

        one.close();
        assert!(matches!(one.apply(square, 2), Err(TaskError::Closed)));
        one.join_timeout(T).unwrap();
        drop(workers);
    }

    pub const KILLED: &str = "a_worker_killed_mid_task_fails_it_or_with_retries_runs_it_again";

    pub fn killed() {
        serve_if_worker();
        watchdog(Duration::from_secs(120));
        let name = common::unique("killed");
        let mut workers = Workers::start(KILLED, &name, 500, 1);
        let first = workers.children[0].id();

        // Without retries: the task fails with the dead worker's pid once its lease runs out.
        let flag = RawValue::<u32>::new(0).unwrap();
        let pool = RedisPool::connect(&url(), &name).unwrap();
        let r = pool.apply_async(stall_once, flag.name().to_owned());
        wait_until("the worker runs the task", T, || flag.get() == 1);
        workers.kill(first);
        let second = workers.add();
        match r.get_timeout(T) {
            Err(ResultTimeoutError::Task(TaskError::WorkerDied { pid, status })) => {
                assert_eq!(pid, first, "{status}");
            }
            other => panic!("{other:?}"),
        }

        // With retries: it runs again on another worker.
        let flag = RawValue::<u32>::new(0).unwrap();
        let pool = RedisPool::connect(&url(), &name).unwrap().retries(1);
        let r = pool.apply_async(stall_once, flag.name().to_owned());
        wait_until("the worker runs the task", T, || flag.get() == 1);
        workers.kill(second);
        let third = workers.add();
        assert_eq!(r.get_timeout(T).unwrap(), third);

        // A poison task kills each worker that runs it: after 1 + retries deliveries it fails,
        // and the pool goes on.
        let flag = RawValue::<u32>::new(0).unwrap();
        let r = pool.apply_async(poison, flag.name().to_owned());
        wait_until("the first worker dies of it", T, || flag.get() == 1);
        workers.add();
        wait_until("the second worker dies of it", T, || flag.get() == 2);
        workers.add();
        assert!(matches!(
            r.get_timeout(T),
            Err(ResultTimeoutError::Task(TaskError::WorkerDied { .. }))
        ));
        assert_eq!(flag.get(), 2, "never run a third time");
        assert_eq!(within(pool.apply_async(square, 9)).unwrap(), 81);
    }

    pub const STOPPED: &str = "a_stopped_worker_that_finishes_late_does_not_overwrite_the_result";

    pub fn stopped() {
        serve_if_worker();
        watchdog(Duration::from_secs(120));
        let name = common::unique("stopped");
        let mut workers = Workers::start(STOPPED, &name, 500, 1);
        let slow = workers.children[0].id();
        let flag = RawValue::<u32>::new(0).unwrap();
        let pool = RedisPool::connect(&url(), &name).unwrap().retries(1);
        let r = pool.apply_async(stall_once, flag.name().to_owned());
        wait_until("the worker runs the task", T, || flag.get() == 1);
        // SIGSTOP: its renewals stop, its lease runs out, another worker takes the task over.
        // SAFETY: kill(2) with a pid this test started and a valid signal.
        unsafe { libc::kill(slow as i32, libc::SIGSTOP) };
        let fresh = workers.add();
        assert_eq!(r.get_timeout(T).unwrap(), fresh);
        // SAFETY: as above.
        unsafe { libc::kill(slow as i32, libc::SIGCONT) };
        wait_until("the stopped worker finishes its run", T, || flag.get() == 2);
        // Its result (0) was dropped: the reply stream got one result only.
        let client = redis::Client::open(url()).unwrap();
        let mut c = client.get_connection().unwrap();
        let reply = format!("shmkit:pool:{name}:reply:{}", pool.client_id());
        std::thread::sleep(Duration::from_secs(1));
        let info: redis::Value = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&reply)
            .query(&mut c)
            .unwrap();
        assert_eq!(entries_added(&info), Some(2), "{info:?}");
    }

    fn entries_added(info: &redis::Value) -> Option<i64> {
        let pairs: Vec<(&redis::Value, &redis::Value)> = match info {
            redis::Value::Array(a) => a.chunks_exact(2).map(|p| (&p[0], &p[1])).collect(),
            redis::Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
            _ => return None,
        };
        pairs.into_iter().find_map(|(k, v)| match (k, v) {
            (redis::Value::BulkString(k), redis::Value::Int(n)) if k == b"entries-added" => {
                Some(*n)
            }
            _ => None,
        })
    }

    pub const TIED: &str = "init_serves_as_a_worker_that_ends_with_its_parent";

    /// `shmkit::init()` with `SHMKIT_REDIS_WORKER` set serves tasks instead of returning; with
    /// `SHMKIT_REDIS_WORKER_PARENT` it ends when its parent is SIGKILLed.
    pub fn tied() {
        use shmkit::redis::{PARENT_ENV, POOL_ENV, WORKER_ENV};
        watchdog(Duration::from_secs(120)); // in every role: nothing outlives a failed test
        match role().as_deref() {
            Some("env_worker") => {
                shmkit::init();
                unreachable!("init() serves as a worker and never returns");
            }
            Some("middle") => {
                let me = std::process::id().to_string();
                let url = url();
                let pool = arg("POOL");
                let mut worker = spawn(
                    TIED,
                    "env_worker",
                    &[(WORKER_ENV, &url), (POOL_ENV, &pool), (PARENT_ENV, &me)],
                );
                RawValue::<u32>::open(&arg("FLAG"))
                    .unwrap()
                    .set(worker.id());
                // Serves until this process is killed (the test's watchdog bounds it).
                let _ = worker.wait();
                unreachable!("killed before its worker ends");
            }
            _ => {}
        }
        let name = common::unique("tied");
        let flag = RawValue::<u32>::new(0).unwrap();
        let mut middle = spawn(TIED, "middle", &[("POOL", &name), ("FLAG", flag.name())]);
        wait_until("the worker starts", T, || flag.get() != 0);
        let worker = flag.get();
        let pool = RedisPool::connect(&url(), &name).unwrap();
        assert_eq!(pool.apply_async(whose, 0).get_timeout(T).unwrap(), worker);
        middle.kill().unwrap();
        wait(&mut middle, T);
        wait_until("the worker ends with its parent", T, || {
            // Gone, or a zombie waiting for its new parent to reap it.
            std::fs::read_to_string(format!("/proc/{worker}/stat"))
                .map_or(true, |stat| stat.contains(") Z "))
        });
    }

    pub const FOREIGN: &str = "unknown_names_other_builds_and_hostile_entries_are_refused";

    /// The task as a worker reads it (the wire format, written here by hand).
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Job {
        task: u64,
        client: String,
        name: String,
        star: bool,
        fingerprint: u64,
        retries: u32,
        args: Vec<u8>,
    }

    pub fn foreign() {
        serve_if_worker();
        watchdog(Duration::from_secs(120));
        let name = common::unique("foreign");
        let _workers = Workers::start(FOREIGN, &name, 30_000, 1);
        let client = redis::Client::open(url()).unwrap();
        let mut c = client.get_connection().unwrap();
        // Hostile entries on the pool's stream: wrong fields, and bytes that are not a task.
        let stream = format!("shmkit:q:pool:{name}");
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("x")
            .arg("y")
            .query(&mut c)
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("d")
            .arg(&[0xffu8; 12][..])
            .query(&mut c)
            .unwrap();
        // Tasks another build sent: a name this build lacks, and a known name with other types.
        let me = "a-client-of-another-build";
        let reply = format!("shmkit:pool:{name}:reply:{me}");
        let _: String = redis::cmd("XADD")
            .arg(&reply)
            .arg("*")
            .arg("hello")
            .arg(1)
            .query(&mut c)
            .unwrap();
        let jobs =
            shmkit::redis::RedisQueue::<Job>::connect(&url(), &format!("pool:{name}")).unwrap();
        for (task, job_name, fingerprint) in [
            (1, "elsewhere::resize".to_owned(), 1u64),
            (2, "redis_pool::with_redis::square".to_owned(), 12345),
        ] {
            jobs.put(Job {
                task,
                client: me.into(),
                name: job_name,
                star: false,
                fingerprint,
                retries: 0,
                args: vec![8, 3],
            })
            .unwrap();
        }
        wait_until("both replies", T, || {
            let n: usize = redis::cmd("XLEN").arg(&reply).query(&mut c).unwrap();
            n == 3
        });
        let entries: redis::Value = redis::cmd("XRANGE")
            .arg(&reply)
            .arg("-")
            .arg("+")
            .query(&mut c)
            .unwrap();
        let all = bulk_bytes(&entries);
        let all = String::from_utf8_lossy(&all);
        let text = format!("{entries:?}");
        assert!(
            all.contains("has no #[shmkit::task] named \"elsewhere::resize\""),
            "{text}"
        );
        assert!(all.contains("other argument or result types"), "{text}");
        // The worker survived all of it and serves the real thing.
        let pool = RedisPool::connect(&url(), &name).unwrap();
        assert_eq!(within(pool.map_async(square, [2u64, 3])).unwrap(), [4, 9]);
        let dead: usize = redis::cmd("XLEN")
            .arg(format!("{stream}:dead"))
            .query(&mut c)
            .unwrap();
        assert_eq!(dead, 2, "the hostile entries are dead letters");
        let _: i64 = redis::cmd("DEL").arg(&reply).query(&mut c).unwrap();

        // Hostile replies to a caller (a pool no worker serves, so only these come): entries
        // that are not replies are skipped, a reply for a task not outstanding is dropped, and
        // garbage for an outstanding task fails that task.
        let idle = RedisPool::connect(&url(), &common::unique("idle")).unwrap();
        let r = idle.apply_async(square, 3);
        let reply = format!("shmkit:pool:{}:reply:{}", idle.name(), idle.client_id());
        for fields in [
            vec![("x", &b"y"[..])],
            vec![("t", &b"not a number"[..]), ("o", &b"zz"[..])],
            vec![("t", &b"999"[..]), ("o", &b"zz"[..])],
            vec![("t", &b"1"[..]), ("o", &[0xff; 9][..])],
        ] {
            let _: String = redis::cmd("XADD")
                .arg(&reply)
                .arg("*")
                .arg(fields)
                .query(&mut c)
                .unwrap();
        }
        assert!(matches!(
            r.get_timeout(T),
            Err(ResultTimeoutError::Task(TaskError::Deserialize(m))) if m.contains("not a shmkit reply")
        ));
        assert_eq!(idle.outstanding(), 0);
    }

    /// Every bulk string in a reply, concatenated.
    fn bulk_bytes(v: &redis::Value) -> Vec<u8> {
        match v {
            redis::Value::BulkString(b) => b.clone(),
            redis::Value::Array(a) => a.iter().flat_map(bulk_bytes).collect(),
            _ => Vec::new(),
        }
    }

    pub const RESTART: &str = "a_server_restart_under_a_pool_is_an_error_or_a_reconnect_not_a_hang";

    pub fn restart() {
        if role().as_deref() == Some("worker") {
            let w = Worker::with_options(&arg("URL"), "restart", lease_opts(1000)).unwrap();
            let _ = w.run();
            unreachable!();
        }
        watchdog(Duration::from_secs(120));
        let port = common::free_port();
        let start = || common::start_redis(port);
        let url = format!("redis://127.0.0.1:{port}/");
        let mut server = start();
        let mut worker = spawn(RESTART, "worker", &[("URL", &url)]);
        let mut o = RedisOptions::default();
        o.io_timeout = Duration::from_secs(2);
        let pool = RedisPool::with_options(&url, "restart", o).unwrap();
        assert_eq!(within(pool.map_async(square, 0..10u64)).unwrap()[9], 81);
        server.kill().unwrap();
        server.wait().unwrap();
        // Down: a call fails (the put cannot be sent) instead of hanging.
        let began = std::time::Instant::now();
        assert!(matches!(pool.apply(square, 3), Err(TaskError::Pool(_))));
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "an error, not a hang"
        );
        // Back, empty. A task outstanding then is lost with the server's memory: it fails
        // instead of waiting for ever; the pool itself goes on (its collector makes its reply
        // stream again), and the worker reconnects.
        let mut server = start();
        let lost = pool.apply_async(square, 5);
        match lost.get_timeout(T) {
            Ok(v) => assert_eq!(v, 25),
            Err(ResultTimeoutError::Task(TaskError::Pool(_))) => {}
            Err(e) => panic!("{e:?}"),
        }
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(pool.apply_async(square, 6).get_timeout(T).unwrap(), 36);
        let fresh = RedisPool::with_options(&url, "restart", RedisOptions::default()).unwrap();
        assert_eq!(fresh.apply_async(square, 7).get_timeout(T).unwrap(), 49);
        drop(fresh);
        drop(pool);
        worker.kill().unwrap();
        wait(&mut worker, T);
        server.kill().unwrap();
        server.wait().unwrap();
    }
}

redis_tests! {
    map_starmap_imap_apply_and_callbacks_across_worker_processes => calls,
    a_worker_killed_mid_task_fails_it_or_with_retries_runs_it_again => killed,
    a_stopped_worker_that_finishes_late_does_not_overwrite_the_result => stopped,
    unknown_names_other_builds_and_hostile_entries_are_refused => foreign,
    init_serves_as_a_worker_that_ends_with_its_parent => tied,
    a_server_restart_under_a_pool_is_an_error_or_a_reconnect_not_a_hang => restart,
}
