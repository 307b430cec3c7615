//! shmkit's benchmark scenarios: the same work as `../shared/peers/python_mp.py`, one JSON line
//! per scenario in its schema. Run `cargo bench --bench scenarios -- NAME...` (no names: all);
//! `QUICK=1` does a tenth of the work. Child processes are this binary started again with
//! `SHMKIT_BENCH_ROLE` set. Every scenario checks its result, so a fast wrong answer fails.

use std::process::{Child, Command};
use std::time::Instant;

use shmkit::{Array, Value};

const ROLE: &str = "SHMKIT_BENCH_ROLE";
const IMPLEMENTED: &[&str] = &["value_incr", "array_fill", "lock_uncontended"];
const PLANNED: &[&str] = &[
    "queue_small",
    "queue_large",
    "queue_mpmc",
    "pingpong",
    "pool_map",
    "pool_apply_async",
    "pipe_small",
];

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn n(x: usize) -> usize {
    if std::env::var_os("QUICK").is_some() {
        (x / 10).max(1)
    } else {
        x
    }
}

fn report(scenario: &str, ops: usize, secs: f64, bytes: usize) {
    let mb = if bytes > 0 {
        format!("{:.1}", bytes as f64 / secs / 1e6)
    } else {
        "null".into()
    };
    println!(
        "{{\"system\": \"shmkit\", \"scenario\": \"{scenario}\", \"ops\": {ops}, \"secs\": {secs:.6}, \"ops_per_s\": {:.1}, \"mb_per_s\": {mb}}}",
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

fn main() -> Res<()> {
    if let Ok(role) = std::env::var(ROLE) {
        return match role.as_str() {
            "incr" => incr_child(),
            "fill" => fill_child(),
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
    }
    for name in &wanted {
        match name.as_str() {
            "value_incr" => value_incr()?,
            "array_fill" => array_fill()?,
            "lock_uncontended" => lock_uncontended()?,
            s if PLANNED.contains(&s) => eprintln!("scenario {s}: not implemented yet (skipped)"),
            s => {
                return Err(
                    format!("unknown scenario {s:?}; known: {}", IMPLEMENTED.join(", ")).into(),
                );
            }
        }
    }
    Ok(())
}
