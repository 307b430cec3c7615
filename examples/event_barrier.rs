//! A traffic light (an `Event`: cars wait for green) and a start line (a `Barrier`: runners
//! wait until all four are there; the last to arrive fires the gun). The cars and runners are
//! `shmkit::Process`es; the handles travel to them as arguments.
//!
//! Run with `cargo run --example event_barrier`.

use std::error::Error;
use std::time::Duration;

use shmkit::{Barrier, Event, Process};

const LIMIT: Duration = Duration::from_secs(30);

fn car((id, green): (usize, Event)) {
    println!("  car {id} waits at the red light");
    assert!(green.wait_timeout(LIMIT), "the light never turned green");
    println!("  car {id} drives");
}

fn runner((id, line): (usize, Barrier)) {
    std::thread::sleep(Duration::from_millis(20 * id as u64)); // runners arrive one by one
    println!("  runner {id} is at the start line");
    let line = line.with_action(|| println!("  BANG! (fired by the last runner to arrive)"));
    let index = line.wait_timeout(LIMIT).expect("the start line broke");
    println!("  runner {id} runs (arrival index {index})");
}

fn main() -> Result<(), Box<dyn Error>> {
    shmkit::init(); // in a child, runs its function and exits
    println!("Traffic light:");
    let green = Event::new()?;
    let cars = (0..3)
        .map(|id| Process::start(car, (id, green.clone())))
        .collect::<shmkit::Result<Vec<_>>>()?;
    std::thread::sleep(Duration::from_millis(200));
    println!("  the light turns green");
    green.set();
    for mut c in cars {
        c.join_timeout(LIMIT)?;
    }

    println!("Start line:");
    let line = Barrier::new(4)?;
    let runners = (0..4)
        .map(|id| Process::start(runner, (id, line.clone())))
        .collect::<shmkit::Result<Vec<_>>>()?;
    for mut r in runners {
        r.join_timeout(LIMIT)?;
    }
    Ok(())
}
