//! `shmkit`: list, inspect and clean shmkit's shared memory segments.
//!
//! ```text
//! shmkit ls [--json]                      every segment: kind, size, type, creator, items
//! shmkit inspect NAME [--json]            one segment's header and state
//! shmkit clean [--dry-run] [--prefix P] [--unused]
//!                                         remove stale segments (creator gone); with
//!                                         --unused only those no live process maps
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use shmkit::inspect::{Report, inspect, inspect_all};

#[derive(Parser)]
#[command(
    name = "shmkit",
    version,
    about = "List, inspect and clean shmkit's shared memory segments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists shmkit segments with their kind, size, element type, creator and, for queues,
    /// their item count.
    Ls {
        /// One JSON array, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Shows one segment's header and state: a lock's holder and whether it is poisoned, a
    /// queue's counts.
    Inspect {
        /// The segment's name (as `ls` prints it).
        name: String,
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Removes stale segments: those whose creator has ended without removing them.
    Clean {
        /// Lists what would be removed, and removes nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only segments whose name starts with this (one program's).
        #[arg(long)]
        prefix: Option<String>,
        /// Only segments no live process maps and no hand-over names (what `init()` reclaims
        /// by itself after its grace period): safe while other programs run.
        #[arg(long)]
        unused: bool,
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
}

fn line(r: &Report) -> String {
    let s = &r.segment;
    let kind = s.kind.map_or("?".to_owned(), |k| k.to_string());
    let creator = match (s.creator_pid, s.creator_alive) {
        (Some(pid), true) => format!("{pid}"),
        (Some(pid), false) => format!("{pid} (gone)"),
        (None, _) => "?".to_owned(),
    };
    let items = r
        .queue
        .map_or(String::new(), |q| format!("{} items", q.items));
    format!(
        "{:<48} {:<14} {:>10} {:<14} {:<28} {}",
        s.name,
        kind,
        s.size,
        creator,
        s.type_name.as_deref().unwrap_or("?"),
        items
    )
}

fn run(cli: Cli) -> shmkit::Result<()> {
    match cli.command {
        Command::Ls { json } => {
            let all = inspect_all()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
            } else {
                for r in &all {
                    println!("{}", line(r));
                }
            }
        }
        Command::Inspect { name, json } => {
            let r = inspect(&name)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                println!("{}", line(&r));
                let s = &r.segment;
                println!(
                    "  published: {}, hand-overs in flight: {}, orphaned: {}",
                    s.ready, s.hand_overs, s.orphaned
                );
                if let Some(l) = r.lock {
                    match (l.holder_tid, l.holder_alive) {
                        (Some(tid), Some(alive)) => println!(
                            "  lock: held by thread {tid} ({}), poisoned: {}",
                            if alive {
                                "alive"
                            } else {
                                "dead: the next locker takes it over"
                            },
                            l.poisoned
                        ),
                        _ => println!("  lock: free, poisoned: {}", l.poisoned),
                    }
                }
                if let Some(q) = r.queue {
                    println!(
                        "  queue: {} items ({} of {} ring bytes), {} leased, {} unfinished, maxsize {}, closed: {}",
                        q.items,
                        q.used_bytes,
                        q.capacity,
                        q.leased,
                        q.unfinished,
                        q.maxsize,
                        q.closed
                    );
                }
            }
        }
        Command::Clean {
            dry_run,
            prefix,
            unused,
            json,
        } => {
            let chosen = |s: &shmkit::shm::SegmentInfo| {
                prefix.as_deref().is_none_or(|p| s.name.starts_with(p))
            };
            let gone = match (dry_run, unused) {
                (true, false) => shmkit::shm::segments()?
                    .into_iter()
                    .filter(|s| s.is_stale() && chosen(s))
                    .collect(),
                (true, true) => shmkit::shm::abandoned(Duration::ZERO)?
                    .into_iter()
                    .filter(chosen)
                    .collect(),
                (false, false) => shmkit::shm::remove_stale_if(chosen)?,
                (false, true) => shmkit::shm::reclaim_abandoned_if(Duration::ZERO, chosen)?,
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&gone).unwrap_or_default()
                );
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                for s in &gone {
                    println!("{verb} {} ({} bytes)", s.name, s.size);
                }
                println!("{verb} {} stale segments", gone.len());
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmkit: {e}");
            ExitCode::FAILURE
        }
    }
}
