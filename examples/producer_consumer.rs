//! Producers and a consumer around a `JoinableQueue`, across processes: two producers put
//! bones, a dog eats them (calling `task_done` for each), and the owner waits with `join` until
//! every bone is eaten. Then the queue is closed and the dog goes home.
//!
//! The producers and the consumer are this program started again with a role.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmkit::{GetError, JoinableQueue};

const ROLE: &str = "SHMKIT_PRODUCER_CONSUMER_ROLE";

fn start(role: &str, q: &JoinableQueue<String>) -> Result<Child, Box<dyn Error>> {
    Ok(Command::new(std::env::current_exe()?)
        .env(ROLE, role)
        .env("QUEUE", q.name())
        .spawn()?)
}

fn producer(q: &JoinableQueue<String>, who: &str) -> Result<(), Box<dyn Error>> {
    for i in 1..=5 {
        let bone = format!("bone {i} from {who}");
        println!("{who} puts {bone}");
        q.put(bone)?;
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn consumer(q: &JoinableQueue<String>) -> Result<(), Box<dyn Error>> {
    loop {
        match q.get() {
            Ok(bone) => {
                std::thread::sleep(Duration::from_millis(10)); // chewing
                println!("    the dog ate {bone}");
                q.task_done()?;
            }
            Err(GetError::Closed) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    if let Ok(role) = std::env::var(ROLE) {
        let q = JoinableQueue::<String>::open(&std::env::var("QUEUE")?)?;
        return match role.as_str() {
            "dog" => consumer(&q),
            who => producer(&q, who),
        };
    }
    let q = JoinableQueue::<String>::new(4)?;
    let mut dog = start("dog", &q)?;
    let producers = [start("alice", &q)?, start("bob", &q)?];
    for mut p in producers {
        if !p.wait()?.success() {
            return Err("a producer failed".into());
        }
    }
    q.join()?; // every bone put has been eaten
    println!("all bones eaten ({} left in the queue)", q.len());
    q.close()?;
    if !dog.wait()?.success() {
        return Err("the dog failed".into());
    }
    Ok(())
}
