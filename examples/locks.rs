//! Processes taking turns under a `Lock`, and a `Semaphore` letting 3 of 10 workers in at a
//! time. The children are this program started again with a role and the handles.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmkit::{Lock, Semaphore, Value};

type Res<T = ()> = Result<T, Box<dyn Error>>;

fn start(role: &str, id: usize, handles: &str) -> Res<Child> {
    Ok(Command::new(std::env::current_exe()?)
        .env("ROLE", role)
        .env("ID", id.to_string())
        .env("HANDLES", handles)
        .spawn()?)
}

fn join(kids: Vec<Child>) -> Res {
    for mut k in kids {
        if !k.wait()?.success() {
            return Err("a child failed".into());
        }
    }
    Ok(())
}

fn printer(id: usize, lock: Lock) -> Res {
    for line in 1..=3 {
        // whole lines, one process at a time (`shmkit::Error::from` lets go of the guard in an
        // OwnerDied error, which `?` cannot carry into a `Box<dyn Error>`)
        let _turn = lock.lock().map_err(shmkit::Error::from)?;
        println!("process {id}: line {line}");
    }
    Ok(())
}

fn worker(id: usize, (sem, inside, most): (Semaphore, Value<u32>, Value<u32>)) -> Res {
    sem.acquire();
    let now = inside.update(|n| {
        *n += 1;
        *n
    })?;
    most.update(|m| *m = (*m).max(now))?;
    println!("  worker {id} is in ({now} inside)");
    std::thread::sleep(Duration::from_millis(30));
    inside.update(|n| *n -= 1)?;
    sem.release()?;
    Ok(())
}

fn main() -> Res {
    if let Ok(role) = std::env::var("ROLE") {
        let id: usize = std::env::var("ID")?.parse()?;
        let handles = std::env::var("HANDLES")?;
        return match role.as_str() {
            "printer" => printer(id, serde_json::from_str(&handles)?),
            _ => worker(id, serde_json::from_str(&handles)?),
        };
    }
    println!("Four processes print three lines each, taking turns under a Lock:");
    let lock = Lock::new()?;
    let handle = serde_json::to_string(&lock)?;
    join(
        (0..4)
            .map(|id| start("printer", id, &handle))
            .collect::<Res<_>>()?,
    )?;

    println!("Ten workers, a Semaphore of 3:");
    let (sem, inside, most) = (Semaphore::new(3)?, Value::new(0u32)?, Value::new(0u32)?);
    let handles = serde_json::to_string(&(&sem, &inside, &most))?;
    join(
        (0..10)
            .map(|id| start("worker", id, &handles))
            .collect::<Res<_>>()?,
    )?;
    println!("at most {} workers were in at once", most.get()?);
    Ok(())
}
