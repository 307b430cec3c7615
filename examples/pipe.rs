//! Request and response over a duplex `Pipe`: the child uppercases what it receives. When the
//! parent closes its end, the child's `recv` reports end-of-file and the child exits.
//! The child is this program started again with its end of the pipe.

use std::error::Error;
use std::process::Command;

use shmkit::{Connection, Pipe};

fn child(conn: Connection) -> Result<(), shmkit::Error> {
    loop {
        match conn.recv::<String>() {
            Ok(s) => conn.send(&s.to_uppercase())?,
            Err(shmkit::Error::Eof) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    if let Ok(end) = std::env::var("SHMKIT_PIPE_CHILD") {
        return Ok(child(serde_json::from_str(&end)?)?);
    }
    let (parent_end, child_end) = Pipe::new(true)?;
    let mut kid = Command::new(std::env::current_exe()?)
        .env("SHMKIT_PIPE_CHILD", serde_json::to_string(&child_end)?)
        .spawn()?;
    for word in ["hello", "from", "shmkit"] {
        parent_end.send(&word)?;
        let answer: String = parent_end.recv()?;
        println!("{word} -> {answer}");
    }
    parent_end.close();
    let status = kid.wait()?;
    println!("child saw end-of-file and exited: {status}");
    drop(child_end);
    Ok(())
}
