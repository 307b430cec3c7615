//! A `Dict` and a `List` passed as pool task arguments: the workers (other processes) change
//! the same dict and list the parent reads.

mod common;

use std::time::Duration;

use common::watchdog;
use shmkit::{Dict, List, Pool};

fn tally((words, seen, text): (Dict<String, u32>, List<String>, String)) -> Result<usize, String> {
    for w in text.split_whitespace() {
        words
            .update(w.to_string(), |n| Some(n.unwrap_or(0) + 1))
            .map_err(|e| e.to_string())?;
    }
    seen.push(text).map_err(|e| e.to_string())?;
    Ok(shmkit::current_pid() as usize)
}

#[test]
fn pool_tasks_update_a_shared_dict_and_list() {
    shmkit::init();
    watchdog(Duration::from_secs(120));
    let (words, seen) = (
        Dict::<String, u32>::new().unwrap(),
        List::<String>::new().unwrap(),
    );
    let texts = ["a b a", "b c", "a", "c c c", "b"];
    let pool = Pool::new(2).unwrap();
    let args: Vec<_> = (0..40)
        .map(|i| {
            (
                words.clone(),
                seen.clone(),
                texts[i % texts.len()].to_string(),
            )
        })
        .collect();
    let pids = pool.map(tally, args).unwrap();
    let mut pids: Vec<_> = pids.into_iter().map(Result::unwrap).collect();
    pids.sort();
    pids.dedup();
    assert!(
        pids.iter().all(|&p| p != shmkit::current_pid() as usize),
        "ran in workers"
    );
    let mut counts = words.items().unwrap();
    counts.sort();
    let (a, b, c) = (8 * 3, 8 * 3, 8 * 4); // each text 8 times
    assert_eq!(
        counts,
        vec![("a".into(), a), ("b".into(), b), ("c".into(), c)],
        "every update of 40 tasks in 2 workers counted"
    );
    assert_eq!(seen.len().unwrap(), 40);
    pool.close();
    pool.join_timeout(Duration::from_secs(60)).unwrap();
}
