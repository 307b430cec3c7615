//! shmkit's benchmark scenarios: the same work as `../shared/peers/python_mp.py`, one JSON line
//! per scenario in its schema. Run `cargo bench --bench scenarios -- NAME...` (no names: all);
//! `QUICK=1` does a tenth of the work. Child processes are this binary started again with
//! `SHMKIT_BENCH_ROLE` set. Every scenario checks its result, so a fast wrong answer fails.

use std::process::{Child, Command};
use std::time::Instant;

use shmkit::{Array, Connection, Dict, List, Pipe, Queue, Value};

#[cfg(feature = "redis")]
#[path = "scenarios/redis.rs"]
mod redis_scenarios;

const ROLE: &str = "SHMKIT_BENCH_ROLE";
const IMPLEMENTED: &[&str] = &[
    "queue_small",
    "queue_large",
    "queue_mpmc",
    "queue_mpmc8",
    "pingpong",
    "value_incr",
    "array_fill",
    "pipe_small",
    "lock_uncontended",
    "pool_map",
    "pool_apply_async",
    "dict_ops",
    "list_append",
    "queue_small_many",
    "queue_records",
    "queue_large_in_place",
];
/// The Redis scenarios: built with the `redis` feature, run against `SHMKIT_REDIS_URL`.
const REDIS: &[&str] = &["redis_queue", "redis_pool_map"];
type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn n(x: usize) -> usize {
    if std::env::var_os("QUICK").is_some() {
        (x / 10).max(1)
    } else {
        x
    }
}

fn report(scenario: &str, ops: usize, secs: f64, bytes: usize) {
    report_as("shmkit", scenario, ops, secs, bytes);
}

/// One JSON line for `system` (the Redis scenarios also print `redis-raw`).
fn report_as(system: &str, scenario: &str, ops: usize, secs: f64, bytes: usize) {
    let mb = if bytes > 0 {
        format!("{:.1}", bytes as f64 / secs / 1e6)
    } else {
        "null".into()
    };
    println!(
        "{{\"system\": \"{system}\", \"scenario\": \"{scenario}\", \"ops\": {ops}, \"secs\": {secs:.6}, \"ops_per_s\": {:.1}, \"mb_per_s\": {mb}}}",
        ops as f64 / secs
    );
}

fn child(role: &str, vars: &[(&str, &str)]) -> Res<Child> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.env(ROLE, role);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    Ok(cmd.spawn()?)
}

fn join(mut c: Child) -> Res<()> {
    let status = c.wait()?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }
    Ok(())
}

fn var(k: &str) -> Res<String> {
    std::env::var(k).map_err(|_| format!("missing {k}").into())
}

/// A child puts `count` messages of `size` bytes (the same bytes each time, as Python's
/// `b"x" * size`), with the one-copy byte path.
fn produce_child() -> Res<()> {
    let q = Queue::<Vec<u8>>::open(&var("QUEUE")?)?;
    let (count, size): (usize, usize) = (var("COUNT")?.parse()?, var("SIZE")?.parse()?);
    let msg = vec![b'x'; size];
    for _ in 0..count {
        q.put_bytes(&msg).map_err(shmkit::Error::from)?;
    }
    Ok(())
}

/// A child gets `count` messages and adds their lengths into its slot of `SUMS`.
fn consume_child() -> Res<()> {
    let q = Queue::<Vec<u8>>::open(&var("QUEUE")?)?;
    let sums = Array::<u64>::open(&var("SUMS")?)?;
    let (count, slot): (usize, usize) = (var("COUNT")?.parse()?, var("SLOT")?.parse()?);
    let mut buf = Vec::new();
    let mut total = 0u64;
    for _ in 0..count {
        total += q.get_bytes_into(&mut buf)? as u64;
    }
    sums.set(slot, total)?;
    Ok(())
}

/// One producer child, the parent consuming: `queue_small` and `queue_large`.
fn queue_one_to_one(
    name: &str,
    count: usize,
    size: usize,
    maxsize: usize,
    capacity: usize,
) -> Res<()> {
    let q = Queue::<Vec<u8>>::with_capacity(maxsize, capacity)?;
    let (count_s, size_s) = (count.to_string(), size.to_string());
    let t0 = Instant::now();
    let kid = child(
        "produce",
        &[("QUEUE", q.name()), ("COUNT", &count_s), ("SIZE", &size_s)],
    )?;
    let mut buf = Vec::new();
    let mut got = 0usize;
    for _ in 0..count {
        got += q.get_bytes_into(&mut buf)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    join(kid)?;
    if got != count * size || buf.last() != Some(&b'x') {
        return Err(format!("{name}: got {got} bytes").into());
    }
    report(name, count, secs, got);
    Ok(())
}

/// 1 producer process -> parent, 64-byte messages, maxsize 1024.
fn queue_small() -> Res<()> {
    queue_one_to_one(
        "queue_small",
        n(2_000_000),
        64,
        1024,
        shmkit::queue::DEFAULT_CAPACITY,
    )
}

/// 1 producer process -> parent, 1 MiB messages, maxsize 8. The ring holds the 8 items (and
/// the padding a wrap can cost), as the C reference's 8 slots of 1 MiB do. As many items as
/// the C reference and the Rust peers move, so that starting the producer process (and its
/// first pass over fresh ring pages) weighs as much in each system's time.
fn queue_large() -> Res<()> {
    queue_one_to_one("queue_large", n(LARGE_ITEMS), 1 << 20, 8, 10 << 20)
}

/// Items of `queue_large` and `queue_large_in_place`: the C reference's count.
const LARGE_ITEMS: usize = 5_000;

/// The producer side of `queue_large_in_place`: each item copied once, into the ring.
fn produce_in_place_child() -> Res<()> {
    let q = Queue::<Vec<u8>>::open(&var("QUEUE")?)?;
    let (count, size): (usize, usize) = (var("COUNT")?.parse()?, var("SIZE")?.parse()?);
    let msg = vec![b'x'; size];
    for _ in 0..count {
        q.put_with(size, |buf| buf.copy_from_slice(&msg))
            .map_err(shmkit::Error::from)?;
    }
    Ok(())
}

/// Not a Python scenario: `queue_large` through the zero-copy calls, the work iceoryx2's peer
/// does (`rust_peers`): the producer copies each 1 MiB item into the ring once (`put_with`),
/// the parent reads its length and last byte in place (`get_with`).
fn queue_large_in_place() -> Res<()> {
    let (count, size) = (n(LARGE_ITEMS), 1usize << 20);
    let q = Queue::<Vec<u8>>::with_capacity(8, 10 << 20)?;
    let (count_s, size_s) = (count.to_string(), size.to_string());
    let t0 = Instant::now();
    let kid = child(
        "produce_in_place",
        &[("QUEUE", q.name()), ("COUNT", &count_s), ("SIZE", &size_s)],
    )?;
    let mut got = 0usize;
    for _ in 0..count {
        let (len, last) = q.get_with(|b| (b.len(), b.last().copied()))?;
        if last != Some(b'x') {
            return Err("queue_large_in_place: wrong item".into());
        }
        got += len;
    }
    let secs = t0.elapsed().as_secs_f64();
    join(kid)?;
    if got != count * size {
        return Err(format!("queue_large_in_place: got {got} bytes").into());
    }
    report("queue_large_in_place", count, secs, got);
    Ok(())
}

/// 2 producer processes -> 2 consumer processes, 64-byte messages, maxsize 1024; timed from the
/// first start to the last exit, as the C reference does.
fn queue_mpmc() -> Res<()> {
    queue_many("queue_mpmc", 2, n(2_000_000))
}

/// Not a Python scenario: 8 producers -> 8 consumers on however few cores there are, to show
/// that waiting (a short spin, then a futex sleep) does not collapse when processes outnumber
/// cores.
fn queue_mpmc8() -> Res<()> {
    queue_many("queue_mpmc8", 8, n(2_000_000))
}

/// `procs` producer processes -> `procs` consumer processes, `total` 64-byte messages.
fn queue_many(name: &str, procs: usize, total: usize) -> Res<()> {
    let per = total / procs;
    let q = Queue::<Vec<u8>>::new(1024)?;
    let sums = Array::<u64>::new(procs)?;
    let per_s = per.to_string();
    let t0 = Instant::now();
    let mut kids = Vec::new();
    for slot in 0..procs {
        let slot = slot.to_string();
        kids.push(child(
            "consume",
            &[
                ("QUEUE", q.name()),
                ("SUMS", sums.name()),
                ("COUNT", &per_s),
                ("SLOT", &slot),
            ],
        )?);
    }
    for _ in 0..procs {
        kids.push(child(
            "produce",
            &[("QUEUE", q.name()), ("COUNT", &per_s), ("SIZE", "64")],
        )?);
    }
    for k in kids {
        join(k)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let got: u64 = sums.to_vec()?.iter().sum();
    if got != (procs * per) as u64 * 64 {
        return Err(format!("{name}: got {got} bytes").into());
    }
    report(name, procs * per, secs, got as usize);
    Ok(())
}

/// The child side of `pingpong`: echo every message from A to B.
fn echo_child() -> Res<()> {
    let (a, b) = (
        Queue::<Vec<u8>>::open(&var("A")?)?,
        Queue::<Vec<u8>>::open(&var("B")?)?,
    );
    let count: usize = var("COUNT")?.parse()?;
    let mut buf = Vec::new();
    for _ in 0..count {
        a.get_bytes_into(&mut buf)?;
        b.put_bytes(&buf).map_err(shmkit::Error::from)?;
    }
    Ok(())
}

/// Parent <-> child round trips of an 8-byte message over two queues.
fn pingpong() -> Res<()> {
    let count = n(200_000);
    let (a, b) = (Queue::<Vec<u8>>::new(0)?, Queue::<Vec<u8>>::new(0)?);
    let count_s = count.to_string();
    let kid = child(
        "echo",
        &[("A", a.name()), ("B", b.name()), ("COUNT", &count_s)],
    )?;
    let mut buf = Vec::new();
    a.put_bytes(b"warmup!!").map_err(shmkit::Error::from)?;
    b.get_bytes_into(&mut buf)?;
    let t0 = Instant::now();
    for i in 1..count {
        a.put_bytes(&(i as u64).to_le_bytes())
            .map_err(shmkit::Error::from)?;
        b.get_bytes_into(&mut buf)?;
        if buf[..] != (i as u64).to_le_bytes() {
            return Err("pingpong: wrong echo".into());
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    join(kid)?;
    report("pingpong", count - 1, secs, 0);
    Ok(())
}

/// A child sends `count` 64-byte messages on its end of a one-way pipe, then closes it.
fn pipe_send_child() -> Res<()> {
    let conn: Connection = serde_json::from_str(&var("CONN")?)?;
    let count: usize = var("COUNT")?.parse()?;
    let msg = [b'x'; 64];
    for _ in 0..count {
        conn.send_bytes(&msg)?;
    }
    conn.close();
    Ok(())
}

/// `Pipe(duplex=False)`: a child sends 64-byte messages, the parent receives them.
fn pipe_small() -> Res<()> {
    let count = n(2_000_000);
    let (r, w) = Pipe::<Vec<u8>>::simplex()?;
    let (end, count_s) = (serde_json::to_string(&w)?, count.to_string());
    let t0 = Instant::now();
    let kid = child("pipe_send", &[("CONN", &end), ("COUNT", &count_s)])?;
    let mut buf = Vec::new();
    let mut got = 0;
    for _ in 0..count {
        got += r.recv_bytes_into(&mut buf)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    join(kid)?;
    if got != count * 64 || !matches!(r.recv_bytes_into(&mut buf), Err(shmkit::RecvError::Eof)) {
        return Err(format!("pipe_small: got {got} bytes, then no end-of-file").into());
    }
    drop(w);
    report("pipe_small", count, secs, got);
    Ok(())
}

/// 2 processes each add 1.0 to one shared `Value<f64>` under its lock.
fn value_incr() -> Res<()> {
    // Python does 200,000 per process, the C reference 5,000,000; we do 2,000,000 so that
    // process start-up (a re-exec, not a fork) does not dominate the measurement.
    let per = n(2_000_000);
    let v = Value::new(0.0f64)?;
    let per_s = per.to_string();
    let t0 = Instant::now();
    let kids = (0..2)
        .map(|_| child("incr", &[("VALUE", v.name()), ("COUNT", &per_s)]))
        .collect::<Res<Vec<_>>>()?;
    for k in kids {
        join(k)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let total = v.get()?;
    if total != 2.0 * per as f64 {
        return Err(format!("value_incr: lost increments ({total})").into());
    }
    report("value_incr", 2 * per, secs, 0);
    Ok(())
}

fn incr_child() -> Res<()> {
    let v = Value::<f64>::open(&var("VALUE")?)?;
    let count: usize = var("COUNT")?.parse()?;
    for _ in 0..count {
        v.update(|x| *x += 1.0)?;
    }
    Ok(())
}

/// One process: lock, `+= 1.0`, unlock on a `Value<f64>`, nobody else around. Not a Python
/// scenario: it is the number to set beside `benches/c/robust_mutex.c`'s single-process line.
fn lock_uncontended() -> Res<()> {
    let count = n(20_000_000);
    let v = Value::new(0.0f64)?;
    let t0 = Instant::now();
    for _ in 0..count {
        v.update(|x| *x += 1.0)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    if v.get()? != count as f64 {
        return Err("lock_uncontended: lost increments".into());
    }
    report("lock_uncontended", count, secs, 0);
    Ok(())
}

/// A child writes every element of an `Array<i32>` of 2^20 under the lock; the parent sums it.
fn array_fill() -> Res<()> {
    let size = 1usize << 20;
    let a = Array::<i32>::new(size)?;
    let t0 = Instant::now();
    join(child("fill", &[("ARRAY", a.name())])?)?;
    let total: i64 = a
        .lock()
        .map_err(shmkit::Error::from)?
        .iter()
        .map(|&x| i64::from(x))
        .sum();
    let secs = t0.elapsed().as_secs_f64();
    if total != (size as i64) * (size as i64 - 1) / 2 {
        return Err("array_fill: wrong sum".into());
    }
    report("array_fill", size, secs, size * 4);
    Ok(())
}

fn fill_child() -> Res<()> {
    let a = Array::<i32>::open(&var("ARRAY")?)?;
    let mut g = a.lock().map_err(shmkit::Error::from)?;
    for (i, x) in g.iter_mut().enumerate() {
        *x = i as i32;
    }
    Ok(())
}

fn square(x: u64) -> u64 {
    x * x
}

/// `Pool(2).map(square, range(N))` with the default chunk size, workers already started.
fn pool_map() -> Res<()> {
    let count = n(200_000) as u64;
    let pool = shmkit::Pool::new(2)?;
    pool.map(square, 0..10u64)?; // workers started
    let t0 = Instant::now();
    let out = pool.map(square, 0..count)?;
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(out.len() as u64, count);
    assert_eq!(out[out.len() - 1], (count - 1) * (count - 1));
    report("pool_map", count as usize, secs, 0);
    Ok(())
}

/// `Pool(2).apply_async(square, (i,))` for N tasks, then `get()` each.
fn pool_apply_async() -> Res<()> {
    let count = n(20_000) as u64;
    let pool = shmkit::Pool::new(2)?;
    pool.map(square, 0..10u64)?;
    let t0 = Instant::now();
    let results: Vec<_> = (0..count).map(|i| pool.apply_async(square, i)).collect();
    let mut total = 0u64;
    for r in &results {
        total += r.get()?;
    }
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(total, (0..count).map(|i| i * i).sum::<u64>());
    report("pool_apply_async", count as usize, secs, 0);
    Ok(())
}

/// A child puts `COUNT` 64-byte messages with `put_many`, 64 at a time.
fn produce_many_child() -> Res<()> {
    let q = Queue::<Vec<u8>>::open(&var("QUEUE")?)?;
    let count: usize = var("COUNT")?.parse()?;
    let batch = vec![vec![b'x'; 64]; 64];
    for _ in 0..count / 64 {
        q.put_many(&batch)?;
    }
    Ok(())
}

/// Not a Python scenario: `queue_small` with batches on both sides (`put_many` of 64,
/// `get_many` of up to 64), as faster-fifo offers Python users.
fn queue_small_many() -> Res<()> {
    let count = n(2_000_000) / 64 * 64;
    let q = Queue::<Vec<u8>>::new(1024)?;
    let count_s = count.to_string();
    let t0 = Instant::now();
    let kid = child("produce_many", &[("QUEUE", q.name()), ("COUNT", &count_s)])?;
    let (mut got, mut bytes) = (0, 0);
    while got < count {
        for item in q.get_many(64)? {
            bytes += item.len();
            got += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    join(kid)?;
    if bytes != count * 64 {
        return Err(format!("queue_small_many: got {bytes} bytes").into());
    }
    report("queue_small_many", count, secs, bytes);
    Ok(())
}

/// A record as a Python user would put it: `(id, score, label)`, about 30 bytes serialised.
type Record = (u64, f64, String);

fn record(i: u64) -> Record {
    (i, i as f64 * 0.5, format!("record-{i:010}"))
}

fn produce_records_child() -> Res<()> {
    let q = Queue::<Record>::open(&var("QUEUE")?)?;
    let count: u64 = var("COUNT")?.parse()?;
    for i in 0..count {
        q.put(record(i))?;
    }
    Ok(())
}

/// Not a Python scenario: `queue_small` with serde records instead of byte strings, which a
/// put serialises straight into the ring and a get deserialises straight out of it.
fn queue_records() -> Res<()> {
    let count = n(2_000_000) as u64;
    let q = Queue::<Record>::new(1024)?;
    let count_s = count.to_string();
    let t0 = Instant::now();
    let kid = child(
        "produce_records",
        &[("QUEUE", q.name()), ("COUNT", &count_s)],
    )?;
    let mut ids = 0u64;
    let mut last = None;
    for _ in 0..count {
        let r = q.get()?;
        ids += r.0;
        last = Some(r);
    }
    let secs = t0.elapsed().as_secs_f64();
    join(kid)?;
    if ids != count * (count - 1) / 2 || last != Some(record(count - 1)) {
        return Err(format!("queue_records: ids summed to {ids}").into());
    }
    report("queue_records", count as usize, secs, 0);
    Ok(())
}

/// The child side of `dict_ops`: `COUNT / 2` rounds of `d[k] = i` and `d[k]`, with `k` one of
/// 1,000 string keys (Python's `_dict_worker`).
fn dict_child() -> Res<()> {
    let d = Dict::<String, u64>::open(&var("DICT")?)?;
    let count: usize = var("COUNT")?.parse()?;
    let keys: Vec<String> = (0..1000).map(|i| format!("key-{i}")).collect();
    let mut total = 0;
    for i in 0..count / 2 {
        let k = &keys[i % 1000];
        d.insert(k.clone(), i as u64)?;
        total += usize::from(d.get(k)?.is_some());
    }
    if total != count / 2 {
        return Err(format!("dict_ops: {total} of {} gets found their key", count / 2).into());
    }
    Ok(())
}

/// Manager().dict(): 2 processes each do `count` operations (half sets, half gets).
fn dict_ops() -> Res<()> {
    let count = n(40_000);
    let d = Dict::<String, u64>::new()?;
    let count_s = count.to_string();
    let t0 = Instant::now();
    let kids = (0..2)
        .map(|_| child("dict_worker", &[("DICT", d.name()), ("COUNT", &count_s)]))
        .collect::<Res<Vec<_>>>()?;
    for k in kids {
        join(k)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    if d.len()? != 1000 {
        return Err(format!("dict_ops: {} keys", d.len()?).into());
    }
    report("dict_ops", 2 * count, secs, 0);
    Ok(())
}

/// The child side of `list_append`: appends 0..COUNT.
fn list_child() -> Res<()> {
    let l = List::<u64>::open(&var("LIST")?)?;
    let count: u64 = var("COUNT")?.parse()?;
    for i in 0..count {
        l.push(i)?;
    }
    Ok(())
}

/// Manager().list(): 2 processes each append `count` ints; the parent checks length and sum.
fn list_append() -> Res<()> {
    let count = n(20_000);
    let l = List::<u64>::new()?;
    let count_s = count.to_string();
    let t0 = Instant::now();
    let kids = (0..2)
        .map(|_| child("list_worker", &[("LIST", l.name()), ("COUNT", &count_s)]))
        .collect::<Res<Vec<_>>>()?;
    for k in kids {
        join(k)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let items = l.to_vec()?;
    let c = count as u64;
    if items.len() != 2 * count || items.iter().sum::<u64>() != c * (c - 1) {
        return Err(format!("list_append: {} items", items.len()).into());
    }
    report("list_append", 2 * count, secs, 0);
    Ok(())
}

fn main() -> Res<()> {
    shmkit::init(); // a pool worker runs its loop here
    if let Ok(role) = std::env::var(ROLE) {
        return match role.as_str() {
            "incr" => incr_child(),
            "fill" => fill_child(),
            "produce" => produce_child(),
            "consume" => consume_child(),
            "echo" => echo_child(),
            "pipe_send" => pipe_send_child(),
            "dict_worker" => dict_child(),
            "produce_many" => produce_many_child(),
            "produce_records" => produce_records_child(),
            "produce_in_place" => produce_in_place_child(),
            "list_worker" => list_child(),
            #[cfg(feature = "redis")]
            "redis_produce" => redis_scenarios::produce_child(),
            #[cfg(feature = "redis")]
            "redis_raw_produce" => redis_scenarios::raw_produce_child(),
            #[cfg(feature = "redis")]
            "redis_raw_worker" => redis_scenarios::raw_worker_child(),
            _ => Err(format!("unknown role {role}").into()),
        };
    }
    // cargo passes `--bench`; anything starting with '-' is not a scenario name.
    let mut wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if wanted.is_empty() {
        wanted = IMPLEMENTED.iter().map(|s| s.to_string()).collect();
        // With the feature and a server, all scenarios include the Redis ones.
        if cfg!(feature = "redis") && std::env::var_os("SHMKIT_REDIS_URL").is_some() {
            wanted.extend(REDIS.iter().map(|s| s.to_string()));
        }
    }
    for name in &wanted {
        match name.as_str() {
            "queue_small" => queue_small()?,
            "queue_large" => queue_large()?,
            "queue_mpmc" => queue_mpmc()?,
            "queue_mpmc8" => queue_mpmc8()?,
            "pingpong" => pingpong()?,
            "value_incr" => value_incr()?,
            "array_fill" => array_fill()?,
            "pipe_small" => pipe_small()?,
            "lock_uncontended" => lock_uncontended()?,
            "pool_map" => pool_map()?,
            "pool_apply_async" => pool_apply_async()?,
            "dict_ops" => dict_ops()?,
            "queue_small_many" => queue_small_many()?,
            "queue_records" => queue_records()?,
            "queue_large_in_place" => queue_large_in_place()?,
            "list_append" => list_append()?,
            #[cfg(feature = "redis")]
            "redis_queue" => redis_scenarios::redis_queue()?,
            #[cfg(feature = "redis")]
            "redis_pool_map" => redis_scenarios::redis_pool_map()?,
            s => {
                return Err(format!(
                    "unknown scenario {s:?}; known: {} (and with the redis feature: {})",
                    IMPLEMENTED.join(", "),
                    REDIS.join(", ")
                )
                .into());
            }
        }
    }
    Ok(())
}
