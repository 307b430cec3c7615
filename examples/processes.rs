//! Processes: start Rust functions in child processes, join them for their results, and read
//! Python-style exit codes (0 ok, 1 panic or `Err`, the code of `exit`, minus the signal).

use std::time::Duration;

use shmkit::{Process, ProcessError};

fn greet(name: String) -> String {
    format!(
        "hello {name}, from process {} (parent {})",
        shmkit::current_pid(),
        shmkit::parent_pid()
    )
}

fn fails(_: ()) -> Result<u32, String> {
    Err("no luck".into())
}

fn panics(_: ()) {
    panic!("something went wrong");
}

fn sleeps(_: ()) {
    std::thread::sleep(Duration::from_secs(60));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A child's panic message reaches the parent in `ProcessError::Panicked`; keep it off the
    // terminal here. (Set before `init`, so that it applies in the children.)
    std::panic::set_hook(Box::new(|_| {}));
    shmkit::init(); // in a child, runs its function and exits

    let mut p = Process::builder()
        .name("greeter")
        .start(greet, "bob".to_string())?;
    let said = p.join()?;
    println!("{} (pid {}) says: {said}", p.name(), p.pid());
    println!("  exit code {:?}", p.exit_code());

    let mut e = Process::start(fails, ())?;
    let returned = e.join()?;
    println!(
        "a function returning Err: {returned:?}, exit code {:?}",
        e.exit_code()
    );

    let mut x = Process::start(panics, ())?;
    match x.join() {
        Err(ProcessError::Panicked(msg)) => {
            println!("a panicking child: {msg:?}, exit code {:?}", x.exit_code())
        }
        other => return Err(format!("expected a panic, got {other:?}").into()),
    }

    let mut t = Process::start(sleeps, ())?;
    println!("a sleeping child is alive: {}", t.is_alive());
    t.terminate()?;
    let _ = t.join();
    println!(
        "after terminate(): alive {}, exit code {:?}",
        t.is_alive(),
        t.exit_code()
    );
    Ok(())
}
