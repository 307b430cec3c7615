//! `RedisQueue` against a real Redis server (`SHMKIT_REDIS_URL`, which `.ci/run` sets after
//! starting one). Without the `redis` feature or the variable, these tests are reported as
//! ignored. Processes stand for hosts: a consumer SIGKILLed holding a lease has its entry
//! taken over after the lease time.

#![cfg_attr(not(feature = "redis"), allow(unused))]

#[macro_use]
mod common;

use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[cfg(feature = "redis")]
mod with_redis {
    use super::*;
    use common::{arg, role, spawn, wait, wait_until, watchdog};
    use shmkit::redis::{RedisOptions, RedisQueue};
    use shmkit::{AckError, Error, GetTimeoutError, PutError, RawValue, TryGetError};

    use common::redis_url as url;

    /// A queue name no other test (or run) uses.
    pub fn fresh(tag: &str) -> String {
        common::unique(tag)
    }

    fn opts(lease_ms: u64, max: Option<u32>) -> RedisOptions {
        let mut o = RedisOptions::default();
        o.lease = Duration::from_millis(lease_ms);
        o.max_deliveries = max;
        o
    }

    pub fn put_get_and_leases() {
        let q = RedisQueue::<(String, u32)>::connect(&url(), &fresh("basic")).unwrap();
        assert!(q.is_empty().unwrap());
        q.put(("a".into(), 1)).unwrap();
        q.put(("b".into(), 2)).unwrap();
        assert_eq!(q.len().unwrap(), 2);
        assert_eq!(q.get_timeout(T).unwrap(), ("a".into(), 1));
        let lease = q.get_leased_timeout(T).unwrap();
        assert_eq!((lease.1, lease.deliveries()), (2, 1));
        assert_eq!(lease.ack().unwrap(), ("b".into(), 2));
        assert!(matches!(q.try_get(), Err(TryGetError::Empty)));
        assert!(matches!(
            q.get_timeout(Duration::from_millis(100)),
            Err(GetTimeoutError::Timeout)
        ));
        assert_eq!(q.len().unwrap(), 0, "acked entries leave the stream");
    }

    pub fn release_and_drop_hand_back_at_once_and_renew_keeps() {
        let name = fresh("release");
        let q = RedisQueue::<u32>::with_options(&url(), &name, opts(60_000, Some(20))).unwrap();
        let other = q.try_clone().unwrap();
        q.put(7).unwrap();
        let lease = q.get_leased_timeout(T).unwrap();
        lease.renew().unwrap();
        assert!(matches!(other.try_get_leased(), Err(TryGetError::Empty)));
        lease.release().unwrap();
        let again = other.get_leased_timeout(T).unwrap();
        assert_eq!((*again, again.deliveries()), (7, 2));
        drop(again);
        let third = q.get_leased_timeout(T).unwrap();
        assert_eq!(third.deliveries(), 3);
        third.ack().unwrap();
    }

    pub fn a_poison_entry_goes_to_the_dead_letter_stream() {
        let name = fresh("poison");
        let q = RedisQueue::<u32>::with_options(&url(), &name, opts(60_000, Some(2))).unwrap();
        q.put(1).unwrap();
        q.put(2).unwrap();
        for n in 1..=2 {
            let l = q.get_leased_timeout(T).unwrap();
            assert_eq!((*l, l.deliveries()), (1, n));
            l.release().unwrap();
        }
        // Delivered twice: the next get moves it aside and takes 2.
        assert_eq!(q.get_timeout(T).unwrap(), 2);
        let dead = q.dead_letters().unwrap();
        assert_eq!(dead.get_timeout(T).unwrap(), 1);
    }

    pub fn oversize_and_hostile_entries_are_errors() {
        let name = fresh("hostile");
        let mut o = opts(60_000, Some(20));
        o.max_size = 1000;
        let q = RedisQueue::<Vec<u8>>::with_options(&url(), &name, o).unwrap();
        match q.put(vec![0; 5000]) {
            Err(PutError::Failed {
                error: Error::InvalidArgument { .. },
                item,
            }) => assert_eq!(item.len(), 5000),
            other => panic!("{other:?}"),
        }
        assert_eq!(q.len().unwrap(), 0, "nothing was sent");
        // Entries another client wrote: wrong fields, and bytes that are not a Vec<u8>.
        let client = redis::Client::open(url()).unwrap();
        let mut c = client.get_connection().unwrap();
        let stream = format!("shmkit:q:{name}");
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("x")
            .arg("y")
            .arg("z")
            .arg("w")
            .query(&mut c)
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("d")
            .arg(&[0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff][..])
            .query(&mut c)
            .unwrap();
        q.put(vec![1, 2, 3]).unwrap();
        assert!(matches!(
            q.get_timeout(T),
            Err(GetTimeoutError::Deserialize(_))
        ));
        assert!(matches!(
            q.get_timeout(T),
            Err(GetTimeoutError::Deserialize(_))
        ));
        assert_eq!(q.get_timeout(T).unwrap(), vec![1, 2, 3]);
        assert_eq!(q.dead_letters().unwrap().len().unwrap(), 2);
    }

    pub fn a_lease_is_renewed_while_its_holder_works() {
        let name = fresh("renewed");
        let q = RedisQueue::<u32>::with_options(&url(), &name, opts(300, Some(20))).unwrap();
        let other = q.try_clone().unwrap();
        q.put(9).unwrap();
        let working = q.get_leased_timeout(T).unwrap();
        // Three lease times later, the holder still has it: no one else can take it.
        for _ in 0..9 {
            std::thread::sleep(Duration::from_millis(100));
            assert!(matches!(other.try_get_leased(), Err(TryGetError::Empty)));
        }
        assert_eq!(working.ack().unwrap(), 9);
        assert_eq!(q.len().unwrap(), 0);
    }

    pub fn ack_after_a_take_over_is_lost() {
        let name = fresh("lost");
        let mut o = opts(200, Some(20));
        o.auto_renew = false; // a holder that stalls without renewing
        let q = RedisQueue::<u32>::with_options(&url(), &name, o).unwrap();
        let other = q.try_clone().unwrap();
        q.put(5).unwrap();
        let slow = q.get_leased_timeout(T).unwrap();
        std::thread::sleep(Duration::from_millis(400)); // the lease runs out
        let taken = other.get_leased_timeout(T).unwrap();
        assert_eq!(taken.deliveries(), 2);
        taken.ack().unwrap();
        assert!(matches!(slow.ack(), Err(AckError::Lost)));
    }

    pub fn server_restart() {
        let port = common::free_port();
        let start = || common::start_redis(port);
        let mut server = start();
        let url = format!("redis://127.0.0.1:{port}/");
        let mut o = opts(60_000, Some(20));
        o.io_timeout = Duration::from_secs(2);
        let q = RedisQueue::<u32>::with_options(&url, "restart", o).unwrap();
        q.put(1).unwrap();
        server.kill().unwrap();
        server.wait().unwrap();
        let began = std::time::Instant::now();
        assert!(matches!(q.get_timeout(T), Err(GetTimeoutError::Failed(_))));
        assert!(matches!(q.put(2), Err(PutError::Failed { .. })));
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "an error, not a hang"
        );
        // Back (empty: persistence is off): the handle connects again and recreates its group.
        let mut server = start();
        q.put(3).unwrap();
        assert_eq!(q.get_timeout(T).unwrap(), 3);
        server.kill().unwrap();
        server.wait().unwrap();
    }

    pub const KILLED: &str = "a_consumer_killed_holding_a_lease_is_taken_over_after_the_lease_time";

    pub fn a_consumer_killed_holding_a_lease_is_taken_over() {
        watchdog(Duration::from_secs(60));
        if role().as_deref() == Some("consumer") {
            let q = RedisQueue::<String>::with_options(&url(), &arg("QUEUE"), opts(500, Some(20)))
                .unwrap();
            let flag = RawValue::<u32>::open(&arg("FLAG")).unwrap();
            let lease = q.get_leased_timeout(T).unwrap();
            assert_eq!(lease.as_str(), "job");
            flag.set(1);
            std::thread::sleep(Duration::from_secs(60));
            unreachable!("killed before");
        }
        let name = fresh("killed");
        let q = RedisQueue::<String>::with_options(&url(), &name, opts(500, Some(20))).unwrap();
        let flag = RawValue::<u32>::new(0).unwrap();
        q.put("job".into()).unwrap();
        let mut child = spawn(
            KILLED,
            "consumer",
            &[("QUEUE", &name), ("FLAG", flag.name())],
        );
        wait_until("the child holds the lease", T, || flag.get() == 1);
        child.kill().unwrap();
        wait(&mut child, T);
        let lease = q.get_leased_timeout(T).unwrap();
        assert_eq!((lease.as_str(), lease.deliveries()), ("job", 2));
        lease.ack().unwrap();
    }
}

redis_tests! {
    put_get_and_leases => put_get_and_leases,
    release_and_drop_hand_back_at_once_and_renew_keeps => release_and_drop_hand_back_at_once_and_renew_keeps,
    a_poison_entry_goes_to_the_dead_letter_stream => a_poison_entry_goes_to_the_dead_letter_stream,
    oversize_and_hostile_entries_are_errors => oversize_and_hostile_entries_are_errors,
    a_lease_is_renewed_while_its_holder_works => a_lease_is_renewed_while_its_holder_works,
    ack_after_a_take_over_is_lost => ack_after_a_take_over_is_lost,
    a_consumer_killed_holding_a_lease_is_taken_over_after_the_lease_time => a_consumer_killed_holding_a_lease_is_taken_over,
    a_server_restart_is_an_error_then_a_reconnect_not_a_hang => server_restart,
}
