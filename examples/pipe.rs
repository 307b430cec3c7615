//! Request and response over a duplex `Pipe`: the child uppercases what it receives. When the
//! parent closes its end, the child's `recv` reports end-of-file and the child exits.

use std::time::Duration;

use shmkit::{Connection, Pipe, Process, RecvError};

fn child(conn: Connection<String>) -> Result<u32, String> {
    let mut answered = 0;
    loop {
        match conn.recv() {
            Ok(s) => conn.send(&s.to_uppercase()).map_err(|e| e.to_string())?,
            Err(RecvError::Eof) => return Ok(answered),
            Err(e) => return Err(e.to_string()),
        }
        answered += 1;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::init(); // in the child, runs `child` and exits
    let (parent_end, child_end) = Pipe::<String>::duplex()?; // strings both ways
    let mut kid = Process::start(child, child_end.clone())?;
    for word in ["hello", "from", "shmkit"] {
        parent_end.send(word)?;
        let answer = parent_end.recv_timeout(Duration::from_secs(30))?;
        println!("{word} -> {answer}");
    }
    parent_end.close();
    let answered = kid.join_timeout(Duration::from_secs(30))??;
    println!("the child saw end-of-file after {answered} answers and exited");
    drop(child_end); // kept until the child had claimed its end
    Ok(())
}
