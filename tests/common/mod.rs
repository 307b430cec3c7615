//! Helpers for multi-process tests: re-execute this test binary to run one test in a child
//! process with a role (ipc-channel's and procspawn's pattern), wait with timeouts, and make
//! sure a hang fails the test instead of freezing CI.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

const ROLE: &str = "SHMKIT_TEST_ROLE";

/// The role this process was started with, if it is a child of a test.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// The value of a variable the parent passed to the child.
pub fn arg(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("child started without {key}"))
}

/// Starts this test binary again, running only `test`, with `role` and the given variables.
pub fn spawn(test: &str, role: &str, vars: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    // The child's own libtest summary would only confuse a reader; its panics go to stderr.
    cmd.stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn child test process")
}

/// Waits for `child`; kills it and fails the test if it takes longer than `limit`.
pub fn wait(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not finish within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until `cond` holds; fails the test after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Aborts the whole test process if it is still running after `limit`: a hang anywhere in a
/// test (a lock that never returns) becomes a failure instead of a frozen CI job.
pub fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("watchdog: test process still running after {limit:?}; aborting");
        std::process::abort();
    });
}

/// A segment name no other test (or test run) uses.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "test-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where segment `name` is visible in the file system.
pub fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/shmkit-{name}"))
}

/// Fails if segment `name` still exists.
pub fn assert_gone(name: &str) {
    assert!(
        !shm_path(name).exists(),
        "segment {name} was left in /dev/shm"
    );
}

/// Removes `name` when dropped, for segments a test writes by hand.
pub struct Remove(pub String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(shm_path(&self.0));
    }
}

/// FNV-1a, the checksum the crash tests put in their items.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A crash test's item `seq` of producer `p`: `[p][seq: u32][filler bytes][fnv of the rest]`.
pub fn stamped(p: usize, seq: usize, filler: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + filler + 8);
    v.push(p as u8);
    v.extend_from_slice(&(seq as u32).to_le_bytes());
    v.extend((0..filler).map(|i| (i ^ seq) as u8));
    let sum = fnv(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

/// The (producer, seq) a [`stamped`] item claims, if its checksum holds; None if it is torn or
/// malformed. The caller checks the claim against the item it expects.
pub fn unstamp(v: &[u8]) -> Option<(usize, usize)> {
    let (body, sum) = v.split_at_checked(v.len().checked_sub(8)?)?;
    if fnv(body) != u64::from_le_bytes(sum.try_into().ok()?) || body.len() < 5 {
        return None;
    }
    Some((
        body[0] as usize,
        u32::from_le_bytes(body[1..5].try_into().ok()?) as usize,
    ))
}

/// A xorshift generator for random kill moments and victims, seeded from this process.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        Rng(0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id()))
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Starts a child of `test` in `role`, passing the segments `names` (variable, name) and its
/// `SLOT`.
pub fn spawn_slot(test: &str, role: &str, names: &[(&str, String)], slot: usize) -> Child {
    let slot = slot.to_string();
    let mut vars: Vec<(&str, &str)> = names.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.push(("SLOT", &slot));
    spawn(test, role, &vars)
}

/// The Redis server the tests use (`.ci/run` starts one and sets the variable).
pub fn redis_url() -> String {
    std::env::var("SHMKIT_REDIS_URL").expect("SHMKIT_REDIS_URL")
}

/// A free TCP port on 127.0.0.1 (for a server a test starts itself).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    // Below the kernel's ephemeral range (32768 up on Linux): an outgoing connection from a
    // parallel test cannot take the port while a server is down, and a probe cannot connect
    // to itself (a socket whose source port is the port probed connects to itself).
    let random = RandomState::new();
    for attempt in 0u32..1000 {
        let port = 20_000 + (random.hash_one(attempt) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000")
}

/// Starts `redis-server` on `port` (persistence off) and waits until it answers `PING`; the
/// caller kills it. For the tests that restart a server under a live handle.
pub fn start_redis(port: u16) -> Child {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (installed by .ci/run)");
    wait_until("redis-server answers PING", Duration::from_secs(20), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("redis-server on port {port} exited before it answered: {status}");
        }
        redis_answers(port)
    });
    child
}

/// Whether a Redis server on `port` answers `PING` with `+PONG`. A bare connect is not
/// enough: it may reach another listener, or the probe itself.
fn redis_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut reply = [0u8; 7];
    s.set_read_timeout(Some(Duration::from_millis(500))).is_ok()
        && s.write_all(b"PING\r\n").is_ok()
        && s.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// Declares tests that run only with the `redis` feature and a server (`SHMKIT_REDIS_URL`);
/// otherwise they are reported as ignored, never as passed. Each calls `with_redis::$body`.
#[allow(unused_macros)]
macro_rules! redis_tests {
    ($($name:ident => $body:ident),* $(,)?) => {$(
        #[test]
        #[cfg_attr(
            any(not(feature = "redis"), not(shmkit_redis)),
            ignore = "needs the redis feature and a server: SHMKIT_REDIS_URL (see .ci/run)"
        )]
        fn $name() {
            #[cfg(feature = "redis")]
            with_redis::$body();
        }
    )*};
}
