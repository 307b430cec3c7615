//! A traffic light (an `Event`: cars wait for green) and a start line (a `Barrier`: runners
//! wait until all four are there; the last to arrive fires the gun). The cars and runners are
//! this program started again with a role.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmkit::{Barrier, Event};

type Res<T = ()> = Result<T, Box<dyn Error>>;

fn start(role: &str, id: usize, handle: &str) -> Res<Child> {
    Ok(Command::new(std::env::current_exe()?)
        .env("ROLE", role)
        .env("ID", id.to_string())
        .env("HANDLE", handle)
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

fn main() -> Res {
    if let Ok(role) = std::env::var("ROLE") {
        let id: usize = std::env::var("ID")?.parse()?;
        let handle = std::env::var("HANDLE")?;
        if role == "car" {
            let green: Event = serde_json::from_str(&handle)?;
            println!("  car {id} waits at the red light");
            if !green.wait_timeout(Duration::from_secs(30)) {
                return Err("the light never turned green".into());
            }
            println!("  car {id} drives");
        } else {
            let line: Barrier = serde_json::from_str(&handle)?;
            std::thread::sleep(Duration::from_millis(20 * id as u64)); // runners arrive one by one
            println!("  runner {id} is at the start line");
            let line =
                line.with_action(|| println!("  BANG! (fired by the last runner to arrive)"));
            let index = line.wait_timeout(Duration::from_secs(30))?;
            println!("  runner {id} runs (arrival index {index})");
        }
        return Ok(());
    }
    println!("Traffic light:");
    let green = Event::new()?;
    let handle = serde_json::to_string(&green)?;
    let cars = (0..3)
        .map(|id| start("car", id, &handle))
        .collect::<Res<Vec<_>>>()?;
    std::thread::sleep(Duration::from_millis(200));
    println!("  the light turns green");
    green.set();
    join(cars)?;

    println!("Start line:");
    let line = Barrier::new(4)?;
    let handle = serde_json::to_string(&line)?;
    join(
        (0..4)
            .map(|id| start("runner", id, &handle))
            .collect::<Res<_>>()?,
    )?;
    Ok(())
}
