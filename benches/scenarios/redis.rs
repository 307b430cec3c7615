//! The Redis scenarios (feature `redis`, server at `SHMKIT_REDIS_URL`): each prints shmkit's
//! line and, beside it, the same work done with plain Redis commands through the `redis` crate
//! (`"system": "redis-raw"`), so the ratio is shmkit's overhead over Redis itself.
//!
//! - `redis_queue`: a producer process puts 64-byte items, the parent gets them one by one.
//!   shmkit: `RedisQueue::put` and `get` (a lease, acked at once). Raw: `XADD` and
//!   `XREADGROUP ... BLOCK` + `XACK`.
//! - `redis_pool_map`: `map(square, 0..N)` over 2 worker processes, 100 items a task. shmkit:
//!   `RedisPool::map` with `Worker`s. Raw: the parent `XADD`s the chunks (postcard `Vec<u64>`),
//!   workers `XREADGROUP`, square, `XADD` the result to a reply stream and `XACK`; the parent
//!   `XREAD`s the replies and puts them in order.

use std::time::{Duration, Instant};

use redis::{Commands, Connection, Value};
use shmkit::redis::{POOL_ENV, RedisPool, RedisQueue, WORKER_ENV};

use super::{Res, child, join, n, report, report_as, var};

fn url() -> Res<String> {
    std::env::var("SHMKIT_REDIS_URL")
        .map_err(|_| "the redis scenarios need a server: set SHMKIT_REDIS_URL".into())
}

fn conn() -> Res<Connection> {
    Ok(redis::Client::open(url()?)?.get_connection()?)
}

fn unique(tag: &str) -> String {
    format!(
        "bench-{tag}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    )
}

#[shmkit::task]
fn square(x: u64) -> u64 {
    x * x
}

/// Items per task in `redis_pool_map`: 2,000 tasks for 200,000 items, so the messaging, not
/// the squaring, is measured.
const CHUNK: u64 = 100;

/// Rounds: raw and shmkit alternate, so a drift of the machine hits both.
fn rounds() -> usize {
    if std::env::var_os("QUICK").is_some() {
        1
    } else {
        3
    }
}

pub fn redis_queue() -> Res<()> {
    let count = n(20_000);
    for _ in 0..rounds() {
        queue_raw(count)?;
        queue_shmkit(count)?;
    }
    Ok(())
}

fn queue_shmkit(count: usize) -> Res<()> {
    let name = unique("q");
    let q = RedisQueue::<Vec<u8>>::connect(&url()?, &name)?;
    let t0 = Instant::now();
    let producer = child(
        "redis_produce",
        &[("QUEUE", &name), ("COUNT", &count.to_string())],
    )?;
    let mut total = 0;
    for _ in 0..count {
        total += q.get_timeout(Duration::from_secs(30))?.len();
    }
    let secs = t0.elapsed().as_secs_f64();
    join(producer)?;
    if total != 64 * count {
        return Err(format!("redis_queue: {total} bytes").into());
    }
    report("redis_queue", count, secs, total);
    let _: () = conn()?.del(format!("shmkit:q:{name}"))?;
    Ok(())
}

pub fn produce_child() -> Res<()> {
    let q = RedisQueue::<Vec<u8>>::connect(&url()?, &var("QUEUE")?)?;
    for _ in 0..var("COUNT")?.parse::<usize>()? {
        q.put(vec![b'x'; 64]).map_err(shmkit::Error::from)?;
    }
    Ok(())
}

fn queue_raw(count: usize) -> Res<()> {
    let stream = unique("raw-q");
    let mut c = conn()?;
    let _: Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut c)?;
    let t0 = Instant::now();
    let producer = child(
        "redis_raw_produce",
        &[("STREAM", &stream), ("COUNT", &count.to_string())],
    )?;
    let mut total = 0;
    let mut got = 0;
    while got < count {
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(30_000)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query(&mut c)?;
        for (id, bytes) in entries(&reply) {
            let _: i64 = redis::cmd("XACK")
                .arg(&stream)
                .arg("g")
                .arg(&id)
                .query(&mut c)?;
            total += bytes.len();
            got += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    join(producer)?;
    if total != 64 * count {
        return Err(format!("redis_queue raw: {total} bytes").into());
    }
    report_raw("redis_queue", count, secs, total);
    let _: () = c.del(&stream)?;
    Ok(())
}

pub fn raw_produce_child() -> Res<()> {
    let mut c = conn()?;
    let stream = var("STREAM")?;
    for _ in 0..var("COUNT")?.parse::<usize>()? {
        let _: String = c.xadd(&stream, "*", &[("d", &[b'x'; 64][..])])?;
    }
    Ok(())
}

pub fn redis_pool_map() -> Res<()> {
    let count = n(200_000) as u64;
    for _ in 0..rounds() {
        pool_raw(count)?;
        pool_shmkit(count)?;
    }
    Ok(())
}

fn pool_shmkit(count: u64) -> Res<()> {
    let name = unique("pool");
    let url = url()?;
    let workers = (0..2)
        .map(|_| {
            child(
                "worker",
                &[(WORKER_ENV, url.as_str()), (POOL_ENV, name.as_str())],
            )
        })
        .collect::<Res<Vec<_>>>()?;
    let pool = RedisPool::connect(&url, &name)?.chunksize(CHUNK as usize);
    pool.map(square, 0..10u64)?; // workers up
    let t0 = Instant::now();
    let out = pool.map(square, 0..count)?;
    let secs = t0.elapsed().as_secs_f64();
    if out.len() as u64 != count || out.iter().enumerate().any(|(i, &v)| v != (i * i) as u64) {
        return Err("redis_pool_map: wrong results".into());
    }
    report("redis_pool_map", count as usize, secs, 0);
    for mut w in workers {
        w.kill()?;
        w.wait()?;
    }
    drop(pool);
    let _: () = conn()?.del(format!("shmkit:q:pool:{name}"))?;
    Ok(())
}

fn pool_raw(count: u64) -> Res<()> {
    let tasks = unique("raw-tasks");
    let replies = format!("{tasks}:replies");
    let mut c = conn()?;
    let _: Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&tasks)
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut c)?;
    let workers = (0..2)
        .map(|i| {
            child(
                "redis_raw_worker",
                &[("TASKS", tasks.as_str()), ("NAME", &i.to_string())],
            )
        })
        .collect::<Res<Vec<_>>>()?;
    let mut last = "0-0".to_owned();
    let mut map = |c: &mut Connection, items: u64| -> Res<Vec<u64>> {
        let size = CHUNK;
        let chunks: Vec<Vec<u64>> = (0..items)
            .collect::<Vec<_>>()
            .chunks(size as usize)
            .map(<[u64]>::to_vec)
            .collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let bytes = postcard::to_allocvec(&(i as u32, chunk))?;
            let _: String = c.xadd(&tasks, "*", &[("d", bytes)])?;
        }
        let mut out: Vec<Option<Vec<u64>>> = vec![None; chunks.len()];
        let mut left = chunks.len();
        while left > 0 {
            let reply: Value = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(512)
                .arg("BLOCK")
                .arg(30_000)
                .arg("STREAMS")
                .arg(&replies)
                .arg(&last)
                .query(c)?;
            for (id, bytes) in entries(&reply) {
                let (i, values): (u32, Vec<u64>) = postcard::from_bytes(&bytes)?;
                out[i as usize] = Some(values);
                left -= 1;
                last = id;
            }
        }
        Ok(out.into_iter().flatten().flatten().collect())
    };
    map(&mut c, 10)?; // workers up
    let t0 = Instant::now();
    let out = map(&mut c, count)?;
    let secs = t0.elapsed().as_secs_f64();
    if out.len() as u64 != count || out.iter().enumerate().any(|(i, &v)| v != (i * i) as u64) {
        return Err("redis_pool_map raw: wrong results".into());
    }
    report_raw("redis_pool_map", count as usize, secs, 0);
    for mut w in workers {
        w.kill()?;
        w.wait()?;
    }
    let _: () = c.del(&[&tasks, &replies])?;
    Ok(())
}

pub fn raw_worker_child() -> Res<()> {
    let mut c = conn()?;
    let tasks = var("TASKS")?;
    let replies = format!("{tasks}:replies");
    let me = var("NAME")?;
    loop {
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg(&me)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(&tasks)
            .arg(">")
            .query(&mut c)?;
        for (id, bytes) in entries(&reply) {
            let (i, chunk): (u32, Vec<u64>) = postcard::from_bytes(&bytes)?;
            let squares: Vec<u64> = chunk.iter().map(|&x| square(x)).collect();
            let out = postcard::to_allocvec(&(i, squares))?;
            let _: String = c.xadd(&replies, "*", &[("d", out)])?;
            let _: i64 = redis::cmd("XACK")
                .arg(&tasks)
                .arg("g")
                .arg(&id)
                .query(&mut c)?;
        }
    }
}

/// `(id, field d)` of each entry of an `XREAD`/`XREADGROUP` reply.
fn entries(v: &Value) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Value::Array(streams) = v else {
        return out;
    };
    for s in streams {
        let Value::Array(parts) = s else { continue };
        let Some(Value::Array(list)) = parts.get(1) else {
            continue;
        };
        for e in list {
            let Value::Array(e) = e else { continue };
            let (Some(Value::BulkString(id)), Some(Value::Array(fields))) = (e.first(), e.get(1))
            else {
                continue;
            };
            if let [Value::BulkString(_), Value::BulkString(d), ..] = fields.as_slice() {
                out.push((String::from_utf8_lossy(id).into_owned(), d.clone()));
            }
        }
    }
    out
}

fn report_raw(scenario: &str, ops: usize, secs: f64, bytes: usize) {
    report_as("redis-raw", scenario, ops, secs, bytes);
}
