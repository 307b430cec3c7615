//! Producers and a consumer around a `JoinableQueue`, across processes: two producers put
//! bones, a dog eats them (calling `task_done` for each), and the owner waits with `join` until
//! every bone is eaten. Then the queue is closed and the dog goes home.

use std::time::Duration;

use shmkit::{GetError, JoinableQueue, Process};

fn producer((q, who): (JoinableQueue<String>, String)) -> Result<(), String> {
    for i in 1..=5 {
        let bone = format!("bone {i} from {who}");
        println!("{who} puts {bone}");
        q.put(bone).map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn dog(q: JoinableQueue<String>) -> Result<u32, String> {
    let mut eaten = 0;
    loop {
        match q.get() {
            Ok(bone) => {
                std::thread::sleep(Duration::from_millis(10)); // chewing
                println!("    the dog ate {bone}");
                q.task_done().map_err(|e| e.to_string())?;
                eaten += 1;
            }
            Err(GetError::Closed) => return Ok(eaten),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::init(); // in a child, runs its function and exits
    let limit = Duration::from_secs(30);
    let q = JoinableQueue::<String>::new(4)?;
    let mut the_dog = Process::start(dog, q.clone())?;
    let producers = ["alice", "bob"].map(|who| Process::start(producer, (q.clone(), who.into())));
    for p in producers {
        p?.join_timeout(limit)??;
    }
    q.join_timeout(limit)?; // every bone put has been eaten
    println!("all bones eaten ({} left in the queue)", q.len());
    q.close()?;
    println!(
        "the dog went home after {} bones",
        the_dog.join_timeout(limit)??
    );
    Ok(())
}
