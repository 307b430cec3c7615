//! The layout of a `Dict`'s or `List`'s storage, apart from shared memory: pure functions over
//! a [`Mem`] (a byte area with bounds-checked access), unit-tested here on a `Vec` and fuzzed
//! through the typed handles.
//!
//! # Layout
//! One storage generation is a byte area of `len` bytes:
//! - a 64-byte header of eight `u64` words ([`Header`]);
//! - the index: `cap` words. A dict's is an open-addressing hash table with linear probing
//!   (`EMPTY`, `TOMB`, or an entry's offset / 8 in the low 32 bits and the high 32 bits of
//!   its key's hash in the high 32); a list's holds its items' offsets in order;
//! - the heap, from `64 + 8 × cap` to the end: entries appended at `bump`, each a key length
//!   and a value length (`u32` each), the key, the value, padded to 8 bytes. A list's entries
//!   have no key.
//!
//! # Commit points
//! Entries are only ever appended past `bump`, never changed. Every change of a dict or list
//! is committed by one store of one index word (a dict's insert, replace or remove; a list's
//! `set`) or of the list's length (`push`, `pop`, `truncate`, `extend`). Everything stored
//! before it is invisible until then, and everything stored after it (`bump` is stored
//! before; the counts after) is a hint the repair recomputes. Space of replaced and removed
//! entries is reclaimed when the storage is rebuilt into a new generation, which happens when
//! the heap or the index is full (and which also grows them).
//!
//! Every word read is checked before it is used: a corrupt or hostile generation gives an
//! error, never an out-of-bounds access or a panic.

/// Bytes of the header.
pub(crate) const HEADER: u64 = 64;
const MAGIC: u64 = 0x7368_6d6b_6974_6431; // "shmkitd1"
pub(crate) const DICT: u64 = 1;
pub(crate) const LIST: u64 = 2;
const EMPTY: u64 = 0;
const TOMB: u64 = 1;
/// The largest entry (key and value, serialised): 1 GiB.
pub(crate) const MAX_ENTRY: u64 = 1 << 30;
/// The largest heap an index word can address: 32 GiB.
const MAX_HEAP: u64 = 1 << 35;

/// A byte area with checked access. `None`: out of bounds or misaligned.
pub(crate) trait Mem {
    fn len(&self) -> u64;
    /// The `u64` at `at` (8-aligned).
    fn load(&self, at: u64) -> Option<u64>;
    fn store(&mut self, at: u64, v: u64) -> Option<()>;
    fn bytes(&self, at: u64, len: u64) -> Option<&[u8]>;
    fn write(&mut self, at: u64, bytes: &[u8]) -> Option<()>;
}

impl Mem for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
    fn load(&self, at: u64) -> Option<u64> {
        let b = self.bytes(at, 8)?;
        at.is_multiple_of(8)
            .then(|| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
    }
    fn store(&mut self, at: u64, v: u64) -> Option<()> {
        if !at.is_multiple_of(8) {
            return None;
        }
        self.write(at, &v.to_ne_bytes())
    }
    fn bytes(&self, at: u64, len: u64) -> Option<&[u8]> {
        let end = at.checked_add(len)?;
        self.get(usize::try_from(at).ok()?..usize::try_from(end).ok()?)
    }
    fn write(&mut self, at: u64, bytes: &[u8]) -> Option<()> {
        let end = at.checked_add(bytes.len() as u64)?;
        self.get_mut(usize::try_from(at).ok()?..usize::try_from(end).ok()?)?
            .copy_from_slice(bytes);
        Some(())
    }
}

/// FNV-1a over the serialised key: the same in every process and build.
pub(crate) fn hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The bytes an entry of a `klen`-byte key and a `vlen`-byte value takes in the heap.
pub(crate) fn entry_size(klen: u64, vlen: u64) -> u64 {
    (8 + klen + vlen).div_ceil(8) * 8
}

/// The header's words, and the geometry they give, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: u64,
    /// Index words.
    pub(crate) cap: u64,
    /// The next free heap byte.
    pub(crate) bump: u64,
    /// Entries (a list: its length). A hint for a dict, recounted by the repair.
    pub(crate) live: u64,
    /// Tombstones in a dict's index (a hint, as `live`).
    pub(crate) tombs: u64,
    /// Heap bytes of replaced and removed entries (a hint).
    pub(crate) dead: u64,
}

const W_MAGIC: u64 = 0;
const W_KIND: u64 = 8;
const W_CAP: u64 = 16;
const W_BUMP: u64 = 24;
const W_LIVE: u64 = 32;
const W_TOMBS: u64 = 40;
const W_DEAD: u64 = 48;

impl Header {
    pub(crate) fn heap_start(&self) -> u64 {
        HEADER + 8 * self.cap
    }
}

/// The bytes a generation with `cap` index words and `heap` heap bytes takes.
pub(crate) fn size_for(cap: u64, heap: u64) -> Option<u64> {
    HEADER.checked_add(cap.checked_mul(8)?)?.checked_add(heap)
}

/// Writes an empty generation of `kind` with `cap` index words over `mem` (all zero).
pub(crate) fn format(mem: &mut impl Mem, kind: u64, cap: u64) -> Option<()> {
    let h = Header {
        kind,
        cap,
        bump: HEADER + 8 * cap,
        live: 0,
        tombs: 0,
        dead: 0,
    };
    mem.store(W_MAGIC, MAGIC)?;
    mem.store(W_KIND, kind)?;
    mem.store(W_CAP, cap)?;
    write_counts(mem, &h)?;
    mem.store(W_BUMP, h.bump)
}

/// Reads and checks the header of a generation of `kind`.
pub(crate) fn header(mem: &impl Mem, kind: u64) -> Result<Header, String> {
    let word = |at| {
        mem.load(at)
            .ok_or("the storage is too short for its header")
    };
    if word(W_MAGIC)? != MAGIC || word(W_KIND)? != kind {
        return Err("the storage's header is not a shmkit dict's or list's".into());
    }
    let h = Header {
        kind,
        cap: word(W_CAP)?,
        bump: word(W_BUMP)?,
        live: word(W_LIVE)?,
        tombs: word(W_TOMBS)?,
        dead: word(W_DEAD)?,
    };
    let start = size_for(h.cap, 0).filter(|_| h.cap.is_power_of_two());
    let ok = start.is_some_and(|s| {
        s <= h.bump
            && h.bump <= mem.len()
            && h.bump.is_multiple_of(8)
            && mem.len() - s <= MAX_HEAP
            && (kind == DICT || h.live <= h.cap)
    });
    if !ok {
        return Err(format!(
            "index of {} words, heap end {} in {} bytes",
            h.cap,
            h.bump,
            mem.len()
        ));
    }
    Ok(h)
}

fn write_counts(mem: &mut impl Mem, h: &Header) -> Option<()> {
    mem.store(W_LIVE, h.live)?;
    mem.store(W_TOMBS, h.tombs)?;
    mem.store(W_DEAD, h.dead)
}

/// An entry read from the heap: its offset, size, and where its key and value lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) at: u64,
    pub(crate) size: u64,
    pub(crate) klen: u64,
    pub(crate) vlen: u64,
}

impl Entry {
    pub(crate) fn key<'m>(&self, mem: &'m impl Mem) -> Option<&'m [u8]> {
        mem.bytes(self.at + 8, self.klen)
    }
    pub(crate) fn value<'m>(&self, mem: &'m impl Mem) -> Option<&'m [u8]> {
        mem.bytes(self.at + 8 + self.klen, self.vlen)
    }
}

/// The entry at heap offset `at`, checked to lie between the heap's start and `bump`.
fn entry(mem: &impl Mem, h: &Header, at: u64) -> Result<Entry, String> {
    let bad = || {
        format!(
            "an entry at {at} outside the heap ({}..{})",
            h.heap_start(),
            h.bump
        )
    };
    if at < h.heap_start() || !at.is_multiple_of(8) {
        return Err(bad());
    }
    let lens = mem.load(at).ok_or_else(bad)?;
    let (klen, vlen) = (lens & 0xffff_ffff, lens >> 32);
    let size = entry_size(klen, vlen);
    if at.checked_add(size).is_none_or(|end| end > h.bump) {
        return Err(bad());
    }
    Ok(Entry {
        at,
        size,
        klen,
        vlen,
    })
}

/// Appends an entry at `bump` if the heap has room; returns its offset. Stores the new
/// `bump` (invisible until an index word names the entry).
fn append(mem: &mut impl Mem, h: &mut Header, key: &[u8], value: &[u8]) -> Option<u64> {
    let size = entry_size(key.len() as u64, value.len() as u64);
    let at = h.bump;
    if at.checked_add(size)? > mem.len() {
        return None;
    }
    mem.store(at, key.len() as u64 | (value.len() as u64) << 32)?;
    mem.write(at + 8, key)?;
    mem.write(at + 8 + key.len() as u64, value)?;
    h.bump = at + size;
    mem.store(W_BUMP, h.bump)?;
    Some(at)
}

/// What a dict lookup found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    /// The index word holding the key, if present, and its entry.
    pub(crate) found: Option<(u64, Entry)>,
    /// Where a new key goes: the first tombstone or empty word on its probe path.
    pub(crate) free: Option<u64>,
}

fn word_at(h: &Header, i: u64) -> u64 {
    HEADER + 8 * (i & (h.cap - 1))
}

/// Looks `key` (with hash `hash`) up in a dict.
pub(crate) fn probe(mem: &impl Mem, h: &Header, key: &[u8], hash: u64) -> Result<Probe, String> {
    let tag = hash >> 32;
    let mut free = None;
    for step in 0..h.cap {
        let w = word_at(h, hash.wrapping_add(step));
        let v = mem.load(w).ok_or("the index runs past the storage")?;
        match v {
            EMPTY => {
                return Ok(Probe {
                    found: None,
                    free: free.or(Some(w)),
                });
            }
            TOMB => {
                free.get_or_insert(w);
            }
            v if v >> 32 == tag => {
                let e = entry(mem, h, (v & 0xffff_ffff) * 8)?;
                if e.key(mem) == Some(key) {
                    return Ok(Probe {
                        found: Some((w, e)),
                        free,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(Probe { found: None, free })
}

/// Why a change did not happen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The heap or the index is full: rebuild into a bigger generation, with room for this
    /// many more heap bytes and entries, and try again.
    Full {
        bytes: u64,
        entries: u64,
    },
    Corrupt(String),
}

impl From<String> for Change {
    fn from(s: String) -> Self {
        Change::Corrupt(s)
    }
}

/// Inserts or replaces `key` in a dict. Returns the old entry, if any (still readable: entries
/// are never overwritten).
pub(crate) fn insert(
    mem: &mut impl Mem,
    key: &[u8],
    value: &[u8],
) -> Result<Option<Entry>, Change> {
    let mut h = header(mem, DICT)?;
    let hash = hash(key);
    let p = probe(mem, &h, key, hash)?;
    let full = Change::Full {
        bytes: entry_size(key.len() as u64, value.len() as u64),
        entries: 1,
    };
    // Keep the index at most half full, tombstones included.
    if p.found.is_none() && (h.live + h.tombs + 1) * 2 > h.cap {
        return Err(full);
    }
    let Some(word) = p.found.map(|f| f.0).or(p.free) else {
        return Err(full);
    };
    let reused_tomb = p.found.is_none() && mem.load(word) == Some(TOMB);
    let Some(at) = append(mem, &mut h, key, value) else {
        return Err(full);
    };
    // SYNC: commit of an insert or replace.
    mem.store(word, ((hash >> 32) << 32) | (at / 8))
        .ok_or_else(|| Change::Corrupt("index word out of bounds".into()))?;
    match p.found {
        Some((_, old)) => h.dead = h.dead.saturating_add(old.size),
        None => {
            h.live = h.live.saturating_add(1);
            if reused_tomb {
                h.tombs = h.tombs.saturating_sub(1);
            }
        }
    }
    write_counts(mem, &h).ok_or_else(|| Change::Corrupt("header out of bounds".into()))?;
    Ok(p.found.map(|f| f.1))
}

/// Removes `key` from a dict; returns its entry (still readable), if it was there.
pub(crate) fn remove(mem: &mut impl Mem, key: &[u8]) -> Result<Option<Entry>, String> {
    let mut h = header(mem, DICT)?;
    let p = probe(mem, &h, key, hash(key))?;
    let Some((word, e)) = p.found else {
        return Ok(None);
    };
    // SYNC: commit of a remove.
    mem.store(word, TOMB).ok_or("index word out of bounds")?;
    h.live = h.live.saturating_sub(1);
    h.tombs = h.tombs.saturating_add(1);
    h.dead = h.dead.saturating_add(e.size);
    write_counts(mem, &h).ok_or("header out of bounds")?;
    Ok(Some(e))
}

/// Every live entry of a dict, in index order.
pub(crate) fn dict_entries(mem: &impl Mem) -> Result<Vec<Entry>, String> {
    let h = header(mem, DICT)?;
    let mut out = Vec::with_capacity(h.live.min(h.cap) as usize);
    for i in 0..h.cap {
        let v = mem
            .load(word_at(&h, i))
            .ok_or("the index runs past the storage")?;
        if v > TOMB {
            out.push(entry(mem, &h, (v & 0xffff_ffff) * 8)?);
        }
    }
    Ok(out)
}

/// After a holder died: recounts a dict's live entries and tombstones (the hints stored after
/// each commit), checking every entry. Returns the live count.
pub(crate) fn recount_dict(mem: &mut impl Mem) -> Result<u64, String> {
    let mut h = header(mem, DICT)?;
    let (mut live, mut tombs) = (0, 0);
    for i in 0..h.cap {
        match mem
            .load(word_at(&h, i))
            .ok_or("the index runs past the storage")?
        {
            EMPTY => {}
            TOMB => tombs += 1,
            v => {
                entry(mem, &h, (v & 0xffff_ffff) * 8)?;
                live += 1;
            }
        }
    }
    (h.live, h.tombs) = (live, tombs);
    write_counts(mem, &h).ok_or("header out of bounds")?;
    Ok(live)
}

/// The entry of item `i` of a list (`i < len`).
pub(crate) fn list_entry(mem: &impl Mem, h: &Header, i: u64) -> Result<Entry, String> {
    if i >= h.cap {
        return Err("a list index past its storage".into());
    }
    let v = mem
        .load(HEADER + 8 * i)
        .ok_or("a list index past its storage")?;
    entry(mem, h, v)
}

/// Every item of a list, in order.
pub(crate) fn list_entries(mem: &impl Mem) -> Result<Vec<Entry>, String> {
    let h = header(mem, LIST)?;
    (0..h.live).map(|i| list_entry(mem, &h, i)).collect()
}

/// Appends `values` to a list, all or none: they become visible with one store of the length.
pub(crate) fn push(mem: &mut impl Mem, values: &[&[u8]]) -> Result<(), Change> {
    let mut h = header(mem, LIST)?;
    let n = values.len() as u64;
    let full = || Change::Full {
        bytes: values.iter().map(|v| entry_size(0, v.len() as u64)).sum(),
        entries: n,
    };
    if h.live.checked_add(n).is_none_or(|end| end > h.cap) {
        return Err(full());
    }
    for (k, v) in values.iter().enumerate() {
        let at = append(mem, &mut h, &[], v).ok_or_else(full)?;
        mem.store(HEADER + 8 * (h.live + k as u64), at)
            .ok_or_else(|| Change::Corrupt("index word out of bounds".into()))?;
    }
    // SYNC: commit of a push (or extend).
    mem.store(W_LIVE, h.live + n)
        .ok_or_else(|| Change::Corrupt("header out of bounds".into()))?;
    Ok(())
}

/// Replaces item `i` of a list (`i < len`); returns the old entry (still readable).
pub(crate) fn set(mem: &mut impl Mem, i: u64, value: &[u8]) -> Result<Entry, Change> {
    let mut h = header(mem, LIST)?;
    let old = list_entry(mem, &h, i)?;
    let at = append(mem, &mut h, &[], value).ok_or(Change::Full {
        bytes: entry_size(0, value.len() as u64),
        entries: 0,
    })?;
    // SYNC: commit of a set.
    mem.store(HEADER + 8 * i, at)
        .ok_or_else(|| Change::Corrupt("index word out of bounds".into()))?;
    h.dead = h.dead.saturating_add(old.size);
    mem.store(W_DEAD, h.dead)
        .ok_or_else(|| Change::Corrupt("header out of bounds".into()))?;
    Ok(old)
}

/// Shortens a list to `len` items (no-op if it is not longer).
pub(crate) fn truncate(mem: &mut impl Mem, len: u64) -> Result<(), String> {
    let h = header(mem, LIST)?;
    if len < h.live {
        // SYNC: commit of a pop or truncate.
        mem.store(W_LIVE, len).ok_or("header out of bounds")?;
    }
    Ok(())
}

/// What a rebuild needs room for: live entries' heap bytes, and their count.
pub(crate) fn live_bytes(entries: &[Entry]) -> u64 {
    entries.iter().map(|e| e.size).sum()
}

/// The index words a dict of `n` entries is rebuilt with: a quarter full.
pub(crate) fn dict_cap_for(n: u64) -> u64 {
    (n.saturating_mul(4)).max(16).next_power_of_two()
}

/// The index words a list of `n` items is rebuilt with: half full.
pub(crate) fn list_cap_for(n: u64) -> u64 {
    (n.saturating_mul(2)).max(16).next_power_of_two()
}

/// Copies `entries` of `src` (a dict's, or a list's in order) into `dst`, freshly formatted.
pub(crate) fn copy_into(
    src: &impl Mem,
    entries: &[Entry],
    dst: &mut impl Mem,
    kind: u64,
) -> Result<(), String> {
    let short = || "the new storage is too small".to_string();
    let mut h = header(dst, kind)?;
    for (i, e) in entries.iter().enumerate() {
        let key = e.key(src).ok_or_else(short)?;
        let value = e.value(src).ok_or_else(short)?;
        let at = append(dst, &mut h, key, value).ok_or_else(short)?;
        if kind == DICT {
            let hash = hash(key);
            let w = probe(dst, &h, key, hash)?.free.ok_or_else(short)?;
            dst.store(w, ((hash >> 32) << 32) | (at / 8))
                .ok_or_else(short)?;
        } else {
            dst.store(HEADER + 8 * i as u64, at).ok_or_else(short)?;
        }
    }
    h.live = entries.len() as u64;
    write_counts(dst, &h).ok_or_else(short)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn fresh(kind: u64, cap: u64, heap: u64) -> Vec<u8> {
        let mut m = vec![0u8; size_for(cap, heap).unwrap() as usize];
        format(&mut m, kind, cap).unwrap();
        m
    }

    #[test]
    fn a_dict_matches_a_hash_map_through_inserts_removes_and_rebuilds() {
        let mut m = fresh(DICT, 16, 256);
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut x = 9u64;
        for step in 0..5000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("k{}", x % 300).into_bytes();
            if x.is_multiple_of(4) {
                let got = remove(&mut m, &key)
                    .unwrap()
                    .map(|e| e.value(&m).unwrap().to_vec());
                assert_eq!(got, model.remove(&key));
                continue;
            }
            let value = step.to_le_bytes().repeat((x % 5) as usize);
            loop {
                match insert(&mut m, &key, &value) {
                    Ok(old) => {
                        let old = old.map(|e| e.value(&m).unwrap().to_vec());
                        assert_eq!(old, model.insert(key.clone(), value.clone()));
                        break;
                    }
                    Err(Change::Full { .. }) => {
                        let entries = dict_entries(&m).unwrap();
                        let cap = dict_cap_for(entries.len() as u64 + 1);
                        let heap = 2 * (live_bytes(&entries) + entry_size(3, 40));
                        let mut next = fresh(DICT, cap, heap);
                        copy_into(&m, &entries, &mut next, DICT).unwrap();
                        m = next;
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        assert_eq!(recount_dict(&mut m).unwrap(), model.len() as u64);
        for (k, v) in &model {
            let p = probe(&m, &header(&m, DICT).unwrap(), k, hash(k)).unwrap();
            assert_eq!(p.found.unwrap().1.value(&m), Some(&v[..]));
        }
    }

    #[test]
    fn a_list_pushes_sets_and_truncates_in_order() {
        let mut m = fresh(LIST, 16, 1024);
        push(&mut m, &[b"a", b"bb"]).unwrap();
        set(&mut m, 0, b"ccc").unwrap();
        let items = |m: &Vec<u8>| -> Vec<Vec<u8>> {
            list_entries(m)
                .unwrap()
                .iter()
                .map(|e| e.value(m).unwrap().to_vec())
                .collect()
        };
        assert_eq!(items(&m), vec![b"ccc".to_vec(), b"bb".to_vec()]);
        truncate(&mut m, 1).unwrap();
        assert_eq!(items(&m), vec![b"ccc".to_vec()]);
        let many: Vec<&[u8]> = vec![b"x"; 20];
        assert!(
            matches!(push(&mut m, &many), Err(Change::Full { .. })),
            "all or none"
        );
        assert_eq!(items(&m).len(), 1);
    }

    #[test]
    fn hostile_words_are_errors() {
        let mut m = fresh(DICT, 16, 256);
        insert(&mut m, b"k", b"v").unwrap();
        let good = m.clone();
        for at in (0..HEADER + 16 * 8).step_by(8) {
            for v in [u64::MAX, 3, 1 << 40, 0x0123_4567_89ab_cdef] {
                let mut bad = good.clone();
                bad.store(at, v).unwrap();
                let _ = dict_entries(&bad);
                let _ = insert(&mut bad, b"k", b"w");
                let _ = remove(&mut bad, b"k");
                let _ = recount_dict(&mut bad);
            }
        }
        assert!(header(&vec![0u8; 10], DICT).is_err());
    }
}
