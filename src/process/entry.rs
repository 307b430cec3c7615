//! Naming a function across processes: the one place where an address is made from a number.
//!
//! A child is this executable started again, so code is laid out the same in both processes
//! (position-independent code moves as one block): the *offset* of a function from a fixed
//! function, [`anchor`], names the same function in the child. Only monomorphised trampolines
//! of a few fixed signatures are named this way ([`Entry`]); each trampoline conjures the
//! user's zero-sized function from its type alone ([`conjure`]).
//!
//! An offset reaches the child through its environment or through shared memory, which another
//! process may corrupt. So every name carries a tag: SipHash-1-3 of the offset and the entry's
//! signature kind, keyed with 128 secret bits the parent generated and handed to the child in
//! its environment, never through shared memory. [`resolve`] turns a name into a function only
//! if its tag checks out, so a corrupted name is refused, never called. (The key guards against
//! corruption, not against a process of the same user, which could ptrace us anyway.)

use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;

/// The secret a parent shares with its children to sign the functions it names.
pub(crate) type Key = [u64; 2];

/// A fresh random key.
pub(crate) fn new_key() -> std::io::Result<Key> {
    let r = crate::sys::random_u128()?;
    Ok([r as u64, (r >> 64) as u64])
}

/// The function the offsets are measured from.
#[inline(never)]
fn anchor() -> usize {
    let f: fn() -> usize = anchor;
    f as usize
}

/// Function pointer types that may be named by offset; `KIND` keeps a name made for one type
/// from being resolved as another.
///
/// # Safety
/// `Self` must be a plain `fn` pointer type (the size of a `usize`, valid for the address of
/// any function of its signature).
pub(crate) unsafe trait Entry: Copy {
    /// A number unique to this signature, signed along with the offset.
    const KIND: u8;
    /// The function's address.
    fn addr(self) -> usize;
}

/// A child's whole run: the argument's bytes in (and a call to make once they are decoded),
/// the result's bytes and whether it is an `Err`.
pub(crate) type ChildEntry = fn(&[u8], &mut dyn FnMut()) -> Result<(Vec<u8>, bool), String>;
/// A pool task: a chunk of encoded arguments in, a chunk of encoded outcomes appended.
pub(crate) type TaskEntry = fn(&[u8], &mut Vec<u8>);

// SAFETY: a plain `fn` pointer type.
unsafe impl Entry for ChildEntry {
    const KIND: u8 = 1;
    fn addr(self) -> usize {
        self as usize
    }
}

// SAFETY: a plain `fn` pointer type.
unsafe impl Entry for TaskEntry {
    const KIND: u8 = 2;
    fn addr(self) -> usize {
        self as usize
    }
}

/// A function named across processes: its offset from [`anchor`] and the tag that signs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntryName {
    pub(crate) offset: i64,
    pub(crate) tag: u64,
}

/// The offset that names `entry` (unsigned: see [`sign`]).
pub(crate) fn offset<E: Entry>(entry: E) -> i64 {
    (entry.addr() as i64).wrapping_sub(anchor() as i64)
}

/// The tag of the offset of an `E` under `key`.
pub(crate) fn sign<E: Entry>(offset: i64, key: &Key) -> u64 {
    let mut msg = [0u8; 9];
    msg[0] = E::KIND;
    msg[1..].copy_from_slice(&offset.to_le_bytes());
    SipHasher13::new_with_keys(key[0], key[1]).hash(&msg)
}

/// Names `entry`, signed with `key`.
pub(crate) fn name<E: Entry>(entry: E, key: &Key) -> EntryName {
    let offset = offset(entry);
    EntryName {
        offset,
        tag: sign::<E>(offset, key),
    }
}

/// The function `name` names, if its tag is the signature of its offset under `key`.
pub(crate) fn resolve<E: Entry>(name: EntryName, key: &Key) -> Option<E> {
    const { assert!(std::mem::size_of::<E>() == std::mem::size_of::<usize>()) };
    if sign::<E>(name.offset, key) != name.tag {
        return None;
    }
    let addr = (anchor() as i64).wrapping_add(name.offset) as usize;
    // SAFETY: the tag matches, so `name` was made by `name::<E>` with our key, which only our
    // parent (which generated it and gave it to us in our environment) and we hold: it is the
    // offset of a function of type `E` from `anchor` in this same executable (the child checked
    // the device and inode at start), hence `anchor + offset` is that function here too. `E`
    // is a `fn` pointer type the size of a `usize` (asserted above and by `Entry`'s contract).
    Some(unsafe { std::mem::transmute_copy::<usize, E>(&addr) })
}

/// The value of a zero-sized function type: how a trampoline gets its function in a process
/// that was sent only the function's type (as an offset). A closure capturing local state is
/// not zero-sized and fails to compile here.
pub(crate) fn conjure<F>() -> F {
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "only fn items and closures that capture nothing can run in another process"
        )
    };
    // SAFETY: `F` is zero-sized (checked at compile time above), so reading one reads no bytes
    // and a dangling, aligned pointer is valid for it; fn items and capture-less closures have
    // no invariant beyond their type.
    unsafe { std::ptr::NonNull::<F>::dangling().read() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(input: &[u8], out: &mut Vec<u8>) {
        out.extend(input.iter().map(|b| b * 2));
    }

    fn whole(input: &[u8], _: &mut dyn FnMut()) -> Result<(Vec<u8>, bool), String> {
        Ok((input.to_vec(), false))
    }

    #[test]
    fn a_signed_name_resolves_and_a_tampered_one_does_not() {
        let key = [1, 2];
        let n = name(double as TaskEntry, &key);
        let f: TaskEntry = resolve(n, &key).expect("signed");
        let mut out = Vec::new();
        f(&[1, 2], &mut out);
        assert_eq!(out, [2, 4]);
        for bad in [
            EntryName {
                tag: n.tag ^ 1,
                ..n
            },
            EntryName {
                offset: n.offset + 16,
                ..n
            },
        ] {
            assert!(resolve::<TaskEntry>(bad, &key).is_none());
        }
        assert!(resolve::<TaskEntry>(n, &[1, 3]).is_none(), "another key");
        assert!(
            resolve::<ChildEntry>(n, &key).is_none(),
            "a name made for one signature is not another's"
        );
        let c = name(whole as ChildEntry, &key);
        assert_eq!(
            resolve::<ChildEntry>(c, &key).unwrap()(&[9], &mut || {}),
            Ok((vec![9], false))
        );
    }
}
