//! Harnesses for the fuzz targets in `fuzz/` (and for replaying their findings in tests).
//! Not part of the public API.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::cell::{Array, RawArray, RawValue, Value};
use crate::shm::{SegmentName, remove};
use crate::sys;

/// Writes `data[1..]` as the whole content of a fresh segment and opens it as one of the four
/// cell kinds (chosen by `data[0]`), then, if that succeeds, locks it briefly and reads every
/// element. Opening must return `Ok` or `Err`; it must never panic, hang or fault.
///
/// If bit 3 of `data[0]` is set, the contents are instead a valid image of a real segment of the
/// chosen kind, patched by the rest of `data` read as (offset: u16, xor: u8) triples, so the
/// fuzzer starts from deep inside the format. If bit 0 is set, the harness then writes a correct
/// state word and header checksum, so the fuzzer also reaches the checks behind them (kind,
/// type, layout, the lock).
pub fn open_segment_bytes(data: &[u8]) {
    let Some((&ctrl, rest)) = data.split_first() else {
        return;
    };
    let mut contents = if ctrl & 8 != 0 {
        let Some(mut image) = valid_image((ctrl >> 1) & 3) else {
            return;
        };
        for patch in rest.chunks_exact(3) {
            let at = usize::from(u16::from_le_bytes([patch[0], patch[1]]));
            if let Some(b) = image.get_mut(at) {
                *b ^= patch[2];
            }
        }
        image
    } else {
        rest[..rest.len().min(1 << 16)].to_vec()
    };
    if ctrl & 1 != 0 {
        crate::shm::fix_header_for_fuzzing(&mut contents);
    }
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "fuzz-{}-{}",
        sys::current_pid(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let Ok(seg_name) = SegmentName::new(&name) else {
        return;
    };
    let Ok(mut file) = sys::shm_create_exclusive(&seg_name.os_name()) else {
        return;
    };
    let written = file.write_all(&contents);
    drop(file);
    if written.is_ok() {
        let short = Duration::from_millis(1);
        match (ctrl >> 1) & 3 {
            0 => exercise_value::<f64>(&name, short),
            1 => exercise_array::<i32>(&name, short),
            2 => {
                if let Ok(v) = RawValue::<u64>::open_timeout(&name, Duration::ZERO) {
                    let _ = v.get();
                }
            }
            _ => {
                if let Ok(a) = RawArray::<u8>::open_timeout(&name, Duration::ZERO) {
                    let _ = a.to_vec();
                }
            }
        }
    }
    let _ = remove(&name);
}

/// The bytes of a freshly created segment of each kind the harness opens.
fn valid_image(kind: u8) -> Option<Vec<u8>> {
    let read = |name: &str| std::fs::read(format!("{}/shmkit-{name}", sys::SHM_DIR)).ok();
    match kind {
        0 => read(Value::new(1.0f64).ok()?.name()),
        1 => read(Array::from_slice(&[1i32, 2, 3]).ok()?.name()),
        2 => read(RawValue::new(7u64).ok()?.name()),
        _ => read(RawArray::from_slice(&[1u8; 10]).ok()?.name()),
    }
}

fn exercise_value<T: bytemuck::Pod>(name: &str, short: Duration) {
    if let Ok(v) = Value::<T>::open_timeout(name, Duration::ZERO)
        && let Ok(g) | Err(crate::LockTimeoutError::OwnerDied(g)) = v.lock_timeout(short)
    {
        let _ = *g;
    }
}

fn exercise_array<T: bytemuck::Pod>(name: &str, short: Duration) {
    if let Ok(a) = Array::<T>::open_timeout(name, Duration::ZERO)
        && let Ok(g) | Err(crate::LockTimeoutError::OwnerDied(g)) = a.lock_timeout(short)
    {
        let _ = g
            .iter()
            .fold(0u64, |acc, x| acc ^ bytemuck::bytes_of(x).len() as u64);
    }
}

/// Drives a small queue (a 1 KiB ring, so items wrap and spill, and 8 lease slots) with the
/// operations encoded in `data` and checks every answer against a model. Each op is one byte
/// of kind and one of size: put (try_put), get (try_get), put_bytes (into an empty queue: it
/// would block on a full one), get_bytes_into, the leases (try_get_leased, ack, release,
/// drop), and the batches (put_many into an empty queue, try_get_many). The model: items waiting in put order, items handed back (taken first, oldest
/// first), and the leases held.
pub fn queue_ops(data: &[u8]) {
    use crate::queue::{Lease, Queue, TryGetError, TryPutError};
    use std::collections::{BTreeMap, VecDeque};
    let Ok(q) = Queue::<Vec<u8>>::with_capacity(8, 1024) else {
        return;
    };
    let _ = q.set_max_deliveries(None);
    let slots = q.max_leases();
    let mut waiting: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
    let mut returned: BTreeMap<u64, (u32, Vec<u8>)> = BTreeMap::new();
    let mut held: Vec<(u64, Lease<Vec<u8>>)> = Vec::new();
    let mut seq = 0u64;
    let mut buf = Vec::new();
    // The next item a get takes: a handed-back one first, then the oldest waiting.
    fn take(
        waiting: &mut VecDeque<(u64, Vec<u8>)>,
        returned: &mut BTreeMap<u64, (u32, Vec<u8>)>,
    ) -> Option<(u64, u32, Vec<u8>)> {
        match returned.pop_first() {
            Some((s, (d, item))) => Some((s, d, item)),
            None => waiting.pop_front().map(|(s, item)| (s, 0, item)),
        }
    }
    for (n, op) in data.chunks_exact(2).enumerate().take(512) {
        let len = usize::from(op[1]) * if op[0] & 0x80 != 0 { 37 } else { 1 };
        let item: Vec<u8> = (0..len).map(|i| (i + n) as u8).collect();
        let pick = usize::from(op[1]);
        match op[0] % 10 {
            // A batch, only where room is certain: three small items into an empty ring.
            8 if waiting.is_empty() && len <= 100 => {
                let batch = vec![item.clone(), item.clone(), item];
                q.put_many(&batch).expect("put_many with room");
                for it in batch {
                    waiting.push_back((seq, it));
                    seq += 1;
                }
            }
            9 => {
                let max = pick % 5;
                match q.try_get_many(max) {
                    Ok(got) => {
                        assert!(got.len() <= max && (max == 0 || !got.is_empty()));
                        for g in got {
                            assert_eq!(Some(g), take(&mut waiting, &mut returned).map(|t| t.2));
                        }
                    }
                    Err(TryGetError::Empty) => {
                        assert!(waiting.is_empty() && returned.is_empty() && max > 0)
                    }
                    Err(e) => panic!("try_get_many: {e}"),
                }
            }
            0 => match q.try_put(item.clone()) {
                Ok(()) => {
                    waiting.push_back((seq, item));
                    seq += 1;
                }
                // Full: 8 items in the ring, or no ring room even for a spill reference;
                // never when the ring is empty.
                Err(TryPutError::Full(back)) => {
                    assert!(!waiting.is_empty() && back == item)
                }
                Err(e) => panic!("try_put: {e}"),
            },
            1 => match q.try_get() {
                Ok(got) => assert_eq!(Some(got), take(&mut waiting, &mut returned).map(|t| t.2)),
                Err(TryGetError::Empty) => assert!(waiting.is_empty() && returned.is_empty()),
                Err(e) => panic!("try_get: {e}"),
            },
            // A blocking put, only where room is certain: into an empty queue.
            2 if waiting.is_empty() => {
                q.put_bytes(&item).expect("put_bytes with room");
                waiting.push_back((seq, item));
                seq += 1;
            }
            3 if !waiting.is_empty() || !returned.is_empty() => {
                let n = q
                    .get_bytes_into(&mut buf)
                    .expect("get_bytes_into with an item");
                let expected = take(&mut waiting, &mut returned).map(|t| t.2);
                assert_eq!(Some(&buf[..n]), expected.as_deref());
            }
            4 => {
                let free = held.len() + returned.len() < slots;
                match q.try_get_leased() {
                    Ok(lease) => {
                        let ok = !returned.is_empty() || free;
                        assert!(ok, "a lease with every slot in use");
                        let (s, d, item) =
                            take(&mut waiting, &mut returned).expect("a lease of nothing");
                        assert_eq!((&*lease, lease.deliveries()), (&item, d + 1));
                        held.push((s, lease));
                    }
                    Err(TryGetError::Empty) => assert!(
                        returned.is_empty() && (waiting.is_empty() || !free),
                        "no lease, with an item to lease"
                    ),
                    Err(e) => panic!("try_get_leased: {e}"),
                }
            }
            5 if !held.is_empty() => {
                let (_, lease) = held.remove(pick % held.len());
                lease.ack().expect("ack");
            }
            6 | 7 if !held.is_empty() => {
                let (s, lease) = held.remove(pick % held.len());
                let item = lease.to_vec();
                let d = lease.deliveries();
                if op[0] % 10 == 6 {
                    lease.release().expect("release");
                } else {
                    drop(lease);
                }
                returned.insert(s, (d, item));
            }
            _ => {}
        }
        assert_eq!(q.len(), waiting.len() + returned.len());
        assert_eq!(q.lease_counts().held, held.len());
    }
}

/// Writes `data` over a live queue's positions, counts, lock, claims, ring and lease slots, as a
/// broken or hostile peer could, then gets, puts, leases, acks and releases a few times:
/// every call must return `Ok` or `Err`.
pub fn queue_ring(data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let Ok(q) = crate::queue::Queue::<Vec<u8>>::with_capacity(0, 1024) else {
        return;
    };
    for i in 0..6u8 {
        let _ = q.put(vec![i; usize::from(i) * 100]);
    }
    let leases: Vec<_> = (0..3).filter_map(|_| q.try_get_leased().ok()).collect();
    let path = format!("{}/shmkit-{}", sys::SHM_DIR, q.name());
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) else {
        return;
    };
    // Control block at 256 (see `queue::core::Control`): the put lock (16 bytes) at 0, the
    // writer's claim at 16, `tail` and `puts` at 64, the get lock at 128, the reader's claim
    // at 144, `head` and `gets` at 192, `done` at 256 (u64 each; the claims name the threads
    // copying a big item outside the locks). Then the ring on the next page, and 8 lease slots
    // of 512 bytes after its 1024 bytes.
    let (control, rest) = data.split_at(data.len().min(56));
    let (lock, counts) = control.split_at(control.len().min(16));
    let (put_side, counts) = counts.split_at(counts.len().min(16));
    let (get_side, done) = counts.split_at(counts.len().min(16));
    let _ = file.write_all_at(put_side, 256 + 64);
    let _ = file.write_all_at(get_side, 256 + 192);
    let _ = file.write_all_at(done, 256 + 256);
    let (claims, rest) = rest.split_at(rest.len().min(16));
    let (writer, reader) = claims.split_at(claims.len().min(8));
    let _ = file.write_all_at(writer, 256 + 16);
    let _ = file.write_all_at(reader, 256 + 144);
    let page = sys::page_size() as u64;
    let (ring, slots) = rest.split_at(rest.len().min(1024));
    let _ = file.write_all_at(ring, page);
    let _ = file.write_all_at(&slots[..slots.len().min(8 * 512)], page + 1024);
    // Settled before the lock is overwritten: `ack` and `release` wait for the lock as long
    // as it takes, and a lock word naming a live task (one that only looks alive to us, as a
    // hostile peer's would) is never taken over.
    for (i, lease) in leases.into_iter().enumerate() {
        let _ = if i % 2 == 0 {
            lease.ack().map(drop)
        } else {
            lease.release()
        };
    }
    // The same garbage in both locks.
    let _ = file.write_all_at(lock, 256);
    let _ = file.write_all_at(lock, 256 + 128);
    for _ in 0..4 {
        let _ = q.try_get();
        let _ = q.try_put(vec![7; 300]);
        // The lock was just taken and given back by this get, so the ack can take it too.
        if let Ok(lease) = q.try_get_leased() {
            let _ = lease.ack();
        }
    }
}

/// Drives a `Dict<u8, Vec<u8>>` and a `List<Vec<u8>>` with the operations encoded in `data`
/// (one byte of kind, one of key or index, one of size) and checks every answer against a
/// `HashMap` and a `Vec`. Small keys and sizes up to 8 kB make the storage grow, and removes
/// and replaces leave space for the rebuilds to reclaim.
pub fn dict_ops(data: &[u8]) {
    use crate::dict::{Dict, List, ListError};
    let (Ok(d), Ok(l)) = (Dict::<u8, Vec<u8>>::new(), List::<Vec<u8>>::new()) else {
        return;
    };
    let mut map = std::collections::HashMap::new();
    let mut vec: Vec<Vec<u8>> = Vec::new();
    for (n, op) in data.chunks_exact(3).enumerate().take(400) {
        let (k, size) = (
            op[1],
            usize::from(op[2]) * if op[0] & 0x80 != 0 { 32 } else { 1 },
        );
        let v: Vec<u8> = (0..size).map(|i| (i + n) as u8).collect();
        let i = usize::from(k);
        match op[0] % 14 {
            0 => assert_eq!(d.insert(k, v.clone()).unwrap(), map.insert(k, v)),
            1 => assert_eq!(d.get(&k).unwrap(), map.get(&k).cloned()),
            2 => assert_eq!(d.remove(&k).unwrap(), map.remove(&k)),
            3 => {
                let new = d
                    .update(k, |old| {
                        if size % 3 == 0 {
                            None
                        } else {
                            Some(
                                old.unwrap_or_default()
                                    .into_iter()
                                    .chain(v.clone())
                                    .collect(),
                            )
                        }
                    })
                    .unwrap();
                let model = if size % 3 == 0 {
                    map.remove(&k);
                    None
                } else {
                    let e = map.entry(k).or_default();
                    e.extend(v);
                    Some(e.clone())
                };
                assert_eq!(new, model);
            }
            4 => assert_eq!(
                d.get_or_insert_with(k, || v.clone()).unwrap(),
                map.entry(k).or_insert(v).clone()
            ),
            5 if size == 7 => {
                d.clear().unwrap();
                map.clear();
            }
            6 => {
                l.push(v.clone()).unwrap();
                vec.push(v);
            }
            7 => assert_eq!(l.pop().unwrap(), vec.pop()),
            8 => match l.set(i, v.clone()) {
                Ok(old) => assert_eq!(old, std::mem::replace(&mut vec[i], v)),
                Err(ListError::OutOfRange { .. }) => assert!(i >= vec.len()),
                Err(e) => panic!("set: {e}"),
            },
            9 => match l.insert(i, v.clone()) {
                Ok(()) => vec.insert(i, v),
                Err(ListError::OutOfRange { .. }) => assert!(i > vec.len()),
                Err(e) => panic!("insert: {e}"),
            },
            10 => match l.remove(i) {
                Ok(old) => assert_eq!(old, vec.remove(i)),
                Err(ListError::OutOfRange { .. }) => assert!(i >= vec.len()),
                Err(e) => panic!("remove: {e}"),
            },
            11 => {
                l.extend([v.clone(), v.clone()]).unwrap();
                vec.extend([v.clone(), v]);
            }
            12 => {
                l.truncate(i).unwrap();
                vec.truncate(i);
            }
            _ => assert_eq!(l.get(i).unwrap(), vec.get(i).cloned()),
        }
        assert_eq!(d.len().unwrap(), map.len());
        assert_eq!(l.len().unwrap(), vec.len());
    }
    assert_eq!(d.to_hash_map().unwrap(), map);
    assert_eq!(l.to_vec().unwrap(), vec);
}

/// Writes `data` over a live dict's and list's root control block and current storage
/// generation, as a broken or hostile peer could, then reads and changes them: every call
/// must return `Ok` or `Err`, never panic or read out of bounds.
pub fn dict_bytes(data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let (Ok(d), Ok(l)) = (
        crate::dict::Dict::<u16, Vec<u8>>::new(),
        crate::dict::List::<Vec<u8>>::new(),
    ) else {
        return;
    };
    for i in 0..40u16 {
        let _ = d.insert(i, vec![i as u8; usize::from(i) * 3]);
        let _ = l.push(vec![i as u8; usize::from(i)]);
    }
    let _ = d.remove(&3);
    let page = sys::page_size() as u64;
    let (root, rest) = data.split_at(data.len().min(24));
    let (dict_part, list_part) = rest.split_at(rest.len() / 2);
    for (name, part) in [(d.name(), dict_part), (l.name(), list_part)] {
        // The generation after the payload's page; its first words (header, index) mostly.
        let prefix = format!("shmkit-{name}.spill-");
        let generation = std::fs::read_dir(sys::SHM_DIR).ok().and_then(|dir| {
            dir.flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        });
        if let Some(g) = generation
            && let Ok(file) = std::fs::OpenOptions::new().write(true).open(g.path())
        {
            let (at, bytes) = part.split_first().map_or((0, part), |(a, b)| (*a, b));
            let _ = file.write_all_at(bytes, page + u64::from(at) * 8);
        }
    }
    // The root's generation number and size (after its 16-byte lock), for the dict only:
    // the list's root keeps the lock's words, which a live-looking holder would make wait.
    if let Ok(file) = std::fs::OpenOptions::new().write(true).open(format!(
        "{}/shmkit-{}",
        sys::SHM_DIR,
        d.name()
    )) {
        let _ = file.write_all_at(&root[..root.len().min(16)], 256 + 16);
    }
    for i in 0..50u16 {
        let _ = d.get(&i);
        let _ = d.insert(i + 7, vec![1; usize::from(i) * 50]);
        let _ = d.update(i, |v| v);
        let _ = d.items();
        let _ = l.get(usize::from(i));
        let _ = l.push(vec![2; usize::from(i) * 40]);
        let _ = l.set(usize::from(i), vec![3]);
        let _ = l.to_vec();
    }
    let _ = l.remove(1);
    let _ = l.insert(1, vec![]);
    let _ = d.len();
}

/// Arbitrary bytes as the messages a pool's parent and workers exchange: a worker's results
/// message decoded by the parent, and a chunk of arguments run by a worker's trampoline. Only
/// values and errors may come out; see `pool::fuzz_messages`.
#[cfg(feature = "pool")]
pub fn pool_messages(data: &[u8]) {
    crate::pool::fuzz_messages(data);
}
